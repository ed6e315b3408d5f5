"""Audio inputs of the metrics: one loader for every accepted form, and the input checks.

Every metric accepts an utterance as

- a 1-D array-like of samples (float in [-1, 1] or integer PCM) plus a ``sampling_rate`` in Hz,
- a 2-D array of shape ``(channels, samples)`` or ``(samples, channels)`` (averaged to mono),
- a ``{"array": ..., "sampling_rate": ...}`` dict (a decoded ``datasets.Audio`` value),
- a ``{"path": ...}`` or ``{"bytes": ...}`` dict (an undecoded ``datasets.Audio`` value),
- a file path (``str`` or ``os.PathLike``) that ``soundfile`` can read.

and turns it into mono float32 samples at the metric's own rate, resampled with ``soxr``
when the input comes at another rate.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_metatts.errors import InvalidAudioError, MetaTTSError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioInputDefaults:
    """Constants of the audio input checks.

    Attributes:
        sampling_rate: rate (Hz) the metrics analyse at; the speaker encoder and the recogniser
            both work at 16 kHz.
        min_duration_s: shortest utterance (seconds) accepted as speech.
        resample_quality: ``soxr`` quality preset used for every rate conversion.
        silence_peak: an utterance whose peak magnitude is below this (-80 dBFS) is digital silence.
    """

    sampling_rate: int = 16_000
    min_duration_s: float = 0.1
    resample_quality: str = "HQ"
    silence_peak: float = 1e-4


AUDIO_DEFAULTS = AudioInputDefaults()


class EmptyAudioError(InvalidAudioError):
    """An utterance holds no samples, or too few to be speech."""


class NonFiniteAudioError(InvalidAudioError):
    """An utterance holds NaN or infinite samples."""


class MissingSamplingRateError(InvalidAudioError):
    """Raw samples were given without the rate they were recorded at."""


class UnsupportedAudioInputError(InvalidAudioError):
    """The input is of no accepted audio form."""


class MismatchedInputsError(MetaTTSError, ValueError):
    """Two inputs that must pair up one to one have different lengths."""


def _read_file(source: Any) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError, OSError) as error:
        name = source if isinstance(source, (str, os.PathLike)) else "the given bytes"
        raise UnsupportedAudioInputError(
            f"Cannot read audio from {name!s}: {error}. Pass a WAV/FLAC/OGG file soundfile can read, "
            'or decoded samples as {"array": ..., "sampling_rate": ...}.'
        ) from error
    return samples, int(rate)


def _to_mono_float(samples: Any, name: str) -> np.ndarray:
    array = np.asarray(samples)
    if array.dtype == object:
        raise UnsupportedAudioInputError(
            f"{name} is not a numeric array (dtype=object). Pass one utterance as a 1-D array of samples."
        )
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        # The channel axis is the short one, whichever side it is on.
        array = array.mean(axis=0 if array.shape[0] < array.shape[1] else 1)
    if array.ndim != 1:
        raise UnsupportedAudioInputError(
            f"{name} has shape {array.shape}; expected (samples,) or (channels, samples). "
            "Pass a batch of utterances as a list, one array per utterance."
        )
    return array


def resample(samples: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 ``samples`` (shape ``(n,)``) from ``orig_rate`` to ``target_rate`` Hz with soxr."""
    if int(orig_rate) == int(target_rate):
        return samples
    import soxr

    logger.debug("Resampling %d samples from %d Hz to %d Hz", samples.shape[0], orig_rate, target_rate)
    return soxr.resample(samples, int(orig_rate), int(target_rate), quality=AUDIO_DEFAULTS.resample_quality).astype(
        np.float32, copy=False
    )


