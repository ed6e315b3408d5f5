"""Prosody matching: a voice's duration and pitch predictors refitted in closed form to the support clips.

The gradient steps of adaptation change the voice's speaker vector and conditional norms; the predictors of
durations and pitch read only the speaker vector, and five steps hardly move the rate or the pitch range they
predict (BENCHMARKS.md, "Speaking styles"). A style a user records (faster, livelier, flatter) is mostly rate and
intonation, so ``model.adapt(..., match_prosody=True)`` refits, after the steps, the output layer of each predictor
to what the support clips hold:

- **rate**: the duration predictor's output bias (it predicts ``log1p`` of frames per token) moves by the one
  constant that makes the voice's predicted frames of the tokens that sound (at least one frame in the clips)
  add up to the clips' own (the aligner's frames): ``log((sum d + n) / (sum d_pred + n))`` over those ``n``
  tokens;
- **pitch level and range**: the pitch predictor's output ``p`` becomes ``a * p + b`` over the tokens with voiced
  frames (token pitch as the model is trained on it: the mean normalised log-F0 of its voiced frames): ``a`` is the
  ratio of the clips' spread of token pitch around each clip's median to the predicted one (median absolute
  deviations, so a pitch tracker's octave slips on a few tokens do not count), and ``b`` moves the predicted
  median to the clips'.

The refitted values are the voice's own copies of ``duration_predictor.head.bias``, ``pitch_predictor.head.weight``
and ``pitch_predictor.head.bias`` (162 floats on the bundled checkpoint): a saved voice carries them like its other
parameters and every synthesis path uses them; the base is unchanged.

**Rhythm** (``model.adapt(..., match_rhythm=True)``, :func:`match_rhythm`) goes further for the durations: the
duration predictor's whole output layer (weight and bias) is refitted by ridge regression on every token of the
clips, from the features the layer reads to ``log1p`` of the aligner's frames, the weight held towards the voice's
own by ``ridge`` per token and the bias free. A language the checkpoint never heard has durations its predictor
does not know (BENCHMARKS.md, "Languages the checkpoint never heard"): the five clips hold a few hundred tokens of
them. The voice then holds its own ``duration_predictor.head.weight`` and ``.bias`` (161 floats on the
bundled checkpoint).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch.func import functional_call

logger = logging.getLogger(__name__)

DURATION_BIAS = "duration_predictor.head.bias"
DURATION_WEIGHT = "duration_predictor.head.weight"
PITCH_WEIGHT = "pitch_predictor.head.weight"
PITCH_BIAS = "pitch_predictor.head.bias"
SEMITONES_PER_LOG = 12.0 / math.log(2.0)


class ProsodyMatchError(ValueError):
    """Prosody matching cannot run on these clips or this model; the message says what to change."""


@dataclass(frozen=True)
class ProsodyLimits:
    """Bounds on what matching may do, so a few odd clips cannot make a voice unusable: the duration bias shift
    within ``[-log(max_rate_factor), log(max_rate_factor)]`` (a long token's frames change by at most that
    factor), the pitch range factor within ``[1 / max_range_factor, max_range_factor]``, the pitch level within
    ``max_shift_semitones``; pitch is matched only on ``min_voiced_tokens`` or more voiced tokens."""

    max_rate_factor: float = 2.0
    max_range_factor: float = 4.0
    max_shift_semitones: float = 12.0
    min_voiced_tokens: int = 10


@dataclass(frozen=True)
class ProsodyMatch:
    """What matching did: ``duration_factor`` (the voice's predicted frames of the support texts' sounding tokens,
    after over before; above 1: slower), ``pitch_shift_semitones`` (the predicted median pitch moved by) and
    ``pitch_range_factor`` (the token-to-token pitch movement scaled by; 1 where pitch was not matched), and the
    tokens each fit read."""

    duration_factor: float
    pitch_shift_semitones: float
    pitch_range_factor: float
    sounding_tokens: int
    voiced_tokens: int

    def to_dict(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items()}


#: The key of `predictor_outputs` that holds what the duration predictor's output layer reads.
DURATION_FEATURES = "duration_predictor.head.input"


@torch.no_grad()
def predictor_outputs(model, params: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
    """The duration and pitch predictors' outputs ``(B, N)`` (``"duration_predictor"``, ``"pitch_predictor"``) and
    what the duration predictor's output layer reads, ``(B, N, F)`` (:data:`DURATION_FEATURES`), for a collated
    support ``batch`` (with ``labels`` and ``durations``: the training forward, teacher-forced) read in the voice
    ``params``."""
    outputs: dict[str, torch.Tensor] = {}

    def record(name: str, value: torch.Tensor) -> None:  # the first call of each module: the batch's own
        outputs.setdefault(name, value.detach())

    hooks = [getattr(model, name).register_forward_hook(
        lambda module, args, output, name=name: record(name, output))
        for name in ("duration_predictor", "pitch_predictor")]
    hooks.append(model.duration_predictor.head.register_forward_hook(
        lambda module, args, output: record(DURATION_FEATURES, args[0])))
    try:
        functional_call(model, params, args=(), kwargs=dict(batch), strict=False)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def _check_aligned(batch: dict, what: str) -> None:
    """Raise `ProsodyMatchError` unless ``batch`` holds each clip's durations and log-mels (``what``: the fit)."""
    if batch.get("durations") is None or batch.get("labels") is None:
        raise ProsodyMatchError(f"{what} reads each support clip's durations and log-mels: pass batches from "
                                "with_fixed_alignment.")


