"""Speaker metrics on the embeddings of a pretrained speaker encoder.

The encoder is resemblyzer's GE2E ``VoiceEncoder`` (3-layer LSTM, 256-d embeddings, 16 kHz input),
whose weights ship inside its pip package, so every function here works offline. Embeddings are
L2-normalised, so the cosine of two of them lies in [-1, 1] (in practice about 0.4 to 0.95 for speech).

- :func:`embed_utterances`: audio -> ``(n, 256)`` embeddings.
- :func:`speaker_similarity`: cosine between paired reference and predicted utterances.
- :func:`speaker_verification_eer`: equal error rate of trial utterances against enrolled speakers.
- :func:`speaker_identification_accuracy`: how often the closest enrolled speaker is the claimed one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hf_metatts.errors import MetaTTSError

from .audio import AUDIO_DEFAULTS, EmptyAudioError, MismatchedInputsError, check_paired, load_audio

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeakerEncoderSettings:
    """Constants of the speaker encoder.

    Attributes:
        sampling_rate: input rate (Hz) of resemblyzer's encoder.
        embedding_dim: size of one embedding.
        max_embedding_dim: a 2-D array with more columns than this is taken for waveforms, not embeddings.
        device: torch device the encoder runs on.
        cpu_threads: torch intra-op threads while embedding on CPU. The encoder is a small LSTM over
            short sequences; on shared cores more threads spin-wait (measured 10x slower with 2 threads
            on a busy 2-core machine). ``None`` leaves torch's setting alone.
    """

    sampling_rate: int = AUDIO_DEFAULTS.sampling_rate
    embedding_dim: int = 256
    max_embedding_dim: int = 4096
    device: str = "cpu"
    cpu_threads: int | None = 1


SPEAKER_SETTINGS = SpeakerEncoderSettings()


class InsufficientSpeakersError(MetaTTSError, ValueError):
    """A speaker-verification or identification set holds fewer speakers than the measure needs."""


class UnknownSpeakerError(MetaTTSError, ValueError):
    """A trial claims a speaker that has no enrolment reference."""


@dataclass(frozen=True)
class EERResult:
    """Equal error rate of a verification experiment.

    Attributes:
        eer: rate in [0, 1] where false acceptances equal false rejections (0 is perfect, 0.5 is chance).
        threshold: cosine score at that operating point.
        num_target: number of target (same speaker) trials.
        num_nontarget: number of non-target (other speaker) trials.
    """

    eer: float
    threshold: float
    num_target: int
    num_nontarget: int


@functools.lru_cache(maxsize=4)
def get_speaker_encoder(device: str = SPEAKER_SETTINGS.device):
    """Load resemblyzer's ``VoiceEncoder`` once per device and keep it for the process."""
    from resemblyzer import VoiceEncoder

    logger.info("Loading the resemblyzer speaker encoder on %s", device)
    return VoiceEncoder(device, verbose=False)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads, then restore the previous number (process-wide)."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def embed_utterances(
    audios: Sequence[Any], sampling_rate: int | None = None, device: str = SPEAKER_SETTINGS.device
) -> np.ndarray:
    """Speaker embeddings of utterances.

    Args:
        audios: list of utterances in any form :func:`~hf_metatts.evaluation.audio.load_audio` accepts.
        sampling_rate: rate (Hz) of raw-array inputs; inputs at other rates are resampled to 16 kHz.
        device: torch device of the encoder.

    Returns:
        ``(n, 256)`` float32, each row L2-normalised.

    Raises:
        EmptyAudioError: an utterance is empty, or holds no speech once resemblyzer trimmed its silences.
    """
    from resemblyzer import preprocess_wav

    encoder = get_speaker_encoder(device)
    embeddings = []
    for index, audio in enumerate(audios):
        samples = load_audio(audio, sampling_rate, SPEAKER_SETTINGS.sampling_rate, name=f"audio[{index}]")
        # No source rate: the samples are already at the encoder's rate; this normalises loudness
        # and removes long silences with webrtcvad.
        speech = preprocess_wav(samples.astype(np.float64))
        if speech.size == 0:
            raise EmptyAudioError(
                f"audio[{index}] holds no speech once silences are removed; drop silent clips before "
                "computing speaker metrics."
            )
        with _torch_threads(SPEAKER_SETTINGS.cpu_threads if device == "cpu" else None):
            embeddings.append(encoder.embed_utterance(speech.astype(np.float32)))
    if not embeddings:
        raise EmptyAudioError("No utterances given; pass a non-empty list of utterances.")
    return np.stack(embeddings).astype(np.float32)


