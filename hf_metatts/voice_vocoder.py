"""Voice adaptation of the neural vocoder: a few Adam steps of a copy of the model's iSTFT vocoder on the support
clips, after the acoustic model has adapted to them.

The acoustic model predicts log-mels; the vocoder, trained on the corpus, turns them into audio with the voice
quality of the voices it learned from. Fine-tuned on the speaker's own support clips, it learns what the speaker's
audio sounds like. The training pairs are ground-truth aligned (as in `hf_metatts.training.vocoder_aligned`): the
adapted model reads each support clip on its own durations and pitch (teacher forcing), and the vocoder learns to
turn that log-mel ``(T, M)`` into the clip's first ``T * hop`` samples, with the loss it was trained with (log-mel
L1 + multi-resolution STFT) on random segments. The adapted vocoder parameters join the voice's adapted parameter set
under their model names (``vocoder.*``), so a saved voice carries them and every synthesis path uses them.

Settings come from the model config (``voice_vocoder_steps``, ``voice_vocoder_learning_rate``,
``voice_vocoder_parameters``, ``voice_vocoder_batch_size``, ``voice_vocoder_segment_frames``,
``voice_vocoder_adapt_phase``, ``voice_vocoder_clip_context``; off by default) or from
``model.adapt(..., vocoder_steps=..., vocoder_lr=...)``. Measured in BENCHMARKS.md ("The vocoder adapted to the
voice").
"""

from __future__ import annotations

import copy
import fnmatch
import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

logger = logging.getLogger(__name__)

VOCODER_PREFIX = "vocoder."
#: The parameters of the vocoder's output layer (`ISTFTVocoder.output_layer`), the only ones ``clip_context`` adapts.
OUTPUT_LAYER_PATTERNS = ("head.*", "final_norm.*")
#: The shortest segment the vocoder's 2048-point STFT loss accepts (see hf_metatts.training.vocoder).
MIN_SEGMENT_FRAMES = 5


class VocoderAdaptationError(ValueError):
    """Vocoder adaptation cannot run with these settings or this model; the message says what to change."""