def _text_mask(model, batch: dict) -> torch.Tensor:
    """``(B, N)`` bool: the batch's text tokens (its attention mask, else the tokens that are not padding)."""
    if batch.get("attention_mask") is None:
        return batch["input_ids"].ne(model.config.pad_token_id)
    return batch["attention_mask"].bool()


def _voiced_rows(values: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The masked entries of each row of ``values`` ``(B, N)`` (``mask`` ``(B, N)`` bool), one 1-D tensor per row
    that has any."""
    return [row[keep] for row, keep in zip(values, mask) if keep.any()]


def _median(values: torch.Tensor) -> float:
    """The median of a 1-D tensor (the mean of the two middle values for an even count)."""
    ordered = values.sort().values
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else float(ordered[middle - 1: middle + 1].mean())


def _level_and_spread(rows: list[torch.Tensor]) -> tuple[float, float]:
    """The median of all values of ``rows`` and the median absolute deviation of each value from its own row's
    median."""
    deviations = torch.cat([(row - _median(row)).abs() for row in rows])
    return _median(torch.cat(rows)), _median(deviations)


@dataclass
class _SupportProsody:
    """What the clips hold and what the voice predicts for their texts: the frames of each sounding token (the
    aligner's, ``(n,)``) and the voice's (``expm1`` of its duration predictor, ``(n,)``), and per clip the normalised
    pitch of its voiced tokens, the clips' (``targets``) and the voice's (``predicted``)."""

    frames: torch.Tensor
    predicted_frames: torch.Tensor
    targets: list[torch.Tensor]
    predicted: list[torch.Tensor]


def _support_prosody(model, params: dict[str, torch.Tensor], batches: Sequence[dict]) -> _SupportProsody:
    from .modeling_metatts import _durations_to_path

    config = model.config
    frames, predicted_frames, targets, predicted = [], [], [], []
    for batch in batches:
        _check_aligned(batch, "Prosody matching")
        outputs = predictor_outputs(model, params, batch)
        durations = batch["durations"].long()
        text_mask = _text_mask(model, batch)
        sounding = text_mask & (durations > 0)
        frames.append(durations[sounding].double())
        predicted_frames.append(torch.expm1(outputs["duration_predictor"].double())[sounding])
        if batch.get("pitch") is None:
            continue
        pitch = batch["pitch"].float()
        mel_mask = (torch.ones_like(pitch, dtype=torch.bool) if batch.get("labels_attention_mask") is None
                    else batch["labels_attention_mask"].bool())
        voiced = (pitch > 0) & mel_mask
        normalised = torch.where(voiced, (pitch - config.pitch_mean) / config.pitch_std, torch.zeros_like(pitch))
        path = _durations_to_path(durations, pitch.shape[1])  # (B, T, N), as the training forward builds it
        voiced_frames = torch.einsum("btn,bt->bn", path, voiced.float())
        token_pitch = torch.einsum("btn,bt->bn", path, normalised) / voiced_frames.clamp(min=1)
        voiced_tokens = (voiced_frames > 0) & text_mask
        targets += _voiced_rows(token_pitch, voiced_tokens)
        predicted += _voiced_rows(outputs["pitch_predictor"].float(), voiced_tokens)
    frames, predicted_frames = torch.cat(frames), torch.cat(predicted_frames)
    if frames.numel() == 0:
        raise ProsodyMatchError("The support clips have no token with frames: nothing to match.")
    return _SupportProsody(frames, predicted_frames, targets, predicted)


def _duration_shift(support: _SupportProsody, limits: ProsodyLimits) -> tuple[float, float]:
    """The duration bias shift that makes the voice's frames of the sounding tokens add up to the clips' (bounded),
    and the factor it multiplies the voice's frames of those tokens by."""
    count = support.frames.numel()
    wanted = math.log((float(support.frames.sum()) + count)
                      / max(float(support.predicted_frames.sum()) + count, 1e-6))
    bound = math.log(limits.max_rate_factor)
    shift = min(max(wanted, -bound), bound)
    before = float(support.predicted_frames.sum())
    after = float(((support.predicted_frames + 1) * math.exp(shift) - 1).sum())
    return shift, after / before if before > 0 else math.exp(shift)


def _pitch_transform(support: _SupportProsody, config, limits: ProsodyLimits) -> tuple[float, float, float]:
    """``(a, b, level)``: the pitch predictor's output ``p`` becomes ``a * p + b``, which scales the predicted pitch's
    spread by ``a`` around its median and moves the median by ``level`` (normalised units; bounded)."""
    target_level, target_spread = _level_and_spread(support.targets)
    predicted_level, predicted_spread = _level_and_spread(support.predicted)
    scale = 1.0
    if predicted_spread > 0:
        scale = min(max(target_spread / predicted_spread, 1.0 / limits.max_range_factor), limits.max_range_factor)
    max_offset = limits.max_shift_semitones / SEMITONES_PER_LOG / config.pitch_std
    level = min(max(target_level - predicted_level, -max_offset), max_offset)
    return scale, predicted_level + level - scale * predicted_level, level


@torch.no_grad()
def match_prosody(model, params: dict[str, torch.Tensor], batches: Sequence[dict],
                  limits: ProsodyLimits | None = None) -> tuple[dict[str, torch.Tensor], ProsodyMatch]:
    """``params`` (an adapted voice) plus the refitted predictor outputs (module docstring), and what they do.

    ``batches``: collated support batches with ``labels`` ``(B, T, M)``, ``durations`` ``(B, N)`` (the aligner's,
    see `hf_metatts.meta.maml.with_fixed_alignment`) and, for pitch, ``pitch`` ``(B, T)`` frame log-F0 (0:
    unvoiced). Raises `ProsodyMatchError` when a batch lacks durations or the model lacks the predictors.
    """
    limits = limits or ProsodyLimits()
    own = dict(model.named_parameters())
    if any(name not in own for name in (DURATION_BIAS, PITCH_WEIGHT, PITCH_BIAS)):
        raise ProsodyMatchError("Prosody matching needs a model with duration and pitch predictors whose output "
                                f"layers are {DURATION_BIAS!r} and {PITCH_WEIGHT!r}; this model has none.")

    def current(name: str) -> torch.Tensor:
        return params.get(name, own[name]).detach()

    support = _support_prosody(model, params, batches)
    shift, duration_factor = _duration_shift(support, limits)
    new = {DURATION_BIAS: current(DURATION_BIAS) + shift}
    scale, pitch_shift, voiced_count = 1.0, 0.0, sum(len(row) for row in support.targets)
    if voiced_count >= limits.min_voiced_tokens:
        scale, offset, level = _pitch_transform(support, model.config, limits)
        new.update({PITCH_WEIGHT: current(PITCH_WEIGHT) * scale, PITCH_BIAS: current(PITCH_BIAS) * scale + offset})
        pitch_shift = level * model.config.pitch_std * SEMITONES_PER_LOG
    else:
        logger.info("Prosody matching: %d voiced tokens in the clips, fewer than %d: the pitch is left as predicted.",
                    voiced_count, limits.min_voiced_tokens)
    match = ProsodyMatch(duration_factor=duration_factor, pitch_shift_semitones=pitch_shift, pitch_range_factor=scale,
                         sounding_tokens=support.frames.numel(), voiced_tokens=voiced_count)
    logger.info("Prosody matched to the clips: durations x%.3f, pitch %+.2f semitones, pitch range x%.3f",
                match.duration_factor, match.pitch_shift_semitones, match.pitch_range_factor)
    return {**params, **new}, match


#: The ridge weight per support token of the rhythm fit, chosen on a screen of new-language speakers that the
#: benchmark's table does not read (0.01 of 0.01, 0.1 and 1: BENCHMARKS.md, "Languages the checkpoint never heard").
RHYTHM_RIDGE = 0.01


@dataclass(frozen=True)
class RhythmMatch:
    """What the rhythm fit did: the tokens it read, the mean squared error of the voice's ``log1p`` durations on
    them before and after, and the ridge weight per token."""

    tokens: int
    support_error_before: float
    support_error_after: float
    ridge: float

    def to_dict(self) -> dict:
        return {key: round(value, 5) if isinstance(value, float) else value for key, value in asdict(self).items()}


@torch.no_grad()
def duration_features(model, params: dict[str, torch.Tensor], batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """What the duration predictor's output layer reads on a teacher-forced support ``batch`` in the voice
    ``params``, ``(n, F)`` float64 over the batch's text tokens, and their targets ``log1p`` of the batch's
    ``durations``, ``(n,)``."""
    _check_aligned(batch, "Rhythm matching")
    features = predictor_outputs(model, params, batch)[DURATION_FEATURES]
    text_mask = _text_mask(model, batch)
    return features[text_mask].double(), torch.log1p(batch["durations"].double())[text_mask]


def ridge_towards(features: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, ridge: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(w, b)`` minimising ``sum (features @ w + b - targets)^2 + ridge * n * |w - weight|^2``: ``features``
    ``(n, F)``, ``targets`` ``(n,)``, ``weight`` ``(F,)``; ``b`` is free. float64."""
    mean_features, mean_target = features.mean(0), targets.mean()
    centred = features - mean_features
    penalty = ridge * len(targets)
    system = centred.T @ centred + penalty * torch.eye(features.shape[1], dtype=features.dtype)
    solution = torch.linalg.solve(system, centred.T @ (targets - mean_target) + penalty * weight)
    return solution, mean_target - mean_features @ solution


@torch.no_grad()
def match_rhythm(model, params: dict[str, torch.Tensor], batches: Sequence[dict], ridge: float = RHYTHM_RIDGE
                 ) -> tuple[dict[str, torch.Tensor], RhythmMatch]:
    """``params`` (an adapted voice) plus the duration predictor's output layer refitted to the support clips'
    token durations (module docstring), and what the fit did.

    ``batches``: collated support batches with ``labels`` and ``durations`` ``(B, N)`` (the aligner's, see
    `hf_metatts.meta.maml.with_fixed_alignment`). Raises `ProsodyMatchError` when a batch lacks durations, the model
    lacks a duration predictor with a linear output layer, or ``ridge`` is not positive.
    """
    if not isinstance(ridge, (int, float)) or isinstance(ridge, bool) or not ridge > 0 or not math.isfinite(ridge):
        raise ProsodyMatchError(f"ridge={ridge!r} must be a positive number ({RHYTHM_RIDGE} is the measured one).")
    own = dict(model.named_parameters())
    if any(name not in own for name in (DURATION_WEIGHT, DURATION_BIAS)):
        raise ProsodyMatchError(f"Rhythm matching needs a duration predictor whose output layer is {DURATION_WEIGHT!r}"
                                " and its bias; this model has none.")
    readings = [duration_features(model, params, batch) for batch in batches]
    features = torch.cat([feature for feature, _ in readings])
    targets = torch.cat([target for _, target in readings])
    if len(targets) == 0:
        raise ProsodyMatchError("The support clips have no text token: nothing to match.")
    weight = params.get(DURATION_WEIGHT, own[DURATION_WEIGHT]).detach()
    bias = params.get(DURATION_BIAS, own[DURATION_BIAS]).detach()
    new_weight, new_bias = ridge_towards(features, targets, weight.double()[0], ridge)
    match = RhythmMatch(
        tokens=len(targets), ridge=float(ridge),
        support_error_before=float(((features @ weight.double()[0] + bias.double()[0] - targets) ** 2).mean()),
        support_error_after=float(((features @ new_weight + new_bias - targets) ** 2).mean()))
    logger.info("Rhythm matched to the clips: %d tokens, log1p duration error %.4f -> %.4f", match.tokens,
                match.support_error_before, match.support_error_after)
    return {**params, DURATION_WEIGHT: new_weight.to(weight.dtype).reshape(weight.shape),
            DURATION_BIAS: new_bias.to(bias.dtype).reshape(bias.shape)}, match


__all__ = ["DURATION_FEATURES", "ProsodyLimits", "ProsodyMatch", "ProsodyMatchError", "RHYTHM_RIDGE", "RhythmMatch",
           "SEMITONES_PER_LOG", "duration_features", "match_prosody", "match_rhythm", "predictor_outputs",
           "ridge_towards"]
