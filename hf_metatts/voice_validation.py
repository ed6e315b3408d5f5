"""Support clips for voice adaptation: decoding, resampling and the checks that refuse unusable clips.

A clip is refused (nothing is adapted) when it is shorter or longer than allowed, silent, clipped, holds NaN,
cannot be decoded, or when its transcript is empty or clearly does not fit its audio. Each clip's leading and
trailing silence is cut before it is read (:func:`trim_silence`), and it is scaled to one speech level
(:func:`set_speech_level`). The thresholds live in :class:`ClipValidation`.
"""

import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InvalidAudioError, InvalidTextError
from .feature_extraction_metatts import load_audio
from .voice_errors import (
    ClipDurationError,
    ClipError,
    ClippedAudioError,
    NoClipsError,
    SilentClipError,
    TooManyClipsError,
    TranscriptMismatchError,
    TranscriptMismatchWarning,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipValidation:
    """Thresholds of the support-clip checks.

    Attributes:
        min_seconds: shortest usable clip (0.5 s): shorter clips hold too few frames to learn a voice from.
        max_seconds: longest usable clip (30 s): longer ones are usually unsegmented recordings.
        silence_dbfs: a clip whose RMS level is below this (dB re full scale, -50) counts as silence.
        clipping_level: a sample whose magnitude reaches this (0.999 of full scale) counts as clipped.
        max_clipped_fraction: largest fraction of clipped samples (0.001) before the clip is refused.
        alignment_warn_score: the aligner's forward-sum loss per token (negative log-likelihood of the
            transcript given the audio, lower is better) above which a warning names the clip (25.0).
        alignment_error_score: the score above which the clip is refused (60.0). ``None`` disables it.
            The score grows with the frames per token that the transcript implies: on the tiny test model,
            transcripts read at a normal rate score 9 to 13 and a 1- or 2-word transcript of a 6 s clip scores
            more than 80; on the bundled checkpoint, real clips with their own transcripts score 10 to 20.
            Calibrate on matched and mismatched clips of your base with :func:`alignment_scores`.
        path_warn_score: the aligner's mean negative log attention (without its prior) on its most likely
            path through the clip (`MetaTTSForTextToSpeech.transcript_scores`) above which a warning names
            the clip (4.6). Where the forward-sum score catches a transcript far too short or long for the audio, this
            one catches a transcript of the wrong words read at a plausible rate, once the aligner is trained.
        path_error_score: the path score above which the clip is refused (6.0). Both defaults were calibrated on
            the bundled checkpoint with ``benchmarks/transcript_check.py`` (BENCHMARKS.md); a random model
            scores about ``log(number of phonemes)``, under both.
        max_clips_per_batch: clips per batch of the adaptation loss (bounds memory).
        trim_silence_db: leading and trailing audio whose level stays more than this many dB (40) below the
            clip's loudest frame is cut before anything reads the clip, as recordings of people begin and end with
            pauses that the corpus's clips do not have (BENCHMARKS.md, "What the recording conditions of a user's
            clips do"). ``None`` keeps every clip whole.
        trim_floor_db: a frame counts as sound only if it is also more than this many dB (10) above the clip's
            noise floor, the ``trim_floor_percentile``-th percentile (5) of its frame powers, so that the pauses of a
            recording in a noisy room, within 40 dB of its loudest frame, are cut too. ``None``: the loudest frame
            alone sets the threshold.
        trim_floor_percentile: the percentile of the frame powers taken as the noise floor (5).
        trim_floor_cap_db: the floor never raises the threshold above this many dB (20) below the loudest frame:
            in a clip without pauses the 5th percentile is speech, and its quieter sounds stay.
        trim_margin_seconds: audio kept on each side of the first and last frame above that level (0.1 s), so
            that soft onsets and endings are not cut.
        trim_frame_seconds: length of the frames whose RMS levels the silence cut and the speech level compare
            (0.025 s; hop: a quarter of it).
        speech_level_dbfs: each clip is scaled so that its speech level (the RMS of its frames within
            ``speech_frame_db`` of its loudest frame) is this many dBFS (-20), its peak held at or below
            ``level_peak``: the model's voice encoder and steps read the level as part of the voice, so a clip
            recorded 10 dB quieter than the corpus's would give another voice (BENCHMARKS.md, "What the recording
            conditions of a user's clips do"). ``None`` keeps each clip's own level.
        speech_frame_db: frames within this many dB (40) of a clip's loudest frame count as its speech.
        level_peak: the largest sample magnitude the level's gain may give (0.99 of full scale).
        max_clips: more clips than this (50) are refused before any is read: a few-shot voice gains little past 20
            (docs/voices.md, "How many clips") while the time grows with every clip, and a whole corpus given by
            mistake would take hours. ``None``: no limit.
    """

    min_seconds: float = 0.5
    max_seconds: float = 30.0
    silence_dbfs: float = -50.0
    clipping_level: float = 0.999
    max_clipped_fraction: float = 0.001
    alignment_warn_score: float | None = 25.0
    alignment_error_score: float | None = 60.0
    path_warn_score: float | None = 4.6
    path_error_score: float | None = 6.0
    max_clips_per_batch: int = 8
    max_clips: int | None = 50
    trim_silence_db: float | None = 40.0
    trim_floor_db: float | None = 10.0
    trim_floor_percentile: float = 5.0
    trim_floor_cap_db: float = 20.0
    trim_margin_seconds: float = 0.1
    trim_frame_seconds: float = 0.025
    speech_level_dbfs: float | None = -20.0
    speech_frame_db: float = 40.0
    level_peak: float = 0.99

    def __post_init__(self):
        for name, allowed, requirement in _SETTING_CHECKS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_SETTINGS:
                continue
            if not (math.isfinite(value) and allowed(value)):
                raise ValueError(f"ClipValidation.{name}={value} must {requirement}.")


#: ``(field, test of a finite value, what the error says it must be)`` for the clip-preparation settings
_SETTING_CHECKS = (
    ("trim_silence_db", lambda v: v > 0, "be a finite number of dB above 0 (40 cuts what stays 40 dB below the "
                                         "loudest frame), or None to keep clips whole"),
    ("trim_floor_db", lambda v: v > 0, "be a finite number of dB above 0, or None to set the silence threshold from "
                                       "the loudest frame alone"),
    ("trim_floor_percentile", lambda v: 0 <= v < 50, "lie in [0, 50)"),
    ("trim_floor_cap_db", lambda v: v > 0, "be a finite number of dB above 0"),
    ("trim_margin_seconds", lambda v: v >= 0, "be a finite number of seconds >= 0"),
    ("trim_frame_seconds", lambda v: 0 < v <= 0.1, "lie in (0, 0.1] s"),
    ("speech_level_dbfs", lambda v: -60 <= v <= -3, "lie in [-60, -3] dBFS (-20 is a usual speech level), or be None "
                                                    "to keep each clip's own level"),
    ("speech_frame_db", lambda v: v > 0, "be a finite number of dB above 0"),
    ("level_peak", lambda v: 0 < v <= 1, "lie in (0, 1]"),
    ("max_clips", lambda v: v >= 1 and float(v).is_integer(), "be a whole number >= 1, or None for no limit"),
)
#: the settings that None turns off
_OPTIONAL_SETTINGS = frozenset({"trim_silence_db", "trim_floor_db", "speech_level_dbfs", "max_clips"})


@dataclass
class SupportClip:
    """One decoded support clip: ``audio`` ``(samples,)`` float32 at ``sampling_rate``; ``name`` for messages."""

    name: str
    audio: np.ndarray
    sampling_rate: int
    text: str
    language: str | None = None

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sampling_rate


def _decode_native(source, sampling_rate: int | None, name: str) -> tuple[np.ndarray, int]:
    """Decode at the clip's own rate: -> ``(samples,)`` float32 and its rate."""
    if isinstance(source, dict) and source.get("array") is None:
        source = source.get("bytes") or source.get("path")
    if isinstance(source, dict):
        rate = source.get("sampling_rate") or sampling_rate
        array = source["array"]
    elif isinstance(source, (str, bytes, bytearray)) or hasattr(source, "__fspath__"):
        import io

        import soundfile

        try:
            info = soundfile.info(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        except Exception as error:
            raise ClipError(f"Clip {name}: could not decode the audio ({error}). Give a WAV/FLAC/OGG file.",
                            clip=name) from error
        rate, array = int(info.samplerate), source
    else:
        rate = sampling_rate
        array = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else source
    if rate is None:
        raise ClipError(f"Clip {name} is an array without a sampling rate: pass sampling_rate=... .", clip=name)
    try:
        return load_audio(array, int(rate), int(rate)), int(rate)
    except InvalidAudioError as error:
        raise ClipError(f"Clip {name}: {error}", clip=name) from error


def check_audio(name: str, audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> None:
    """Raise a `ClipError` subclass naming ``name`` when ``audio`` ``(samples,)`` is unusable."""
    seconds = len(audio) / sampling_rate
    if seconds < validation.min_seconds or seconds > validation.max_seconds:
        raise ClipDurationError(
            f"Clip {name} lasts {seconds:.2f} s: support clips must last between {validation.min_seconds} and "
            f"{validation.max_seconds} s (ClipValidation.min_seconds/max_seconds). Trim or split it.", clip=name)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    level = 20.0 * math.log10(rms) if rms > 0 else -math.inf
    if level < validation.silence_dbfs:
        raise SilentClipError(
            f"Clip {name} is silent (RMS {level:.1f} dBFS, below {validation.silence_dbfs} dBFS): record speech "
            "or check the input gain.", clip=name)
    clipped = float(np.mean(np.abs(audio) >= validation.clipping_level))
    if clipped > validation.max_clipped_fraction:
        raise ClippedAudioError(
            f"Clip {name} is clipped: {100 * clipped:.2f}% of its samples sit at full scale (allowed "
            f"{100 * validation.max_clipped_fraction:.2f}%). Record it again at a lower gain.", clip=name)


def _frame_powers(audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> tuple[np.ndarray, int, int]:
    """Mean square of each frame of ``audio`` ``(samples,)``: ``(frames,)``, the frame length and the hop (samples);
    frames of ``validation.trim_frame_seconds``, hop a quarter of it. No frame when the clip is shorter than one."""
    frame = max(1, int(round(validation.trim_frame_seconds * sampling_rate)))
    hop = max(1, frame // 4)
    if len(audio) < frame:
        return np.zeros(0), frame, hop
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64, copy=False), frame)[::hop]
    return np.mean(np.square(frames), axis=1), frame, hop


def speech_level_dbfs(audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> float:
    """The speech level of ``audio`` ``(samples,)`` in dBFS: the RMS of its frames within
    ``validation.speech_frame_db`` of its loudest frame (the whole clip's RMS when it is shorter than one frame);
    ``-inf`` for digital silence."""
    power, _, _ = _frame_powers(audio, sampling_rate, validation)
    if not len(power):
        power = np.array([np.mean(np.square(audio, dtype=np.float64))])
    if power.max() <= 0:
        return -math.inf
    speech = power[power >= power.max() * 10.0 ** (-validation.speech_frame_db / 10.0)]
    return 10.0 * math.log10(float(speech.mean()))


def speech_level_gain(audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> tuple[float, float]:
    """The gain that brings ``audio`` ``(samples,)`` to ``validation.speech_level_dbfs`` with its peak held at or
    below ``validation.level_peak``, and the clip's speech level (dBFS, :func:`speech_level_dbfs`); a gain of 1 when
    the level is not set or the clip is silent."""
    if validation.speech_level_dbfs is None or not len(audio):
        return 1.0, math.nan
    level = speech_level_dbfs(audio, sampling_rate, validation)
    peak = float(np.max(np.abs(audio)))
    if not math.isfinite(level) or peak <= 0:
        return 1.0, level
    return min(10.0 ** ((validation.speech_level_dbfs - level) / 20.0), validation.level_peak / peak), level


def set_speech_level(name: str, audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> np.ndarray:
    """``audio`` ``(samples,)`` scaled to ``validation.speech_level_dbfs`` (:func:`speech_level_gain`); unchanged when
    the level is not set."""
    gain, level = speech_level_gain(audio, sampling_rate, validation)
    if gain == 1.0:
        return audio
    logger.info("Clip %s: speech level %.1f dBFS, scaled by %+.1f dB.", name, level, 20.0 * math.log10(gain))
    return (audio * gain).astype(audio.dtype, copy=False)


def speech_bounds(audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> tuple[int, int]:
    """The samples of ``audio`` ``(samples,)`` to keep, ``(start, end)``: from the first to the last frame whose RMS
    level is within ``validation.trim_silence_db`` dB of the loudest frame's and more than ``validation.trim_floor_db``
    above the clip's noise floor, widened by ``validation.trim_margin_seconds`` on each side and clipped to the clip.
    ``(0, len(audio))`` when trimming is off or the clip is shorter than one frame."""
    if validation.trim_silence_db is None:
        return 0, len(audio)
    power, frame, hop = _frame_powers(audio, sampling_rate, validation)
    if not len(power):
        return 0, len(audio)
    loudest = power.max()
    threshold = loudest * 10.0 ** (-validation.trim_silence_db / 10.0)
    if validation.trim_floor_db is not None:
        # above the noise floor too, but never closer to the loudest frame than trim_floor_cap_db: a clip without
        # pauses, whose floor is speech, keeps its quieter sounds
        floor = float(np.percentile(power, validation.trim_floor_percentile))
        above_floor = floor * 10.0 ** (validation.trim_floor_db / 10.0)
        threshold = max(threshold, min(above_floor, loudest * 10.0 ** (-validation.trim_floor_cap_db / 10.0)))
    loud = np.flatnonzero(power >= threshold)
    margin = int(round(validation.trim_margin_seconds * sampling_rate))
    return max(0, int(loud[0]) * hop - margin), min(len(audio), int(loud[-1]) * hop + frame + margin)


def trim_silence(name: str, audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> np.ndarray:
    """``audio`` ``(samples,)`` without its leading and trailing silence (:func:`speech_bounds`).

    Raises:
        ClipDurationError: less than ``validation.min_seconds`` of the clip is left.
    """
    start, end = speech_bounds(audio, sampling_rate, validation)
    if (start, end) == (0, len(audio)):
        return audio
    kept = (end - start) / sampling_rate
    if kept < validation.min_seconds:
        raise ClipDurationError(
            f"Clip {name} holds only {kept:.2f} s of sound between its leading and trailing silence: support clips "
            f"need at least {validation.min_seconds} s of speech (ClipValidation.min_seconds; "
            "ClipValidation.trim_silence_db sets what counts as silence).", clip=name)
    logger.info("Clip %s: cut %.2f s of leading and %.2f s of trailing silence.", name, start / sampling_rate,
                (len(audio) - end) / sampling_rate)
    return audio[start:end]


def prepare_clip(audio: np.ndarray, sampling_rate: int, validation: ClipValidation) -> np.ndarray:
    """``audio`` ``(samples,)`` as ``model.adapt`` reads a clip once it has passed its checks: without its leading
    and trailing silence (:func:`speech_bounds`) and at ``validation.speech_level_dbfs`` (:func:`speech_level_gain`).
    Quiet and never raising, for corpora of many clips (`hf_metatts.data.load_speech_tasks`): what is left is for the
    caller to check."""
    start, end = speech_bounds(audio, sampling_rate, validation)
    audio = audio[start:end]
    gain, _ = speech_level_gain(audio, sampling_rate, validation)
    return audio if gain == 1.0 else (audio * gain).astype(audio.dtype, copy=False)


def _row_audio_and_name(audio, index: int) -> str:
    if isinstance(audio, (str, os.PathLike)):
        return os.fspath(audio)
    if isinstance(audio, dict) and audio.get("path"):
        return str(audio["path"])
    return f"#{index}"


def iterate_clip_sources(clips, text_column: str = "text", audio_column: str = "audio",
                         language_column: str = "language") -> Iterable[tuple[object, str, str | None]]:
    """``(audio source, transcript, language or None)`` for each clip of a list of ``(audio, transcript)`` pairs or
    ``(audio, transcript, language)`` triples, a `datasets.Dataset` or a clip folder (`hf_metatts.clip_folders`)."""
    from .clip_folders import resolve_clip_source

    clips = resolve_clip_source(clips, text_column, language_column)
    try:
        from datasets import Audio, Dataset
    except ImportError:  # pragma: no cover - datasets is a core requirement
        Dataset = None
    if Dataset is not None and isinstance(clips, Dataset):
        for column in (audio_column, text_column):
            if column not in clips.column_names:
                raise ValueError(f"The dataset has no {column!r} column (columns: {clips.column_names}); pass "
                                 "text_column=/audio_column=.")
        if isinstance(clips.features[audio_column], Audio):
            clips = clips.cast_column(audio_column, Audio(decode=False))
        for row in clips:
            yield row[audio_column], row[text_column], row.get(language_column)
        return
    for index, clip in enumerate(clips):
        if isinstance(clip, dict):
            yield clip[audio_column], clip[text_column], clip.get(language_column)
        elif isinstance(clip, (tuple, list)) and len(clip) in (2, 3):
            yield clip[0], clip[1], clip[2] if len(clip) == 3 else None
        else:
            raise TypeError(f"Clip #{index} must be an (audio, transcript) pair or an (audio, transcript, language) "
                            f"triple, got {type(clip).__name__}.")


def check_clip_count(clips, validation: ClipValidation) -> None:
    """Raise `TooManyClipsError` when ``clips`` (a list or a `datasets.Dataset`) hold more than
    ``validation.max_clips``, counted before any is decoded (a source without a length is counted as it is read)."""
    if validation.max_clips is None:
        return
    count = len(clips) if hasattr(clips, "__len__") and not isinstance(clips, (str, bytes)) else None
    if count is not None and count > validation.max_clips:
        raise TooManyClipsError(
            f"{count} clips were given: a voice reads at most {validation.max_clips} (ClipValidation.max_clips). Five "
            "to twenty clips make a voice (docs/voices.md, \"How many clips\"); pick some, e.g. the first 20 "
            "(hf-metatts adapt --first 20), or raise max_clips.")


def load_clips(clips, sampling_rate: int, validation: ClipValidation | None = None,
               array_sampling_rate: int | None = None, language: str | None = None, **columns) -> list[SupportClip]:
    """Decode, check and resample every clip to ``sampling_rate``, cut its leading and trailing silence and set its
    speech level (``validation.trim_silence_db``, ``validation.speech_level_dbfs``).

    Args:
        clips: (audio, transcript) pairs (audio: array, path, bytes or a `datasets` audio dict), a
            `datasets.Dataset` with audio and text columns (``text_column``/``audio_column``/``language_column``),
            or a clip folder (`hf_metatts.clip_folders.read_clip_folder`).
        sampling_rate: the model's rate.
        array_sampling_rate: the rate of bare arrays (default: ``sampling_rate``, with a warning).
        language: default language of the transcripts.

    Raises:
        NoClipsError, TooManyClipsError (more than ``validation.max_clips``), ClipDurationError (also when too
        little is left once the leading and trailing silence is cut: :func:`trim_silence`), SilentClipError,
        ClippedAudioError, ClipError (undecodable or NaN audio), InvalidTextError (empty transcript). Nothing is
        returned unless every clip passes.
    """
    from .clip_folders import resolve_clip_source

    validation = validation or ClipValidation()
    clips = resolve_clip_source(clips, columns.get("text_column", "text"), columns.get("language_column", "language"))
    check_clip_count(clips, validation)
    loaded = []
    for index, (source, text, clip_language) in enumerate(iterate_clip_sources(clips, **columns)):
        if validation.max_clips is not None and index >= validation.max_clips:  # a source without a length
            raise TooManyClipsError(f"More than {validation.max_clips} clips were given (ClipValidation.max_clips): "
                                    "pick five to twenty, or raise max_clips.")
        name = _row_audio_and_name(source, index)
        rate = array_sampling_rate
        if rate is None and isinstance(source, (np.ndarray, torch.Tensor, list)):
            logger.warning("Clip %s is an array without sampling_rate: assuming %d Hz.", name, sampling_rate)
            rate = sampling_rate
        if isinstance(source, list):
            source = np.asarray(source, dtype=np.float32)
        audio, native_rate = _decode_native(source, rate, name)
        check_audio(name, audio, native_rate, validation)
        if not isinstance(text, str) or not text.strip():
            raise InvalidTextError(f"Clip {name} has an empty transcript: give the words spoken in it.")
        audio = trim_silence(name, load_audio(audio, sampling_rate, native_rate), sampling_rate, validation)
        audio = set_speech_level(name, audio, sampling_rate, validation)
        loaded.append(SupportClip(name, audio, sampling_rate, text.strip(), clip_language or language))
    if not loaded:
        raise NoClipsError("No support clips were given: adaptation needs at least one (audio, transcript) pair.")
    return loaded


@torch.no_grad()
def transcript_scores(model, examples: Sequence[dict]) -> tuple[list[float], list[float | None]]:
    """The aligner's two transcript scores of each prepared example (lower: the text fits the audio).

    ``examples``: dicts with ``input_ids`` ``(1, N)``, ``attention_mask``, ``labels`` ``(1, T, M)`` and
    ``labels_attention_mask`` (one clip each). Returns the forward-sum scores (loss per token) and the path
    scores (`MetaTTSForTextToSpeech.transcript_scores`, one aligner pass per clip). A model without
    ``transcript_scores`` gets its forward-sum score from its training forward and no path score (``None``).
    """
    scorer = getattr(model, "transcript_scores", None)
    forward_sums, paths = [], []
    for example in examples:
        inputs = {k: v for k, v in example.items() if k != "pitch"}
        if scorer is None:
            forward_sums.append(float(model(**inputs).losses["alignment"]))
            paths.append(None)
        else:
            forward_sum, path = scorer(**inputs)
            forward_sums.append(float(forward_sum[0]))
            paths.append(float(path[0]))
    return forward_sums, paths


def alignment_scores(model, examples: Sequence[dict]) -> list[float]:
    """The aligner's forward-sum loss per token of each prepared example (the first half of `transcript_scores`)."""
    return transcript_scores(model, examples)[0]


def check_alignment(names: Sequence[str], scores: Sequence[float], validation: ClipValidation,
                    path_scores: Sequence[float | None] | None = None) -> None:
    """Warn (`TranscriptMismatchWarning`) or raise `TranscriptMismatchError` for clips whose forward-sum score
    (``scores``) or path score (``path_scores``) is too high."""
    path_scores = list(path_scores) if path_scores is not None else [None] * len(names)
    for name, score, path in zip(names, scores, path_scores):
        checks = [("aligner score", score, validation.alignment_warn_score, validation.alignment_error_score,
                   "alignment_error_score")]
        if path is not None:
            checks.append(("aligner path score", path, validation.path_warn_score, validation.path_error_score,
                           "path_error_score"))
        for label, value, _, error_at, field_name in checks:
            if error_at is not None and value > error_at:
                raise TranscriptMismatchError(
                    f"The transcript of clip {name} does not match its audio ({label} {value:.2f} > {error_at}, "
                    f"ClipValidation.{field_name}). Check the transcript.", clip=name)
        for label, value, warn_at, _, _ in checks:
            if warn_at is not None and value > warn_at:
                message = f"The transcript of clip {name} may not match its audio ({label} {value:.2f} > {warn_at})."
                logger.warning(message)
                warnings.warn(message, TranscriptMismatchWarning, stacklevel=3)
                break


__all__ = ["ClipValidation", "SupportClip", "load_clips", "check_audio", "alignment_scores", "transcript_scores",
           "check_alignment", "iterate_clip_sources", "set_speech_level", "speech_bounds", "speech_level_dbfs",
           "trim_silence"]