def read_audio(
    audio: Any,
    sampling_rate: int | None = None,
    name: str = "audio",
    min_duration_s: float = AUDIO_DEFAULTS.min_duration_s,
) -> tuple[np.ndarray, int]:
    """Read and check one utterance of any accepted form, at its own rate.

    Args:
        audio: samples, a ``{"array", "sampling_rate"}`` / ``{"path"}`` / ``{"bytes"}`` dict, or a file path.
        sampling_rate: rate (Hz) of raw samples; required for arrays, ignored for files and dicts
            that carry their own rate.
        name: how error messages call this input (e.g. ``"references[3]"``).
        min_duration_s: shorter utterances raise :class:`EmptyAudioError`.

    Returns:
        (``(samples,)`` mono float32, rate in Hz).

    Raises:
        EmptyAudioError, NonFiniteAudioError, MissingSamplingRateError, UnsupportedAudioInputError.
    """
    if isinstance(audio, (str, os.PathLike)):
        samples, rate = _read_file(os.fspath(audio))
    elif isinstance(audio, dict):
        if audio.get("array") is not None:
            samples = audio["array"]
            rate = audio.get("sampling_rate") or sampling_rate
        elif audio.get("bytes") is not None:
            samples, rate = _read_file(io.BytesIO(audio["bytes"]))
        elif audio.get("path") is not None:
            samples, rate = _read_file(audio["path"])
        else:
            raise UnsupportedAudioInputError(
                f"{name} is a dict with keys {sorted(audio)}; expected 'array' (+ 'sampling_rate'), 'bytes' or 'path'."
            )
    elif isinstance(audio, (bytes, bytearray)):
        samples, rate = _read_file(io.BytesIO(audio))
    elif hasattr(audio, "__array__") or isinstance(audio, (list, tuple)):
        samples, rate = audio, sampling_rate
    else:
        raise UnsupportedAudioInputError(
            f"{name} is a {type(audio).__name__}; pass a file path, an array of samples with sampling_rate, "
            'or a {"array": ..., "sampling_rate": ...} dict.'
        )
    if rate is None:
        raise MissingSamplingRateError(
            f"{name} is raw samples without a sampling rate. Pass sampling_rate=<Hz> (e.g. 16000), "
            'or give the utterance as {"array": samples, "sampling_rate": rate}.'
        )
    if int(rate) <= 0:
        raise MissingSamplingRateError(f"{name} has sampling rate {rate}; pass the true rate in Hz (e.g. 16000).")
    samples = _to_mono_float(samples, name)
    if samples.size == 0 or samples.shape[0] < min_duration_s * int(rate):
        raise EmptyAudioError(
            f"{name} holds {samples.shape[0]} samples ({samples.shape[0] / int(rate):.3f} s at {int(rate)} Hz); "
            f"at least {min_duration_s} s of speech is needed. Drop empty clips (e.g. failed syntheses) "
            "before computing metrics."
        )
    if not np.all(np.isfinite(samples)):
        raise NonFiniteAudioError(
            f"{name} holds NaN or infinite samples; fix the generator or drop this clip before computing metrics."
        )
    if float(np.max(np.abs(samples))) < AUDIO_DEFAULTS.silence_peak:
        raise EmptyAudioError(
            f"{name} is silent (peak below {AUDIO_DEFAULTS.silence_peak:g}, -80 dBFS); metrics of speech are "
            "meaningless on it. Drop silent clips (e.g. failed syntheses) before computing metrics."
        )
    return samples, int(rate)


def load_audio(
    audio: Any,
    sampling_rate: int | None = None,
    target_rate: int = AUDIO_DEFAULTS.sampling_rate,
    name: str = "audio",
    min_duration_s: float = AUDIO_DEFAULTS.min_duration_s,
) -> np.ndarray:
    """Turn one utterance of any accepted form into mono float32 samples at ``target_rate`` Hz.

    Arguments and exceptions as in :func:`read_audio`; ``target_rate`` is the rate (Hz) of the result.

    Returns:
        ``np.ndarray`` of shape ``(samples,)``, float32, at ``target_rate`` (resampled with soxr).
    """
    samples, rate = read_audio(audio, sampling_rate, name=name, min_duration_s=min_duration_s)
    return resample(samples, rate, int(target_rate))


def _check_is_list(audios: Any, name: str) -> None:
    if isinstance(audios, (str, os.PathLike, dict, bytes)) or (isinstance(audios, np.ndarray) and audios.ndim == 1):
        raise UnsupportedAudioInputError(f"{name} must be a list of utterances, not a single utterance; wrap it in [].")