def _as_embeddings(items: Any, sampling_rate: int | None, name: str) -> np.ndarray:
    """Embeddings given as a ``(n, dim)`` array pass through (L2-normalised); audio lists are embedded."""
    if isinstance(items, np.ndarray) and items.ndim == 2 and np.issubdtype(items.dtype, np.floating):
        if items.shape[1] > SPEAKER_SETTINGS.max_embedding_dim:
            raise MismatchedInputsError(
                f"{name} is a {items.shape} array: too wide for embeddings. Pass waveforms as a list, "
                "one array per utterance."
            )
        norms = np.linalg.norm(items, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise EmptyAudioError(f"{name} holds an all-zero embedding; re-embed that utterance.")
        return (items / norms).astype(np.float32)
    return embed_utterances(items, sampling_rate)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix of two embedding sets.

    Args:
        a: ``(n, dim)`` embeddings. b: ``(m, dim)`` embeddings.

    Returns:
        ``(n, m)`` float, each entry in [-1, 1].
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.clip(a @ b.T, -1.0, 1.0)


def speaker_similarity(
    references: Sequence[Any],
    predictions: Sequence[Any],
    sampling_rate: int | None = None,
    references_sampling_rate: int | None = None,
) -> np.ndarray:
    """Cosine similarity between the speaker embeddings of paired utterances.

    Args:
        references: list of real utterances (any accepted audio form).
        predictions: list of synthesised utterances, ``predictions[i]`` paired with ``references[i]``.
        sampling_rate: rate (Hz) of raw-array predictions (and references, unless given below).
        references_sampling_rate: rate (Hz) of raw-array references when it differs.

    Returns:
        ``(n,)`` float, cosines in [-1, 1]; higher means more alike.
    """
    check_paired(references, predictions)
    reference_embeddings = embed_utterances(references, references_sampling_rate or sampling_rate)
    prediction_embeddings = embed_utterances(predictions, sampling_rate)
    return np.sum(reference_embeddings * prediction_embeddings, axis=1).astype(np.float64)


def _check_speaker_sets(
    trial_speakers: Sequence[Hashable], reference_speakers: Sequence[Hashable], measure: str
) -> list[Hashable]:
    enrolled = list(dict.fromkeys(reference_speakers))
    if len(enrolled) < 2:
        raise InsufficientSpeakersError(
            f"{measure} needs enrolment references of at least 2 speakers (to score impostor trials); got "
            f"{len(enrolled)} ({enrolled}). Add the real utterances of the other test speakers as references."
        )
    unknown = sorted({str(s) for s in trial_speakers} - {str(s) for s in enrolled})
    if unknown:
        raise UnknownSpeakerError(
            f"Trials claim speakers without enrolment references: {unknown}. Add references for them, "
            f"or fix the trial labels (enrolled: {[str(s) for s in enrolled]})."
        )
    return enrolled


def speaker_centroids(
    embeddings: np.ndarray, speakers: Sequence[Hashable]
) -> tuple[list[Hashable], np.ndarray]:
    """Mean embedding of each speaker, L2-normalised.

    Args:
        embeddings: ``(n, dim)`` utterance embeddings. speakers: ``n`` labels.

    Returns:
        (speaker labels in first-seen order, ``(num_speakers, dim)`` centroids).
    """
    if len(speakers) != len(embeddings):
        raise MismatchedInputsError(
            f"Got {len(embeddings)} utterances and {len(speakers)} speaker labels; give one label per utterance."
        )
    labels = list(dict.fromkeys(speakers))
    index = {label: i for i, label in enumerate(labels)}
    sums = np.zeros((len(labels), embeddings.shape[1]), dtype=np.float64)
    for row, speaker in zip(embeddings, speakers):
        sums[index[speaker]] += row
    return labels, sums / np.linalg.norm(sums, axis=1, keepdims=True)


def equal_error_rate(scores: Sequence[float], is_target: Sequence[bool]) -> EERResult:
    """Equal error rate of verification scores.

    The ROC (scikit-learn) is interpolated linearly between its two points where the false rejection
    rate crosses the false acceptance rate.

    Args:
        scores: ``(n,)`` trial scores, higher meaning "same speaker".
        is_target: ``(n,)`` whether each trial is a target (same speaker) trial.
    """
    from sklearn.metrics import roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_target, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise MismatchedInputsError(f"Got {scores.shape} scores and {labels.shape} labels; give one label per score.")
    num_target, num_nontarget = int(labels.sum()), int((~labels).sum())
    if num_target == 0 or num_nontarget == 0:
        raise InsufficientSpeakersError(
            f"EER needs both target and non-target trials; got {num_target} target and {num_nontarget} "
            "non-target. Score trials against references of several speakers."
        )
    false_accept, true_accept, thresholds = roc_curve(labels, scores)
    false_reject = 1.0 - true_accept
    gap = false_reject - false_accept  # decreasing from 1 to -1 along the curve
    cross = int(np.flatnonzero(gap <= 0)[0])
    if cross == 0 or gap[cross] == 0:
        eer, threshold = false_accept[cross], thresholds[cross]
    else:
        before, after = cross - 1, cross
        weight = gap[before] / (gap[before] - gap[after])
        eer = false_accept[before] + weight * (false_accept[after] - false_accept[before])
        threshold = thresholds[before] + weight * (thresholds[after] - thresholds[before])
    threshold = float(np.clip(threshold, scores.min(), scores.max()))
    return EERResult(float(eer), threshold, num_target, num_nontarget)


def speaker_verification_eer(
    trials: Any,
    trial_speakers: Sequence[Hashable],
    references: Any,
    reference_speakers: Sequence[Hashable],
    scoring: Literal["centroid", "pairwise"] = "centroid",
    sampling_rate: int | None = None,
) -> EERResult:
    """Equal error rate of trial utterances (e.g. synthesised) against the real utterances of all speakers.

    Every trial is scored against every enrolled speaker: a target trial when the speaker is the one it
    claims, a non-target trial otherwise (Meta-TTS style: synthesised utterances verified against the
    real utterances of all test speakers).

    Args:
        trials: ``(n, dim)`` embeddings, or a list of ``n`` utterances (any accepted audio form).
        trial_speakers: ``n`` claimed speaker labels.
        references: ``(m, dim)`` embeddings or ``m`` utterances of the enrolled speakers (>= 2 speakers).
        reference_speakers: ``m`` labels.
        scoring: ``"centroid"`` scores a trial against each speaker's mean embedding (n * speakers
            trials); ``"pairwise"`` against each reference utterance (n * m trials).
        sampling_rate: rate (Hz) of raw-array audio inputs.

    Raises:
        InsufficientSpeakersError: references of fewer than 2 speakers.
        UnknownSpeakerError: a trial claims a speaker without references.
    """
    enrolled = _check_speaker_sets(trial_speakers, reference_speakers, "Speaker-verification EER")
    trial_embeddings = _as_embeddings(trials, sampling_rate, "trials")
    reference_embeddings = _as_embeddings(references, sampling_rate, "references")
    if len(trial_speakers) != len(trial_embeddings):
        raise MismatchedInputsError(
            f"Got {len(trial_embeddings)} trials and {len(trial_speakers)} trial labels; give one label per trial."
        )
    if scoring == "centroid":
        labels, targets = speaker_centroids(reference_embeddings, reference_speakers)
    elif scoring == "pairwise":
        if len(reference_speakers) != len(reference_embeddings):
            raise MismatchedInputsError(
                f"Got {len(reference_embeddings)} references and {len(reference_speakers)} labels; "
                "give one label per reference."
            )
        labels, targets = list(reference_speakers), reference_embeddings
    else:
        raise ValueError(f"scoring={scoring!r} is unknown; use 'centroid' or 'pairwise'.")
    scores = cosine_similarity(trial_embeddings, targets)
    is_target = np.array([[str(t) == str(r) for r in labels] for t in trial_speakers])
    result = equal_error_rate(scores.ravel(), is_target.ravel())
    logger.info("EER %.4f over %d speakers (%d target / %d non-target trials)", result.eer, len(enrolled),
                result.num_target, result.num_nontarget)
    return result


def speaker_identification_accuracy(
    trials: Any,
    trial_speakers: Sequence[Hashable],
    references: Any,
    reference_speakers: Sequence[Hashable],
    sampling_rate: int | None = None,
) -> float:
    """Fraction in [0, 1] of trials whose closest enrolled speaker (cosine to the centroid) is the claimed one.

    Arguments as in :func:`speaker_verification_eer`; chance level is ``1 / num_speakers``.
    """
    _check_speaker_sets(trial_speakers, reference_speakers, "Speaker identification")
    trial_embeddings = _as_embeddings(trials, sampling_rate, "trials")
    reference_embeddings = _as_embeddings(references, sampling_rate, "references")
    if len(trial_speakers) != len(trial_embeddings):
        raise MismatchedInputsError(
            f"Got {len(trial_embeddings)} trials and {len(trial_speakers)} trial labels; give one label per trial."
        )
    labels, centroids = speaker_centroids(reference_embeddings, reference_speakers)
    closest = np.argmax(cosine_similarity(trial_embeddings, centroids), axis=1)
    hits = [str(labels[c]) == str(t) for c, t in zip(closest, trial_speakers)]
    return float(np.mean(hits))


__all__ = [
    "EERResult",
    "InsufficientSpeakersError",
    "SPEAKER_SETTINGS",
    "SpeakerEncoderSettings",
    "UnknownSpeakerError",
    "cosine_similarity",
    "embed_utterances",
    "equal_error_rate",
    "get_speaker_encoder",
    "speaker_centroids",
    "speaker_identification_accuracy",
    "speaker_similarity",
    "speaker_verification_eer",
]
