"""The base checkpoint under a voice: its fingerprint, a shared cache of loaded bases, and voiced views.

A *voiced view* is a `MetaTTSForTextToSpeech` that shares every module and weight of its base except the few
modules that hold the adapted parameter set, which are shallow copies carrying the voice's values. Several
voices loaded in one process therefore share one copy of the base weights.
"""

import copy
import hashlib
import logging
import threading
import weakref

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Where a voiced view keeps its base (in ``__dict__``, not as a submodule: its weights are not the view's).
BASE_ATTRIBUTE = "_metatts_base"
_FINGERPRINTS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_CAST_FINGERPRINTS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_BASES: dict[tuple, nn.Module] = {}
_BASES_LOCK = threading.Lock()


def adapted_names(model: nn.Module) -> list[str]:
    """The model's adapted parameter set (what a voice stores and what the fingerprint leaves out)."""
    return list(model.adapted_parameter_names())


def base_fingerprint(model: nn.Module) -> str:
    """``sha256:<hex>`` over every state-dict tensor except the adapted set: name, dtype, shape and bytes, in
    sorted order. Two models with equal non-adapted weights have equal fingerprints (so a voiced model has its
    base's). Memoised per model until a tensor is replaced or modified in place. A voiced view (`voiced_view`) has
    its base's fingerprint, also when its voice holds parameters outside the adapted set (an adapted vocoder).
    """
    return _memoised_over_base(model, _FINGERPRINTS, tensor_digest)


#: The reduced precisions a float32 base is commonly loaded in (``from_pretrained(..., dtype=...)``). A voice adapted
#: on the float32 base records the base's fingerprint in each of them too (`cast_fingerprints`), so that it also
#: applies to the base loaded in half precision.
CAST_DTYPES = (torch.float16, torch.bfloat16)


def cast_fingerprints(model: nn.Module) -> dict[str, str]:
    """``{dtype name: fingerprint}``: :func:`base_fingerprint` of ``model`` as it would read with its floating
    tensors cast to each of :data:`CAST_DTYPES` (what ``from_pretrained(dtype=...)`` of its float32 checkpoint
    gives), when every floating tensor outside the adapted set is float32; else ``{}`` (a model already in another
    precision has only its own fingerprint). Memoised like :func:`base_fingerprint`."""
    return dict(_memoised_over_base(model, _CAST_FINGERPRINTS, _cast_digests))


def _cast_digests(state: dict[str, torch.Tensor]) -> dict[str, str]:
    if any(tensor.is_floating_point() and tensor.dtype != torch.float32 for tensor in state.values()):
        return {}
    return {str(dtype).removeprefix("torch."): tensor_digest(
        {name: tensor.detach().to(dtype) if tensor.is_floating_point() else tensor for name, tensor in state.items()})
        for dtype in CAST_DTYPES}


def _memoised_over_base(model: nn.Module, cache: "weakref.WeakKeyDictionary", compute):
    """``compute(state)`` of the base's state-dict tensors outside the adapted set (a voiced view's base, else
    ``model``'s own), kept in ``cache`` per model until one of those tensors is replaced or modified in place."""
    base = model.__dict__.get(BASE_ATTRIBUTE)
    if base is not None:
        return _memoised_over_base(base, cache, compute)
    excluded = set(adapted_names(model))
    state = {name: tensor for name, tensor in model.state_dict(keep_vars=True).items() if name not in excluded}
    key = tuple((name, tensor.data_ptr(), tensor._version) for name, tensor in sorted(state.items()))
    cached = cache.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = compute(state)
    cache[model] = (key, value)
    return value


def tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over the tensors of ``state``: name, dtype, shape and bytes, in sorted order of names."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        # reshape: 0-dim tensors (e.g. BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return "sha256:" + digest.hexdigest()


def _own_containers(module: nn.Module) -> nn.Module:
    """Give a shallow copy its own child/parameter/buffer tables (values still shared)."""
    module._modules = dict(module._modules)
    module._parameters = dict(module._parameters)
    module._buffers = dict(module._buffers)
    return module


def voiced_view(base: nn.Module, parameters: dict[str, torch.Tensor], voice=None) -> nn.Module:
    """A copy of ``base`` that shares all of its weights except ``parameters`` (``{name: tensor}``), which it
    holds as its own (frozen) parameters. ``base`` is not changed. ``voice`` is kept as ``metatts_voice``. When
    ``parameters`` reach outside the adapted set (an adapted vocoder), the base is kept under ``BASE_ATTRIBUTE``:
    the view then has the base's fingerprint, another voice given to it at synthesis speaks as on the base, and a
    view made from it starts from the base, so nothing of this voice stays."""
    base = base.__dict__.get(BASE_ATTRIBUTE, base)  # a view whose voice went beyond the adapted set: its base
    own = dict(base.named_parameters())
    view = _own_containers(copy.copy(base))
    copies = {"": view}
    for name, value in parameters.items():
        if name not in own:
            raise ValueError(f"The voice holds {name!r}, which the base does not have.")
        *path, leaf = name.split(".")
        module, prefix = view, ""
        for part in path:
            key = f"{prefix}.{part}" if prefix else part
            if key not in copies:
                copies[key] = _own_containers(copy.copy(module._modules[part]))
                module._modules[part] = copies[key]
            module, prefix = copies[key], key
        target = own[name]
        module._parameters[leaf] = nn.Parameter(
            value.detach().to(device=target.device, dtype=target.dtype).clone(), requires_grad=False)
    view.metatts_voice = voice
    view.__dict__.pop(BASE_ATTRIBUTE, None)
    if set(parameters) - set(adapted_names(base)):
        object.__setattr__(view, BASE_ATTRIBUTE, base)
    return view


def load_base(model_class, base_model: str, revision: str | None = None, **hub_kwargs) -> nn.Module:
    """Load a base checkpoint once per ``(id, revision, dtype)`` and share it (safetensors only).

    ``hub_kwargs``: ``token``, ``cache_dir``, ``local_files_only``, ``dtype``.
    """
    if hub_kwargs.get("dtype") in (None, "auto"):  # the pipeline passes "auto"; both mean the checkpoint's own
        hub_kwargs.pop("dtype", None)
    key = (str(base_model), revision, str(hub_kwargs.get("dtype", "auto")), model_class)
    with _BASES_LOCK:
        if key in _BASES:
            return _BASES[key]
        config = model_class.config_class.from_pretrained(
            base_model, revision=revision,
            **{k: v for k, v in hub_kwargs.items() if k in ("token", "cache_dir", "local_files_only")})
        if getattr(config, "metatts_voice", None):
            raise ValueError(f"{base_model} is itself a voice, not a base checkpoint.")
        model = model_class.from_pretrained(base_model, config=config, revision=revision, use_safetensors=True,
                                            **hub_kwargs)
        model.eval()
        _BASES[key] = model
        logger.info("Loaded base %s (revision %s) for voices.", base_model, revision)
        return model


def clear_base_cache() -> None:
    """Forget the shared bases (they are freed once no voiced model refers to them)."""
    with _BASES_LOCK:
        _BASES.clear()


__all__ = ["CAST_DTYPES", "base_fingerprint", "cast_fingerprints", "tensor_digest", "voiced_view", "load_base",
           "clear_base_cache"]
