"""Metrics of synthesised speech: speaker similarity, EER, identification, MCD and ASR word error rate.

The heavy libraries (resemblyzer, pyworld/pysptk, librosa, pocketsphinx, jiwer; the ``evaluation``
extra) are imported on first use, so importing this package is cheap.

Each metric also exists as an ``evaluate`` module kept in this package (``metrics/<name>/``), loadable
offline with :func:`load_metric` or ``evaluate.load(<folder>)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hf_metatts.errors import MetaTTSError

from .asr import (
    RECOGNIZER_SETTINGS,
    EmptyTranscriptError,
    RecognizerSettings,
    WERResult,
    asr_word_error_rate,
    normalize_transcript,
    transcribe,
    word_error_rate,
)
from .audio import (
    AUDIO_DEFAULTS,
    AudioInputDefaults,
    EmptyAudioError,
    MismatchedInputsError,
    MissingSamplingRateError,
    NonFiniteAudioError,
    UnsupportedAudioInputError,
    load_audio,
    load_audio_batch,
)
from .benchmark import BENCHMARK_METHODS, BenchmarkConfigError, BenchmarkSettings, run_benchmark
from .curves import plot_curves, render_markdown
from .mcd import MCD_SETTINGS, MCDSettings, mcd_from_cepstra, mel_cepstral_distortion, mel_cepstrum
from .speaker import (
    SPEAKER_SETTINGS,
    EERResult,
    InsufficientSpeakersError,
    SpeakerEncoderSettings,
    UnknownSpeakerError,
    cosine_similarity,
    embed_utterances,
    equal_error_rate,
    get_speaker_encoder,
    speaker_centroids,
    speaker_identification_accuracy,
    speaker_similarity,
    speaker_verification_eer,
)
from .voice_eval import VOICE_METRICS, evaluate_voice, synthesize_texts

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
METRIC_NAMES = ("speaker_similarity", "mel_cepstral_distortion", "asr_wer")


class UnknownMetricError(MetaTTSError, ValueError):
    """The metric name is not one of the metrics packaged with hf-metatts."""


def metric_path(name: str) -> Path:
    """Folder of the packaged ``evaluate`` module called ``name`` (one of :data:`METRIC_NAMES`)."""
    if name not in METRIC_NAMES:
        raise UnknownMetricError(f"Unknown metric {name!r}; choose one of {list(METRIC_NAMES)}.")
    return METRICS_DIR / name


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of a packaged metric; works offline (``HF_HUB_OFFLINE=1``).

    Args:
        name: one of ``"speaker_similarity"``, ``"mel_cepstral_distortion"``, ``"asr_wer"``.
        **kwargs: passed to ``evaluate.load`` (e.g. ``experiment_id``, ``keep_in_memory``).

    Returns:
        an ``evaluate.Metric``; call ``.compute(predictions=..., references=..., ...)``.
    """
    import evaluate

    return evaluate.load(str(metric_path(name)), **kwargs)


__all__ = [
    "AUDIO_DEFAULTS",
    "BENCHMARK_METHODS",
    "BenchmarkConfigError",
    "BenchmarkSettings",
    "VOICE_METRICS",
    "evaluate_voice",
    "plot_curves",
    "render_markdown",
    "run_benchmark",
    "synthesize_texts",
    "AudioInputDefaults",
    "EERResult",
    "EmptyAudioError",
    "EmptyTranscriptError",
    "InsufficientSpeakersError",
    "MCDSettings",
    "MCD_SETTINGS",
    "METRIC_NAMES",
    "MismatchedInputsError",
    "MissingSamplingRateError",
    "NonFiniteAudioError",
    "RECOGNIZER_SETTINGS",
    "RecognizerSettings",
    "SPEAKER_SETTINGS",
    "SpeakerEncoderSettings",
    "UnknownMetricError",
    "UnknownSpeakerError",
    "UnsupportedAudioInputError",
    "WERResult",
    "asr_word_error_rate",
    "cosine_similarity",
    "embed_utterances",
    "equal_error_rate",
    "get_speaker_encoder",
    "load_audio",
    "load_audio_batch",
    "load_metric",
    "mcd_from_cepstra",
    "mel_cepstral_distortion",
    "mel_cepstrum",
    "metric_path",
    "normalize_transcript",
    "speaker_centroids",
    "speaker_identification_accuracy",
    "speaker_similarity",
    "speaker_verification_eer",
    "transcribe",
    "word_error_rate",
]