def load_audio_batch(
    audios: Sequence[Any],
    sampling_rate: int | None = None,
    target_rate: int = AUDIO_DEFAULTS.sampling_rate,
    name: str = "audio",
) -> list[np.ndarray]:
    """:func:`load_audio` over a list of utterances; returns a list of ``(samples,)`` float32 arrays."""
    _check_is_list(audios, name)
    return [load_audio(a, sampling_rate, target_rate, name=f"{name}[{i}]") for i, a in enumerate(audios)]


def check_paired(references: Sequence[Any], hypotheses: Sequence[Any], what: str = "utterances") -> None:
    """Raise :class:`MismatchedInputsError` unless both lists are non-empty and of equal length."""
    if len(references) != len(hypotheses):
        raise MismatchedInputsError(
            f"Got {len(references)} references and {len(hypotheses)} predictions; each prediction is scored "
            f"against the reference at the same index, so pass as many of each {what}."
        )
    if len(references) == 0:
        raise MismatchedInputsError(f"No {what} given; pass at least one reference and one prediction.")


def audio_feature() -> dict:
    """``datasets`` feature of one utterance inside an ``evaluate`` metric: ``{"array", "sampling_rate"}``."""
    import datasets

    return {"array": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int64")}


def as_audio_dicts(audios: Sequence[Any] | None, sampling_rate: int | None = None, name: str = "audio") -> list | None:
    """Read a list of utterances (any accepted form) into ``{"array", "sampling_rate"}`` dicts at their own rate.

    The ``evaluate`` metrics call this before storing their inputs, so that files, raw arrays and
    decoded ``datasets`` audio can be mixed in one call. ``None`` passes through.
    """
    if audios is None:
        return None
    _check_is_list(audios, name)
    dicts = []
    for index, audio in enumerate(audios):
        samples, rate = read_audio(audio, sampling_rate, name=f"{name}[{index}]")
        dicts.append({"array": samples, "sampling_rate": rate})
    return dicts


class AudioInputsMetricMixin:
    """Mixin for ``evaluate.Metric`` subclasses whose inputs are utterances.

    Before ``evaluate`` stores a batch, every utterance named in ``audio_inputs`` (paths, raw arrays with
    ``sampling_rate=``, or dicts, freely mixed) is read into a ``{"array", "sampling_rate"}`` dict, the
    one feature format the metric declares (:func:`audio_feature`).
    """

    audio_inputs: tuple[str, ...] = ("predictions", "references")

    def _canonical_inputs(self, predictions, references, sampling_rate, references_sampling_rate):
        rates = {"predictions": sampling_rate, "references": references_sampling_rate or sampling_rate}
        inputs = {"predictions": predictions, "references": references}
        for key in self.audio_inputs:
            inputs[key] = as_audio_dicts(inputs[key], rates[key], name=key)
        return inputs

    def add_batch(self, *, predictions=None, references=None, sampling_rate=None, references_sampling_rate=None,
                  **kwargs):
        """Add a batch; ``sampling_rate`` (Hz) applies to raw-array inputs (``references_sampling_rate`` if other)."""
        inputs = self._canonical_inputs(predictions, references, sampling_rate, references_sampling_rate)
        return super().add_batch(**inputs, **kwargs)

    def add(self, *, prediction=None, reference=None, sampling_rate=None, references_sampling_rate=None, **kwargs):
        """Add one example; ``sampling_rate`` (Hz) applies to raw-array inputs."""
        inputs = self._canonical_inputs(
            None if prediction is None else [prediction], None if reference is None else [reference],
            sampling_rate, references_sampling_rate,
        )
        return super().add(
            prediction=None if inputs["predictions"] is None else inputs["predictions"][0],
            reference=None if inputs["references"] is None else inputs["references"][0],
            **kwargs,
        )

    def compute(self, *, predictions=None, references=None, sampling_rate=None, references_sampling_rate=None,
                **kwargs):
        """Score; ``sampling_rate`` (Hz) applies to raw-array inputs (``references_sampling_rate`` if different)."""
        inputs = self._canonical_inputs(predictions, references, sampling_rate, references_sampling_rate)
        return super().compute(**inputs, **kwargs)
