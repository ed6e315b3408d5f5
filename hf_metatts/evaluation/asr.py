"""Intelligibility: word error rate of an offline speech recogniser on synthesised speech.

The recogniser is CMU PocketSphinx 5 with the US English acoustic model, language model and
dictionary that ship in its pip package (16 kHz input, offline). WER is computed by ``jiwer`` after
the same text normalisation of reference and transcript (:func:`normalize_transcript`).
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hf_metatts.errors import InvalidTextError

from .audio import AUDIO_DEFAULTS, check_paired, load_audio

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognizerSettings:
    """Constants of the recogniser.

    Attributes:
        sampling_rate: input rate (Hz) of the PocketSphinx English model.
        log_level: PocketSphinx's own log level (it logs to stderr).
        pcm_peak: int16 full scale used to convert float samples to PCM.
    """

    sampling_rate: int = AUDIO_DEFAULTS.sampling_rate
    log_level: str = "FATAL"
    pcm_peak: int = 32767


RECOGNIZER_SETTINGS = RecognizerSettings()


class EmptyTranscriptError(InvalidTextError):
    """A reference text holds no words once normalised."""


@dataclass(frozen=True)
class WERResult:
    """Corpus word error rate and what it was computed from.

    Attributes:
        wer: (substitutions + deletions + insertions) / reference words, >= 0 (can exceed 1).
        transcripts: the recogniser's raw transcript of each utterance.
        per_utterance: ``(n,)`` WER of each utterance.
    """

    wer: float
    transcripts: list[str]
    per_utterance: list[float] = field(default_factory=list)


_DASHES = re.compile(r"[\u2010-\u2015\-/]+")
_NOT_WORD = re.compile(r"[^\w\s']+")
_EDGE_APOSTROPHES = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


def normalize_transcript(text: str) -> str:
    """Lower-case, NFKC, curly quotes to ``'``, dashes and slashes to spaces, other punctuation removed.

    Apostrophes inside words are kept (``don't``), as the recogniser's dictionary spells them; digits are
    left as they are (the recogniser writes numbers as words, so references should too).
    """
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    text = _DASHES.sub(" ", text)
    text = _NOT_WORD.sub(" ", text)
    text = _EDGE_APOSTROPHES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def get_recognizer():
    """Load the PocketSphinx decoder with its bundled US English model once per process."""
    from pocketsphinx import Decoder

    logger.info("Loading the PocketSphinx US English recogniser")
    return Decoder(samprate=RECOGNIZER_SETTINGS.sampling_rate, loglevel=RECOGNIZER_SETTINGS.log_level)


def transcribe(audio: Any, sampling_rate: int | None = None, name: str = "audio") -> str:
    """Transcribe one utterance (any accepted audio form; resampled to 16 kHz) with PocketSphinx.

    The decoder's feature state is reset first, so the transcript of a clip does not depend on the clips
    transcribed before it in the process (without the reset, PocketSphinx carries it over from one utterance to
    the next and the same clip can come out differently).

    Returns:
        the recognised words, lower case, ``""`` when nothing was recognised.
    """
    samples = load_audio(audio, sampling_rate, RECOGNIZER_SETTINGS.sampling_rate, name=name)
    pcm = (np.clip(samples, -1.0, 1.0) * RECOGNIZER_SETTINGS.pcm_peak).astype("<i2")
    decoder = get_recognizer()
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def _normalized_references(references: Sequence[str]) -> list[str]:
    refs = [normalize_transcript(text) for text in references]
    for index, ref in enumerate(refs):
        if not ref:
            raise EmptyTranscriptError(
                f"references[{index}] = {references[index]!r} has no words once normalised; pass the text "
                "the utterance says."
            )
    return refs


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (jiwer) of hypotheses against reference texts, both normalised first.

    Returns:
        total edits / total reference words, >= 0; 0 is perfect, 1 is as many errors as words.

    Raises:
        EmptyTranscriptError: a reference has no words once normalised.
    """
    import jiwer

    check_paired(references, hypotheses, what="texts")
    refs = _normalized_references(references)
    return float(jiwer.wer(refs, [normalize_transcript(text) for text in hypotheses]))


def asr_word_error_rate(
    audios: Sequence[Any], texts: Sequence[str], sampling_rate: int | None = None
) -> WERResult:
    """Transcribe utterances and score them against the texts they should say.

    Args:
        audios: list of utterances (any accepted audio form).
        texts: list of reference texts, one per utterance, numbers written as words.
        sampling_rate: rate (Hz) of raw-array inputs.
    """
    check_paired(texts, audios)
    _normalized_references(texts)  # fail before the slow part
    transcripts = [transcribe(audio, sampling_rate, name=f"audio[{i}]") for i, audio in enumerate(audios)]
    per_utterance = [word_error_rate([text], [hyp]) for text, hyp in zip(texts, transcripts)]
    result = WERResult(word_error_rate(texts, transcripts), transcripts, per_utterance)
    logger.info("ASR WER %.3f over %d utterances", result.wer, len(transcripts))
    return result


__all__ = [
    "EmptyTranscriptError",
    "RECOGNIZER_SETTINGS",
    "RecognizerSettings",
    "WERResult",
    "asr_word_error_rate",
    "get_recognizer",
    "normalize_transcript",
    "transcribe",
    "word_error_rate",
]
