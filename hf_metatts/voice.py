"""Voices: the adapted parameter set of a base checkpoint, saved small and shared like a model.

``voice = model.adapt(clips, method="maml", steps=5)`` adapts; ``voice.save_pretrained(dir)`` writes

- ``voice.safetensors``: the adapted parameter set (kilobytes), plus the adapted vocoder parameters under their
  ``vocoder.*`` names when the vocoder was adapted too (``vocoder_steps``: 0.8 MB for the bundled checkpoint's
  output layer),
- ``voice_config.json``: base checkpoint id, revision and weight fingerprint, method, steps, shots, language,
  sample rate, library version and a checksum of the tensors,
- ``config.json``: the base's config plus a ``metatts_voice`` entry, so ``pipeline("text-to-speech",
  model=dir)`` and ``MetaTTSForTextToSpeech.from_pretrained(dir)`` load the base and apply the voice,
- the tokenizer and feature extractor of the base, and ``README.md`` (a card from ``model_cards/``).

Only JSON and safetensors are read back. A voice applied to a base with other weights raises
`VoiceMismatchError` naming both fingerprints.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields

import torch

from .voice_base import base_fingerprint, load_base, voiced_view
from .voice_errors import VoiceConfigMissingError, VoiceFileError, VoiceMismatchError

logger = logging.getLogger(__name__)

VOICE_CONFIG_NAME = "voice_config.json"
VOICE_WEIGHTS_NAME = "voice.safetensors"
VOICE_FORMAT_VERSION = 1
#: Key of the ``config.json`` entry that marks a folder as a voice.
VOICE_MARKER = "metatts_voice"
_HUB_KEYS = ("revision", "token", "cache_dir", "local_files_only", "subfolder")


@dataclass
class VoiceConfig:
    """What a voice was adapted from and how (``voice_config.json``)."""

    base_model: str | None
    base_fingerprint: str
    base_revision: str | None = None
    #: the base's fingerprint in each precision it can be loaded in (``voice_base.cast_fingerprints``): the voice
    #: applies to the base loaded with ``dtype=torch.float16`` or ``torch.bfloat16`` too
    base_fingerprints_by_dtype: dict[str, str] = field(default_factory=dict)
    method: str = "maml"
    steps: int = 0
    shots: int = 0
    language: str | None = None
    sampling_rate: int = 16000
    support_seconds: float = 0.0
    learning_rate: float | None = None
    vocoder_steps: int = 0
    vocoder_learning_rate: float | None = None
    vocoder_support_loss: dict | None = None
    #: what prosody matching did (`hf_metatts.voice_prosody.ProsodyMatch.to_dict`), None when it was not asked for
    prosody_match: dict | None = None
    #: what the rhythm fit did (`hf_metatts.voice_prosody.RhythmMatch.to_dict`), None when it was not asked for
    rhythm_match: dict | None = None
    adapted_parameter_names: list[str] = field(default_factory=list)
    library_version: str = ""
    tensors_sha256: str | None = None
    format_version: int = VOICE_FORMAT_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "voice_config.json") -> "VoiceConfig":
        if not isinstance(data, dict):
            raise VoiceFileError(f"{source} is not a JSON object: the voice is corrupted.")
        if int(data.get("format_version", 1)) > VOICE_FORMAT_VERSION:
            raise VoiceFileError(f"{source} was written by a newer hf-metatts (format {data['format_version']}): "
                                 "upgrade hf-metatts.")
        missing = [name for name in ("base_model", "base_fingerprint") if name not in data]
        if missing:
            raise VoiceFileError(f"{source} lacks {missing}: the voice is corrupted or was edited.")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over names, dtypes, shapes and bytes of ``tensors`` in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


class MetaTTSVoice:
    """An adapted voice: ``adapted_parameters`` ``{name: tensor}`` (the model's shapes) and a `VoiceConfig`.

    Pass it as ``model(..., voice=voice)`` or ``forward_params={"voice": voice}`` in the pipeline, or get a
    voiced model with :meth:`apply_to` / :meth:`load_model`.
    """

    def __init__(self, adapted_parameters: dict[str, torch.Tensor], config: VoiceConfig, processor=None,
                 base_config: dict | None = None):
        self.adapted_parameters = {name: value.detach().cpu().float().contiguous()
                                   for name, value in adapted_parameters.items()}
        self.config = config
        self.config.adapted_parameter_names = list(self.adapted_parameters)
        self.processor = processor
        self.base_config = base_config

    def __repr__(self) -> str:
        return (f"MetaTTSVoice(base={self.config.base_model!r}, method={self.config.method!r}, "
                f"steps={self.config.steps}, shots={self.config.shots}, floats={self.num_parameters})")

    @property
    def num_parameters(self) -> int:
        return sum(value.numel() for value in self.adapted_parameters.values())

    # ------------------------------------------------------------------------------------------
    def check_compatible(self, model) -> None:
        """Raise `VoiceMismatchError` naming both bases when ``model``'s weights are not this voice's base."""
        found = base_fingerprint(model)
        if found != self.config.base_fingerprint and found not in self.config.base_fingerprints_by_dtype.values():
            other = getattr(model, "name_or_path", "") or "<unsaved model>"
            precisions = ", ".join(["the adapted model's", *self.config.base_fingerprints_by_dtype])
            raise VoiceMismatchError(
                f"This voice was adapted on base {self.config.base_model!r} (fingerprint "
                f"{self.config.base_fingerprint}) but the model is {other!r} (fingerprint {found}): its weights "
                f"differ from the base's in every precision the voice knows ({precisions}). Load the voice's own "
                "base or adapt the voice again.")
        missing = set(self.adapted_parameters) - {name for name, _ in model.named_parameters()}
        if missing:
            raise VoiceMismatchError(f"The model lacks the voice's parameters {sorted(missing)[:4]}.")

    def apply_to(self, model):
        """A voiced model sharing ``model``'s weights (``model`` is unchanged); checks the fingerprint first."""
        self.check_compatible(model)
        return voiced_view(model, self.adapted_parameters, voice=self)

    def load_model(self, model_class=None, **hub_kwargs):
        """Load the base named in the config (shared per process) and return it with this voice applied."""
        if model_class is None:
            from .modeling_metatts import MetaTTSForTextToSpeech as model_class
        if not self.config.base_model:
            raise VoiceFileError("This voice does not name its base checkpoint (it was adapted on an unsaved model): "
                                 "load the base yourself and use voice.apply_to(model).")
        base = load_base(model_class, self.config.base_model, self.config.base_revision, **hub_kwargs)
        return self.apply_to(base)

    # ------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, push_to_hub: bool = False, repo_id: str | None = None, **push_kwargs):
        """Write the voice folder (see the module docstring). Files are written to a temporary folder first, so a
        failure leaves ``save_directory`` as it was."""
        from safetensors.torch import save_file

        from .model_cards import voice_card

        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise OSError(f"{save_directory} is a file: give a folder for the voice.")
        parent = os.path.dirname(os.path.abspath(save_directory))
        os.makedirs(parent, exist_ok=True)
        self.config.tensors_sha256 = tensors_checksum(self.adapted_parameters)
        staging = tempfile.mkdtemp(prefix=".voice-", dir=parent)
        try:
            save_file(dict(self.adapted_parameters), os.path.join(staging, VOICE_WEIGHTS_NAME),
                      metadata={"format": "pt", "base_fingerprint": self.config.base_fingerprint})
            _write_json(os.path.join(staging, VOICE_CONFIG_NAME), self.config.to_dict())
            if self.base_config is not None:
                config = {k: v for k, v in self.base_config.items() if k not in ("auto_map", "_name_or_path")}
                config[VOICE_MARKER] = {"base_model": self.config.base_model,
                                        "base_revision": self.config.base_revision,
                                        "base_fingerprint": self.config.base_fingerprint}
                _write_json(os.path.join(staging, "config.json"), config)
            if self.processor is not None:
                self.processor.save_pretrained(staging)
                for name in os.listdir(staging):  # the voice ships no code
                    if name.endswith(".py"):
                        os.remove(os.path.join(staging, name))
            card = voice_card(self.config, repo_id=repo_id, num_floats=self.num_parameters,
                              floats_by_name={n: v.numel() for n, v in self.adapted_parameters.items()})
            card.save(os.path.join(staging, "README.md"))
            os.makedirs(save_directory, exist_ok=True)
            for name in os.listdir(staging):
                os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("Saved voice to %s (%d floats).", save_directory, self.num_parameters)
        if push_to_hub:
            return self.push_to_hub(repo_id or os.path.basename(os.path.abspath(save_directory)), **push_kwargs)
        return None

    def push_to_hub(self, repo_id: str, private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload MetaTTS voice", revision: str | None = None):
        """Save to a temporary folder and upload it as model repo ``repo_id``; returns the `CommitInfo`."""
        from .hub import upload_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, repo_id=repo_id)
            return upload_folder(folder, repo_id, private=private, token=token, commit_message=commit_message,
                                 revision=revision)

    @classmethod
    def from_pretrained(cls, path_or_repo_id, **hub_kwargs) -> "MetaTTSVoice":
        """Load a voice folder or Hub repo (JSON and safetensors only).

        Raises:
            VoiceConfigMissingError: no ``voice_config.json``. VoiceFileError: missing, truncated or tampered
            ``voice.safetensors``, or a config that does not describe the tensors.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        source = os.fspath(path_or_repo_id)
        hub_kwargs = {k: v for k, v in hub_kwargs.items() if k in _HUB_KEYS and v is not None}
        config_path = _resolve(source, VOICE_CONFIG_NAME, hub_kwargs)
        if config_path is None:
            raise VoiceConfigMissingError(f"{source} has no {VOICE_CONFIG_NAME}: it is not a voice, or the upload is "
                                          "incomplete. Save the voice again with voice.save_pretrained(...).")
        config = VoiceConfig.from_dict(_read_json(config_path), f"{source}/{VOICE_CONFIG_NAME}")
        weights_path = _resolve(source, VOICE_WEIGHTS_NAME, hub_kwargs)
        if weights_path is None:
            raise VoiceFileError(f"{source} has no {VOICE_WEIGHTS_NAME}: the voice is incomplete.")
        try:
            tensors = load_file(weights_path)
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise VoiceFileError(f"{weights_path} is truncated or corrupted ({error}). Save or download the voice "
                                 "again.") from error
        if sorted(tensors) != sorted(config.adapted_parameter_names):
            raise VoiceFileError(f"{weights_path} holds {sorted(tensors)[:4]}..., but {VOICE_CONFIG_NAME} lists "
                                 f"{sorted(config.adapted_parameter_names)[:4]}...: the voice was tampered with.")
        found = tensors_checksum(tensors)
        if config.tensors_sha256 != found:
            raise VoiceFileError(f"{weights_path} does not match the checksum in {VOICE_CONFIG_NAME} "
                                 f"({found} != {config.tensors_sha256}): the voice was tampered with or damaged.")
        if not all(torch.isfinite(value).all() for value in tensors.values()):
            raise VoiceFileError(f"{weights_path} holds NaN or infinite values.")
        base_config = None
        config_json = _resolve(source, "config.json", hub_kwargs)
        if config_json is not None:
            base_config = _read_json(config_json)
            base_config.pop(VOICE_MARKER, None)
        processor = None
        if _resolve(source, "tokenizer_config.json", hub_kwargs) is not None:
            from .processing_metatts import MetaTTSProcessor

            processor = MetaTTSProcessor.from_pretrained(source, **hub_kwargs)
        return cls(tensors, config, processor=processor, base_config=base_config)


# ----------------------------------------------------------------------------------------------
def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VoiceFileError(f"{path} is not valid JSON ({error}): the voice is corrupted.") from error


def _resolve(source: str, filename: str, hub_kwargs: dict) -> str | None:
    """Local path of ``filename`` in a folder or (cached) Hub repo, or None when the repo has no such file."""
    if os.path.isdir(source):
        path = os.path.join(source, hub_kwargs.get("subfolder") or "", filename)
        return path if os.path.isfile(path) else None
    from transformers.utils import cached_file

    return cached_file(source, filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs)


def _is_voice(source: str, kwargs: dict) -> bool:
    """Whether ``source`` is a voice: its ``config.json`` (the file a model load reads anyway) has the marker."""
    config = kwargs.get("config")
    if config is not None and not isinstance(config, (str, os.PathLike)):
        return bool(getattr(config, VOICE_MARKER, None))
    hub_kwargs = {k: v for k, v in kwargs.items() if k in _HUB_KEYS and v is not None}
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, hub_kwargs.get("subfolder") or "",
                                                             VOICE_CONFIG_NAME)):
        return True
    try:
        config_path = _resolve(source, "config.json", hub_kwargs)
    except OSError:  # the normal load reports it
        return False
    return config_path is not None and VOICE_MARKER in _read_json(config_path)


def load_voiced_model(model_class, pretrained_model_name_or_path, *args, **kwargs):
    """``from_pretrained`` of a voice folder or repo: its base (shared per process) with the voice applied.

    Returns None when ``pretrained_model_name_or_path`` is not a voice (the caller loads it as a checkpoint).
    """
    source = os.fspath(pretrained_model_name_or_path)
    if not _is_voice(source, kwargs):
        return None
    voice = MetaTTSVoice.from_pretrained(source, **kwargs)
    base_kwargs = {k: kwargs[k] for k in ("token", "cache_dir", "local_files_only", "dtype") if kwargs.get(k)}
    return voice.load_model(model_class, **base_kwargs)


def load_voice(voice, **hub_kwargs) -> "MetaTTSVoice":
    """A `MetaTTSVoice` from itself, a folder or a Hub id."""
    return voice if isinstance(voice, MetaTTSVoice) else MetaTTSVoice.from_pretrained(voice, **hub_kwargs)


def adapt_model(model, clips, **kwargs) -> MetaTTSVoice:
    """Implementation of ``MetaTTSForTextToSpeech.adapt``; see :func:`hf_metatts.voice_adapt.adapt_model`."""
    from .voice_adapt import adapt_model as _adapt

    return _adapt(model, clips, **kwargs)


__all__ = ["MetaTTSVoice", "VoiceConfig", "adapt_model", "load_voice", "load_voiced_model", "tensors_checksum",
           "VOICE_CONFIG_NAME", "VOICE_WEIGHTS_NAME"]
