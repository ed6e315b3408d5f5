"""The one public adaptation entry point: a few support utterances -> adapted parameters of the voice set."""

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .errors import InvalidMetaConfigError
from .global_variance import global_variance_term
from .head import MetaLearnerHead, resolve_adapted_names
from .learner import encode_support
from .maml import SGDRule, StepCallback, inner_loop, make_loss_fn, with_fixed_alignment

logger = logging.getLogger(__name__)

ADAPT_METHODS = ("maml", "metasgd", "meta_lstm", "zero_shot", "finetune")


def default_adapted_names(model, meta_learner=None) -> list[str]:
    """The adapted set `adapt_parameters` steps on when not given one: ``meta_learner``'s, else the model's."""
    if meta_learner is not None and meta_learner.config.adapted_parameter_names:
        return list(meta_learner.config.adapted_parameter_names)
    return resolve_adapted_names(model)


def adapt_parameters(
    model: nn.Module,
    support_batch: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]],
    method: str = "maml",
    steps: int | None = None,
    meta_learner: MetaLearnerHead | None = None,
    lr: float | None = None,
    init: Mapping[str, torch.Tensor] | None = None,
    callback: StepCallback | None = None,
    adapted_names: Sequence[str] | None = None,
    loss_term: Callable[[object, Mapping[str, torch.Tensor]], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Adapt the model's adapted parameter set to a support set; the model's own parameters are untouched.

    Args:
        model: a ``MetaTTSForTextToSpeech`` (or any module with the same call contract). Its train/eval mode
            is left as the caller set it (call ``model.eval()`` first to adapt without dropout).
        support_batch: one collated batch (``input_ids`` (b,N), ``attention_mask`` (b,N), ``labels``
            (b,T,80), ``labels_attention_mask`` (b,T), optional ``pitch`` (b,T)) or a list of such batches.
        method:
            ``maml``: ``steps`` SGD steps with ``lr`` (default: the meta-learner's ``inner_lr``, else 0.01; Adam
            directions when the meta-learner was trained with ``inner_optimizer="adam"``);
            ``metasgd``: the learned per-parameter learning rates of ``meta_learner`` (on SGD or Adam directions);
            ``meta_lstm``: the learned Meta-LSTM optimiser of ``meta_learner`` replaces SGD;
            ``zero_shot``: the support encoder's voice (``model.encode_voice``), then ``steps`` steps of the
            meta-learner's own rule (its learned rates or Meta-LSTM; ``lr``, when given, replaces them with one rate;
            ``steps=0``: encoder only). ``maml``, ``metasgd`` and ``meta_lstm`` also start from the encoder's
            voice when their meta-learner was trained that way (``zero_shot_start``);
            ``finetune``: the baseline, ``steps`` Adam steps with ``lr`` (default ``finetune_lr`` or 1e-3).
        steps: inner steps (default: the meta-learner's ``inner_steps``, else 5).
        meta_learner: from :func:`hf_metatts.meta.load_meta_learner`; required for metasgd and meta_lstm.
        lr: learning rate for maml, zero_shot refinement and finetune.
        init: starting values for (some of) the adapted set; default: the model's own (zero_shot: encoder).
        callback: ``callback(step, support_loss, params)`` after each step (step counts from 1).
        adapted_names: names of the adapted set; default: the meta-learner's, else
            ``model.adapted_parameter_names()``.
        loss_term: ``loss_term(model_output, batch) -> scalar`` added to each support batch's loss (e.g. a
            speaker-identity term, ``hf_metatts.meta.identity``); default: the global-variance term of the
            meta-learner's ``global_variance_weight`` when it is > 0 (not for ``finetune``, the baseline), else
            the model's own loss alone.

    Returns:
        ``{name: tensor}`` for the adapted set, detached, same shapes and device as the model's parameters.

    Raises:
        InvalidMetaConfigError: unknown method, or a learned method without a matching ``meta_learner``.
    """
    if method not in ADAPT_METHODS:
        raise InvalidMetaConfigError(f"method={method!r} is unknown: choose one of {', '.join(ADAPT_METHODS)}.")
    cfg = meta_learner.config if meta_learner is not None else None
    if method in ("metasgd", "meta_lstm") and (cfg is None or cfg.method != method):
        found = "no meta-learner" if cfg is None else f"a meta-learner trained with method={cfg.method!r}"
        raise InvalidMetaConfigError(
            f"method={method!r} needs the meta-learner saved by a {method} run (got {found}); "
            "load it with hf_metatts.meta.load_meta_learner(checkpoint_dir) or choose method='maml'."
        )
    names = list(adapted_names) if adapted_names is not None else default_adapted_names(model, meta_learner)
    if steps is None:
        steps = cfg.inner_steps if cfg is not None else 5
    batches = [support_batch] if isinstance(support_batch, Mapping) else list(support_batch)
    batches = with_fixed_alignment(model, batches)
    own = dict(model.named_parameters())
    params = {n: own[n].detach().clone() for n in names}
    zero_shot_trained = cfg is not None and cfg.zero_shot_start and method in ("maml", "metasgd", "meta_lstm")
    if (method == "zero_shot" or zero_shot_trained) and init is None:
        with torch.no_grad():
            init = encode_support(model, batches, params)
    if init is not None:
        params.update({n: t.detach().clone() for n, t in init.items() if n in params})
    if loss_term is None and cfg is not None and cfg.global_variance_weight > 0 and method != "finetune":
        loss_term = global_variance_term(cfg.global_variance_weight)
    loss_fn = make_loss_fn(model, term=loss_term)
    with torch.enable_grad():
        if method == "finetune":
            ft_lr = lr if lr is not None else (cfg.finetune_lr if cfg is not None else 1e-3)
            params = _finetune(loss_fn, params, batches, steps, ft_lr, callback)
        else:
            if meta_learner is None:
                rule = SGDRule(lr if lr is not None else 0.01)
            elif method in ("metasgd", "meta_lstm") or (method == "zero_shot" and lr is None):
                rule = meta_learner.rule(detach=True)  # the learned rule: rates (SGD or Adam directions), Meta-LSTM
            else:  # maml, or zero_shot with an explicit lr: one rate, the meta-learner's inner optimizer
                rule = meta_learner.rule(lr=lr if lr is not None else cfg.inner_lr)
            result = inner_loop(loss_fn, params, batches, steps, rule, first_order=True, callback=callback)
            if not result.finite:
                logger.warning("Adaptation diverged (NaN/inf) after %d steps; returning the last finite parameters.",
                               len(result.support_losses))
            params = result.params
    return {n: p.detach() for n, p in params.items()}


def _finetune(loss_fn, params, batches, steps, lr, callback):
    """Baseline: Adam on detached copies of the adapted set."""
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    optimizer = torch.optim.Adam(leaves.values(), lr=lr)
    for step in range(steps):
        loss = loss_fn(leaves, batches)
        if not torch.isfinite(loss):
            logger.warning("Fine-tuning diverged (NaN/inf) at step %d; stopping.", step)
            break
        # autograd.grad, not backward(): the model's own .grad fields stay untouched
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        for leaf, grad in zip(leaves.values(), grads):
            leaf.grad = torch.zeros_like(leaf) if grad is None else grad
        optimizer.step()
        if callback is not None:
            callback(step + 1, float(loss.detach()), {n: p.detach() for n, p in leaves.items()})
    return leaves
