"""A speaker-identity term for the meta-objective: a frozen speaker encoder scores how much the adapted
model's query mels sound like the target speaker's.

The inner loop minimises the mel L1 loss, and the query loss after the steps is what meta-training
minimises. That loss is dominated by phonetic content and timing, not by who speaks: larger inner steps
raise speaker identification while leaving a higher support loss (``benchmarks/adaptation_rules.py``). With
``identity_loss_weight > 0`` the meta-objective adds ``1 - cos(e(predicted), e(target))`` per query utterance,
where ``e`` is a :class:`SpeakerIdentityEncoder` trained on the corpus's training speakers
(``hf-metatts train-identity-encoder``) and kept frozen. Only the meta-objective changes: the inner loop, and
so ``model.adapt`` at test time, still takes mel-L1 steps, whose initial point and learned rates are now chosen
for identity too.

The encoder reads the same normalised log-mels as the TTS model's targets (``labels``), so it scores the
decoder's output before any vocoder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..modeling_speaker_encoder import IdentityEncoderConfig, SpeakerIdentityEncoder
from .errors import InvalidMetaConfigError
from .objective import QueryObjective

IDENTITY_CONFIG_NAME = "identity_encoder_config.json"
IDENTITY_WEIGHTS_NAME = "identity_encoder.safetensors"

__all__ = ["IdentityEncoderConfig", "SpeakerIdentityEncoder", "identity_loss", "identity_measure", "identity_term",
           "load_identity_encoder", "save_identity_encoder"]


def save_identity_encoder(encoder: SpeakerIdentityEncoder, directory: str, extra: dict | None = None) -> None:
    """``identity_encoder_config.json`` (+ ``extra`` under ``training``, e.g. metrics) and the safetensors weights."""
    os.makedirs(directory, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()},
              os.path.join(directory, IDENTITY_WEIGHTS_NAME))
    with open(os.path.join(directory, IDENTITY_CONFIG_NAME), "w", encoding="utf-8") as handle:
        json.dump({**asdict(encoder.config), **({"training": extra} if extra else {})}, handle, indent=2)


def load_identity_encoder(directory: str) -> SpeakerIdentityEncoder:
    """A trained encoder from ``directory``, frozen (no gradients to its weights) and in eval mode.

    ``directory`` is a folder written by ``hf-metatts train-identity-encoder``, or a MetaTTS checkpoint whose
    support encoder sits on a speaker encoder (``voice_encoder_type="speaker_embedding"``, e.g. the bundled
    ``hf_metatts.DEFAULT_CHECKPOINT``): the checkpoint is loaded and its speaker encoder alone is returned.

    Raises:
        InvalidMetaConfigError: the folder holds neither, or it is a MetaTTS checkpoint without a speaker encoder.
    """
    config_path = os.path.join(directory, IDENTITY_CONFIG_NAME)
    weights_path = os.path.join(directory, IDENTITY_WEIGHTS_NAME)
    if not (os.path.isfile(config_path) and os.path.isfile(weights_path)):
        if _is_metatts_checkpoint(directory):
            return _checkpoint_speaker_encoder(directory)
        raise InvalidMetaConfigError(
            f"identity_encoder={directory!r} holds no {IDENTITY_CONFIG_NAME} and {IDENTITY_WEIGHTS_NAME} and is no "
            "MetaTTS checkpoint: train one with `hf-metatts train-identity-encoder --dataset PREPARED_CORPUS --out "
            "DIR`, or name a checkpoint whose support encoder has one (e.g. hf_metatts.DEFAULT_CHECKPOINT)."
        )
    with open(config_path, encoding="utf-8") as handle:
        values = json.load(handle)
    values.pop("training", None)
    encoder = SpeakerIdentityEncoder(IdentityEncoderConfig(**values))
    encoder.load_state_dict(load_file(weights_path), strict=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def _is_metatts_checkpoint(directory: str) -> bool:
    """Whether ``directory`` holds a ``config.json`` of ``model_type`` metatts."""
    from ..configuration_metatts import MetaTTSConfig

    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("model_type") == MetaTTSConfig.model_type


def _checkpoint_speaker_encoder(directory: str) -> SpeakerIdentityEncoder:
    """The frozen speaker encoder under the support encoder of the MetaTTS checkpoint at ``directory``."""
    from ..modeling_metatts import MetaTTSForTextToSpeech
    from ..modeling_speaker_encoder import SpeakerEmbeddingVoiceEncoder

    model = MetaTTSForTextToSpeech.from_pretrained(directory)
    if not isinstance(model.voice_encoder, SpeakerEmbeddingVoiceEncoder):
        kind = "none" if model.voice_encoder is None else repr(model.config.voice_encoder_type)
        raise InvalidMetaConfigError(
            f"The MetaTTS checkpoint {directory!r} has no speaker encoder (its support encoder: {kind}): name a "
            "checkpoint with voice_encoder_type='speaker_embedding', or train an encoder with "
            "`hf-metatts train-identity-encoder --dataset PREPARED_CORPUS --out DIR`."
        )
    encoder = model.voice_encoder.speaker_encoder
    encoder.requires_grad_(False)
    return encoder.eval()


def identity_loss(encoder: SpeakerIdentityEncoder, predicted: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``1 - cos`` between the embeddings of predicted and target mels ``(B, T, M)``; gradients reach
    ``predicted`` only (the target embedding and the encoder are constants)."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted mels {tuple(predicted.shape)} and targets {tuple(target.shape)} differ in shape")
    with torch.no_grad():
        reference = encoder(target.to(predicted.dtype), mask)
    return (1.0 - (encoder(predicted, mask) * reference).sum(-1)).mean()


def identity_term(encoder: SpeakerIdentityEncoder, weight: float):
    """``term(model_output, batch) -> weight * identity_loss(...)`` of the output's mels against the batch's
    ``labels`` (masked by ``labels_attention_mask``), for ``adapt_parameters(loss_term=...)``: the same term in
    the inner loop's own support loss."""

    measure = identity_measure(encoder)

    def term(out, batch) -> torch.Tensor:
        return weight * measure(out, batch)

    return term


class IdentityObjective(QueryObjective):
    """The meta-objective with the identity term: ``loss_fn(params, batches) -> scalar``, one forward per batch.

    Per batch: ``model(**batch).loss + weight * identity_loss(encoder, spectrogram, labels, labels_attention_mask)``,
    averaged over batches weighted by their number of utterances (a :class:`~hf_metatts.meta.objective.QueryObjective`).
    ``last_identity`` holds the mean identity term of the last call (a float, for logging).
    """

    def __init__(self, model: nn.Module, encoder: SpeakerIdentityEncoder, weight: float):
        self.encoder, self.weight = encoder, float(weight)
        super().__init__(model, {"identity": (weight, identity_measure(encoder))})

    @property
    def last_identity(self) -> float:
        return self.last["identity"]


def identity_measure(encoder: SpeakerIdentityEncoder):
    """``measure(output, batch) -> identity_loss`` of a training forward's mels against the batch's ``labels``."""

    def measure(out, batch) -> torch.Tensor:
        return identity_loss(encoder, out.spectrogram, batch["labels"], batch.get("labels_attention_mask"))

    return measure
