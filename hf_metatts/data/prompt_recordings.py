"""Real recorded speech that installs offline: the Asterisk telephony prompts, as a corpus of held-out voices.

Debian's ``asterisk-core-sounds-<lang>-g722`` packages hold about 550 prompts per voice ("Please enter your
password followed by the pound key."), each recorded by a professional voice talent (CC-BY-SA 3.0) and stored as
wideband G.722 (16 kHz); ``asterisk-core-sounds-<lang>`` holds their transcripts (``core-sounds-<lang>.txt.gz``, one
``name: text`` line per prompt). :func:`load_prompt_voices` turns them into a corpus with the corpus schema
(``hf_metatts.data.schema``), every voice a task of the ``test`` split: human speakers that no training split
holds, one of them (French) in a language the default corpus never trains on. The rows carry no phone timings, so
their durations come from the model's aligner, as a user's clips do. ``scripts/install_recordings.sh`` installs the
packages; ``hf-metatts import-prompts --out DIR`` writes the corpus.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLING_RATE, encode_audio
from .errors import CorpusBuildError
from .quality import ClipLimits, check_clip

logger = logging.getLogger(__name__)

__all__ = ["PROMPT_VOICES", "PromptFilter", "PromptVoice", "decode_g722", "load_prompt_voices", "read_transcripts"]

#: Where the Debian packages put the recordings and the transcripts.
SOUNDS_DIR = "/usr/share/asterisk/sounds"
DOCS_DIR = "/usr/share/doc"
#: G.722 at 64 kbit/s, the rate of the packages' files.
G722_BIT_RATE = 64000
INT16_SCALE = 32768.0


@dataclass(frozen=True)
class PromptVoice:
    """One recorded voice: its folder under the sounds directory, the package language of its transcripts, the
    espeak-ng code its text is read in, and the talent who recorded it (``base_speaker``: one person may record
    several languages)."""

    folder: str
    package_language: str
    language: str
    talent: str

    @property
    def speaker_id(self) -> str:
        return f"asterisk:{self.folder}"

    def transcript_path(self, docs_dir: str) -> str:
        lang = self.package_language
        return os.path.join(docs_dir, f"asterisk-core-sounds-{lang}", f"core-sounds-{lang}.txt.gz")


PROMPT_VOICES = (
    PromptVoice("en_US_f_Allison", "en", "en-us", "Allison Smith"),
    PromptVoice("es_MX_f_Allison", "es", "es-419", "Allison Smith"),
    PromptVoice("fr_CA_f_June", "fr", "fr-fr", "June Wallack"),
    PromptVoice("it_IT_m_Carlo", "it", "it", "Carlo"),
    PromptVoice("ru_RU_f_IvrvoiceRU", "ru", "ru", "IvrvoiceRU"),
)


@dataclass(frozen=True)
class PromptFilter:
    """Which prompts are kept as sentences: at least ``min_words`` words, no digits (their reading depends on the
    context a prompt is played in), no bracketed tone descriptions, and a clip within ``limits``."""

    min_words: int = 3
    limits: ClipLimits = ClipLimits(min_duration=1.0, max_duration=12.0)

    def text_reason(self, text: str) -> str | None:
        """Why a transcript is not kept as a sentence (``"tone"``, ``"digits"``, ``"too_few_words"``), or None."""
        if "[" in text or "]" in text:
            return "tone"
        if re.search(r"\d", text):
            return "digits"
        if len(text.split()) < self.min_words:
            return "too_few_words"
        return None


def read_transcripts(path: str) -> dict[str, str]:
    """``{prompt name: transcript}`` from a ``core-sounds-<lang>.txt(.gz)`` file (``;`` lines are comments)."""
    opener = gzip.open if path.endswith(".gz") else open
    transcripts: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            text = " ".join(text.split())
            if name.strip() and text:
                transcripts[name.strip()] = text
    return transcripts


def decode_g722(data: bytes) -> np.ndarray:
    """A 64 kbit/s G.722 stream -> float32 samples at 16 kHz in [-1, 1) (the ``G722`` package's ITU decoder)."""
    try:
        from G722 import G722
    except ImportError:
        raise ImportError("Reading the Asterisk prompts needs the G.722 decoder: pip install G722 (or "
                          "pip install 'hf-metatts[evaluation]').") from None
    samples = np.asarray(G722(SAMPLING_RATE, G722_BIT_RATE).decode(data), dtype=np.int16)
    return samples.astype(np.float32) / INT16_SCALE


def _voice_rows(voice: PromptVoice, sounds_dir: str, docs_dir: str, keep: PromptFilter,
                skipped: Counter) -> list[dict]:
    """The kept prompts of one voice as corpus rows (sorted by prompt name)."""
    from ..tokenization_metatts import phonemize

    folder = os.path.join(sounds_dir, voice.folder)
    transcripts_file = voice.transcript_path(docs_dir)
    if not os.path.isdir(folder) or not os.path.isfile(transcripts_file):
        raise CorpusBuildError(
            f"The Asterisk prompts of {voice.folder} are not installed (looked for {folder} and {transcripts_file}): "
            "run scripts/install_recordings.sh, or pass --sounds-dir and --docs-dir where the files are.")
    kept: list[tuple[str, str, np.ndarray]] = []
    for name, text in sorted(read_transcripts(transcripts_file).items()):
        path = os.path.join(folder, f"{name}.g722")
        if not os.path.isfile(path):
            skipped["no_recording"] += 1
            continue
        reason = keep.text_reason(text)
        if reason is None:
            with open(path, "rb") as handle:
                audio = decode_g722(handle.read())
            reason = check_clip(audio, SAMPLING_RATE, text, keep.limits)
        if reason is not None:
            skipped[reason] += 1
            continue
        kept.append((name, text, audio))
    if not kept:
        return []
    phonemes = phonemize([text for _, text, _ in kept], voice.language)
    return [{
        "id": f"{voice.speaker_id}/{name}", "audio": encode_audio(audio, SAMPLING_RATE, path=f"{name}.wav"),
        "text": text, "phonemes": phones, "speaker_id": voice.speaker_id,
        "base_speaker": f"asterisk:{voice.talent}", "language": voice.language, "style": "neutral",
        "source": voice.speaker_id, "perturbation": "", "duration": audio.size / SAMPLING_RATE, "phone_timings": [],
    } for (name, text, audio), phones in zip(kept, phonemes)]


def load_prompt_voices(voices: tuple[PromptVoice, ...] | list[PromptVoice] = PROMPT_VOICES,
                       sounds_dir: str = SOUNDS_DIR, docs_dir: str = DOCS_DIR,
                       keep: PromptFilter = PromptFilter()):
    """The installed prompts of ``voices`` as a ``DatasetDict`` with one ``test`` split (corpus schema, audio at
    16 kHz, empty ``phone_timings``).

    Raises:
        CorpusBuildError: a voice's recordings or transcripts are not installed, or no voice keeps a prompt.
        ImportError: the ``G722`` decoder is missing.
    """
    from datasets import DatasetDict

    from .schema import rows_to_dataset

    rows, skipped = [], Counter()
    for voice in voices:
        voice_rows = _voice_rows(voice, sounds_dir, docs_dir, keep, skipped)
        logger.info("%s: %d prompts kept (%.1f min)", voice.speaker_id, len(voice_rows),
                    sum(r["duration"] for r in voice_rows) / 60)
        rows.extend(voice_rows)
    if not rows:
        raise CorpusBuildError(f"No prompt of {[v.folder for v in voices]} passed the filter ({dict(skipped)}).")
    logger.info("skipped prompts: %s", dict(sorted(skipped.items())))
    return DatasetDict({"test": rows_to_dataset(rows, SAMPLING_RATE)})