@dataclass(frozen=True)
class VocoderAdaptation:
    """How the vocoder adapts to a voice: ``steps`` Adam steps of ``learning_rate`` on the parameters matching
    ``parameters`` (fnmatch patterns of the vocoder's own parameter names), each on ``batch_size`` random support
    segments of ``segment_frames`` frames; ``seed`` fixes the segments. With ``adapt_phase=False`` the output
    layer's phase rows (the second half of ``head``'s outputs) keep their values: the steps change only how loud
    each frequency is, not the phase the vocoder gives it. With ``clip_context=True`` the layers below the output
    layer read each whole support clip once, the context they have when the voice speaks, and the steps train the
    output layer on segments of those hidden states; the adapted parameters must then lie in the output layer
    (:data:`OUTPUT_LAYER_PATTERNS`)."""

    steps: int
    learning_rate: float
    parameters: tuple[str, ...] = ("*",)
    batch_size: int = 8
    segment_frames: int = 32
    seed: int = 0
    adapt_phase: bool = True
    clip_context: bool = False

    @classmethod
    def from_config(cls, config, steps: int | None = None, learning_rate: float | None = None) -> VocoderAdaptation:
        """The model config's settings, with ``steps`` / ``learning_rate`` in place of its own where given."""
        adaptation = cls(steps=config.voice_vocoder_steps if steps is None else steps,
                         learning_rate=config.voice_vocoder_learning_rate if learning_rate is None else learning_rate,
                         parameters=tuple(config.voice_vocoder_parameters),
                         batch_size=config.voice_vocoder_batch_size,
                         segment_frames=config.voice_vocoder_segment_frames,
                         adapt_phase=config.voice_vocoder_adapt_phase,
                         clip_context=config.voice_vocoder_clip_context)
        adaptation.validate()
        return adaptation

    def validate(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise VocoderAdaptationError(f"vocoder_steps={self.steps!r} must be a whole number >= 0 (0: the "
                                         "vocoder is not adapted).")
        if not np.isfinite(self.learning_rate) or not 0.0 < self.learning_rate < 1.0:
            raise VocoderAdaptationError(f"vocoder_lr={self.learning_rate!r} must lie in (0, 1); 3e-4 is the "
                                         "measured default.")
        for name in ("adapt_phase", "clip_context"):
            if not isinstance(getattr(self, name), bool):
                raise VocoderAdaptationError(f"{name}={getattr(self, name)!r} must be True or False.")
        layer_prefixes = tuple(pattern.rstrip("*") for pattern in OUTPUT_LAYER_PATTERNS)  # "head.", "final_norm."
        outside = [p for p in self.parameters if not str(p).startswith(layer_prefixes)]
        if self.clip_context and outside:
            raise VocoderAdaptationError(
                f"clip_context adapts the output layer alone ({', '.join(OUTPUT_LAYER_PATTERNS)}), but the parameter "
                f"patterns {outside} reach beyond it: give parameters={OUTPUT_LAYER_PATTERNS!r} or "
                "clip_context=False.")
        if self.batch_size < 1 or self.segment_frames < MIN_SEGMENT_FRAMES or not self.parameters:
            raise VocoderAdaptationError(
                f"batch_size={self.batch_size} must be >= 1, segment_frames={self.segment_frames} >= "
                f"{MIN_SEGMENT_FRAMES}, and at least one parameter pattern is needed (got {self.parameters!r}).")


def vocoder_parameter_names(vocoder: torch.nn.Module, patterns) -> list[str]:
    """The vocoder's own parameter names (``head.weight``, ...) that match any of ``patterns``.

    Raises:
        VocoderAdaptationError: a pattern matches no parameter (a misspelt one would otherwise leave part of what
            was asked for unadapted while the others run).
    """
    all_names = [name for name, _ in vocoder.named_parameters()]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in all_names)]
    if unmatched:
        raise VocoderAdaptationError(f"The patterns {unmatched} match no parameter of the vocoder: see "
                                     "`model.vocoder.named_parameters()` for its names.")
    return [name for name in all_names if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def keep_phase_rows(vocoder: torch.nn.Module, names: set[str]) -> int:
    """Zero the gradient of the phase rows of ``vocoder.head`` (its outputs ``F..2F``, ``F = n_fft // 2 + 1``) for
    whichever of ``head.weight`` / ``head.bias`` is in ``names``, so that Adam leaves those rows as they are.
    Returns how many parameter values those rows hold."""
    half = vocoder.head.out_features // 2

    def zero_phase_rows(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[half:] = 0
        return grad

    kept = 0
    for name in ("head.weight", "head.bias"):
        if name in names:
            parameter = vocoder.get_parameter(name)
            parameter.register_hook(zero_phase_rows)
            kept += parameter[half:].numel()
    return kept


def has_adaptable_vocoder(model) -> bool:
    """Whether ``model`` speaks through a vocoder with weights to adapt (the trained iSTFT vocoder)."""
    return model.config.vocoder_type == "istft"


def check_adaptable(model) -> None:
    """Raise `VocoderAdaptationError` unless ``model`` owns a trained iSTFT vocoder."""
    if not has_adaptable_vocoder(model):
        raise VocoderAdaptationError(
            f"This model speaks through vocoder_type={model.config.vocoder_type!r}, which has no weights to adapt: "
            "vocoder adaptation needs the trained iSTFT vocoder (e.g. hf_metatts.DEFAULT_CHECKPOINT); use "
            "vocoder_steps=0.")


def resolve_vocoder_adaptation(model, steps: int | None = None, learning_rate: float | None = None
                               ) -> VocoderAdaptation:
    """The vocoder adaptation ``model.adapt`` runs: the config's settings with ``steps`` / ``learning_rate`` in place
    of its own where given. Steps asked for explicitly on a model without a trained vocoder raise
    `VocoderAdaptationError`; a config default there is skipped (0 steps, logged)."""
    adaptation = VocoderAdaptation.from_config(model.config, steps, learning_rate)
    if adaptation.steps and steps:
        check_adaptable(model)
    elif adaptation.steps and not has_adaptable_vocoder(model):
        logger.info("voice_vocoder_steps=%d is not used: the model speaks through %s, which has no weights.",
                    adaptation.steps, model.config.vocoder_type)
        adaptation = replace(adaptation, steps=0)
    return adaptation


def support_pairs(model, params: dict[str, torch.Tensor], batches: list[dict], waves: list[np.ndarray]) -> list:
    """Ground-truth-aligned pairs of the support clips: for each clip (in the order of ``batches``, collated
    support batches, and of ``waves``, its recording ``(samples,)`` at the model's rate) the adapted model's
    teacher-forced log-mel ``(T, M)`` and the recording's first ``T * hop`` samples (zero-padded if shorter)."""
    from .training.vocoder_aligned import AlignedClip, teacher_forced_mels

    hop = model.config.hop_length
    mels = [mel for batch in batches for mel in teacher_forced_mels(model, params, batch)]
    if len(mels) != len(waves):
        raise VocoderAdaptationError(f"{len(mels)} support log-mels but {len(waves)} recordings: give one recording "
                                     "per support clip.")
    pairs = []
    for index, (mel, wave) in enumerate(zip(mels, waves)):
        wave = np.asarray(wave, dtype=np.float32)[: len(mel) * hop]
        pairs.append(AlignedClip(str(index), "support", mel.astype(np.float32),
                                 np.pad(wave, (0, len(mel) * hop - len(wave)))))
    return pairs


class OutputLayer(torch.nn.Module):
    """``vocoder``'s output layer as a module of its own: hidden states ``(B, T, C)`` -> waveform ``(B, T * hop)``
    (`ISTFTVocoder.output_layer`), so segments of precomputed hidden states train it as log-mels train the vocoder."""

    def __init__(self, vocoder: torch.nn.Module):
        super().__init__()
        self.vocoder = vocoder

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.vocoder.output_layer(hidden.transpose(1, 2))


@torch.no_grad()
def hidden_state_pairs(vocoder: torch.nn.Module, pairs: list) -> list:
    """``pairs`` (:func:`support_pairs`) with each whole clip's log-mel ``(T, M)`` replaced by what the layers below
    the output layer make of it, ``(T, C)`` (`ISTFTVocoder.hidden_states`), read once; the audio is unchanged."""
    device = _device(vocoder)
    was_training = vocoder.training
    vocoder.eval()
    hidden_pairs = []
    for pair in pairs:
        hidden = vocoder.hidden_states(torch.from_numpy(pair.mel).unsqueeze(0).to(device))[0].T
        hidden_pairs.append(replace(pair, mel=hidden.float().cpu().numpy()))
    vocoder.train(was_training)
    return hidden_pairs


def adapt_vocoder(vocoder: torch.nn.Module, pairs: list, adaptation: VocoderAdaptation
                  ) -> tuple[dict[str, torch.Tensor], dict]:
    """``adaptation.steps`` Adam steps of a copy of ``vocoder`` on random segments of ``pairs`` (from
    :func:`support_pairs`) -> (``{"vocoder.<name>": tensor}`` for the adapted parameters, a report with the loss
    on one fixed draw of support segments before and after the steps, the parameter count and the seconds taken).
    ``vocoder`` is unchanged."""
    from .training.vocoder import VocoderLoss, VocoderTrainingArguments, mean_losses
    from .training.vocoder_aligned import AlignedSegmentSampler

    adaptation.validate()
    started = time.perf_counter()
    adapted = copy.deepcopy(vocoder)
    device = _device(adapted)
    names = set(vocoder_parameter_names(adapted, adaptation.parameters))
    trained = []
    for name, parameter in adapted.named_parameters():
        parameter.requires_grad_(name in names)
        if name in names:
            trained.append(parameter)
    kept = 0 if adaptation.adapt_phase else keep_phase_rows(adapted, names)
    criterion = VocoderLoss(adapted.config, VocoderTrainingArguments()).to(device)
    longest = max(len(pair.mel) for pair in pairs)
    if longest < MIN_SEGMENT_FRAMES:
        raise VocoderAdaptationError(f"The longest support clip has {longest} frames: vocoder adaptation needs "
                                     f"clips of at least {MIN_SEGMENT_FRAMES} frames.")
    frames = min(adaptation.segment_frames, longest)
    trainee = adapted
    if adaptation.clip_context:  # the steps read segments of whole-clip hidden states instead of log-mels
        trainee, pairs = OutputLayer(adapted), hidden_state_pairs(adapted, pairs)
    sampler = AlignedSegmentSampler(pairs, frames, adapted.config.hop_length, adaptation.seed)
    # the segments the report reads: their own draw, so the steps see the same segments with or without it
    probe_sampler = AlignedSegmentSampler(pairs, frames, adapted.config.hop_length, adaptation.seed + 1)
    probe = [tuple(tensor.to(device) for tensor in probe_sampler.sample(adaptation.batch_size))]
    before = mean_losses(trainee, criterion, probe)
    optimizer = torch.optim.Adam(trained, lr=adaptation.learning_rate, betas=(0.8, 0.99))
    trainee.train()
    with torch.enable_grad():
        for _ in range(adaptation.steps):
            inputs, target = sampler.sample(adaptation.batch_size)
            loss = criterion(trainee(inputs.to(device)), target.to(device))["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    trainee.eval()
    after = mean_losses(trainee, criterion, probe)
    values = {VOCODER_PREFIX + name: parameter.detach().clone() for name, parameter in adapted.named_parameters()
              if name in names}
    report = {"before": before, "after": after, "parameters": sum(p.numel() for p in trained) - kept,
              "seconds": round(time.perf_counter() - started, 3)}
    logger.info("vocoder adapted to the voice: %d steps on %d parameters, support mel L1 %.4f -> %.4f (%.2f s)",
                adaptation.steps, report["parameters"], before["mel_l1"], after["mel_l1"], report["seconds"])
    return values, report


def with_adapted_vocoder(model, params: dict[str, torch.Tensor], batches: list[dict], waves: list[np.ndarray],
                         adaptation: VocoderAdaptation) -> tuple[dict[str, torch.Tensor], dict]:
    """``params`` (an adapted voice) plus the ``vocoder.*`` values of ``model``'s vocoder adapted to the support
    clips (``batches`` and their recordings ``waves``, see :func:`support_pairs`), and the report of
    :func:`adapt_vocoder`."""
    values, report = adapt_vocoder(model.vocoder, support_pairs(model, params, batches, waves), adaptation)
    return {**params, **values}, report


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


__all__ = ["OUTPUT_LAYER_PATTERNS", "OutputLayer", "VOCODER_PREFIX", "VocoderAdaptation", "VocoderAdaptationError",
           "adapt_vocoder", "check_adaptable", "has_adaptable_vocoder",
           "hidden_state_pairs", "keep_phase_rows", "resolve_vocoder_adaptation", "support_pairs",
           "vocoder_parameter_names", "with_adapted_vocoder"]
