"""Human-written sentences from Debian's fortune files, cleaned, deduplicated and split without overlap.

Each fortune is unwrapped, attribution lines are dropped, and it is cut into sentences. A sentence is
kept when it has 3 to 25 words, starts with a capital letter, ends with ``.``, ``!`` or ``?``, and uses
only the letters of its language and plain punctuation (no digits, URLs, code or ASCII art). Sentences
are deduplicated case- and punctuation-insensitively and assigned to ``train``/``validation``/``test``
by a seeded hash, so no sentence ever appears in two splits and the assignment does not depend on
which other sentences were found.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .errors import NoSentencesError
from .presets import SPLITS

logger = logging.getLogger(__name__)

__all__ = [
    "FORTUNE_DIR",
    "FORTUNE_LANGUAGES",
    "SentencePool",
    "clean_sentences",
    "fortune_files",
    "load_sentences",
    "split_of",
]

FORTUNE_DIR = Path(os.environ.get("HF_METATTS_FORTUNE_DIR", "/usr/share/games/fortunes"))

#: espeak language code -> (sub-folder of the fortune directory, or "" for the top level; files to skip)
FORTUNE_LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "en": ("", ("ascii-art", "art", "banner", "debian-hints", "definitions", "perl", "linux", "computers")),
    "cs": ("cs", ("klasik-sk", "lkml")),
    "de": ("de", ("asciiart", "computer", "debian", "linuxtag", "ms", "channel-debian.fortunes", "infodrom")),
    "es": ("es", ("informatica", "linux")),
    "it": ("it", ("itatrek", "linux")),
    "ru": ("ru", ()),
    # languages the default corpus never trains on (preset ``unseen_languages``); Debian fortunes-pl, -bg, -ga
    "pl": ("pl", ("debian.pl", "gentoo", "http", "ipv6.pl", "linux", "linuxfr", "linuxpl", "perl", "pld",
                  "pld-fork", "pldhelp", "polish_manpages", "komputery", "microsoft", "sigvirus",
                  "dowcipy-szowinistyczne", "dowcipy-lepper", "radio_maryja")),
    "bg": ("bg", ()),
    "ga": ("ga", ()),
}

_EXTRA_LETTERS = {
    "en": "",
    "cs": "áčďéěíňóřšťúůýž",
    "de": "äöüß",
    "es": "áéíóúñü",
    "it": "àèéìíîòóùú",
    "ru": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "pl": "ąćęłńóśźż",
    "bg": "абвгдежзийклмнопрстуфхцчшщъьюяѝ",
    "ga": "áéíóú",
}
#: Languages written in Cyrillic alone: Latin letters make a sentence unusable.
_CYRILLIC_ONLY = ("ru", "bg")
_PUNCTUATION = " ,.;:!?'\"-–—()«»„“”‘’¿¡…"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”»]?\s+(?=[\"'“„«¿¡(]?[A-ZÀ-ÝА-ЯЁČĎĚŇŘŠŤŮŽŁŚŹŻĆ])")
_ATTRIBUTION = re.compile(r"^\s*(--|—|-\s|~)")
_MIN_WORDS, _MAX_WORDS = 3, 25


def _base_language(language: str) -> str:
    return language.split("-")[0].lower()


def fortune_files(language: str, root: Path | None = None) -> list[Path]:
    """The fortune text files for a language (sorted; ``.dat`` indexes and symlinks excluded)."""
    root = Path(root or FORTUNE_DIR)
    lang = _base_language(language)
    if lang not in FORTUNE_LANGUAGES:
        return []
    sub, skip = FORTUNE_LANGUAGES[lang]
    folder = root / sub if sub else root
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix in (".dat", ".u8") or path.name in skip:
            continue
        files.append(path)
    return files


def _allowed(language: str) -> set[str]:
    letters = _EXTRA_LETTERS.get(_base_language(language), "")
    latin = "" if _base_language(language) in _CYRILLIC_ONLY else "abcdefghijklmnopqrstuvwxyz"
    chars = set(latin + letters)
    return chars | {c.upper() for c in chars} | set(_PUNCTUATION)


def _normalize_key(sentence: str) -> str:
    return re.sub(r"[^\w]+", " ", sentence.lower()).strip()


def _fortunes(text: str) -> list[str]:
    entries = re.split(r"^%\s*$", text, flags=re.MULTILINE)
    out = []
    for entry in entries:
        lines = [ln for ln in entry.splitlines() if ln.strip() and not _ATTRIBUTION.match(ln)]
        if not lines or any(ln.startswith(("\t\t", "    ")) and len(ln.strip()) < 3 for ln in lines):
            continue
        out.append(" ".join(ln.strip() for ln in lines))
    return out


def clean_sentences(raw_texts: list[str], language: str) -> list[str]:
    """Cut texts into sentences and keep the clean ones (see the module docstring), deduplicated in order."""
    allowed = _allowed(language)
    seen: set[str] = set()
    kept: list[str] = []
    for text in raw_texts:
        text = unicodedata.normalize("NFC", re.sub(r"\s+", " ", text)).strip()
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip().strip("\"'“”«»„").strip()
            if not sentence or not set(sentence) <= allowed:
                continue
            words = sentence.split()
            if not (_MIN_WORDS <= len(words) <= _MAX_WORDS):
                continue
            if not sentence[0].isupper() or sentence[-1] not in ".!?" or sentence.isupper():
                continue
            if sentence.count("(") != sentence.count(")") or sentence.count('"') % 2:
                continue
            key = _normalize_key(sentence)
            if key in seen:
                continue
            seen.add(key)
            kept.append(sentence)
    return kept


def load_sentences(language: str, root: Path | None = None, files: list[Path] | None = None) -> list[str]:
    """All clean sentences of a language from the installed fortune files.

    Raises:
        NoSentencesError: no fortune files (install the Debian ``fortunes*`` packages with
            ``scripts/install_synthesizers.sh``) or none of their sentences passed the filters.
    """
    files = files if files is not None else fortune_files(language, root)
    if not files and _base_language(language) not in FORTUNE_LANGUAGES:
        raise NoSentencesError(
            f"no sentence source for language {language!r}: Debian fortunes exist for {sorted(FORTUNE_LANGUAGES)}"
        )
    if not files:
        raise NoSentencesError(
            f"no fortune files for language {language!r} under {root or FORTUNE_DIR}; "
            "run scripts/install_synthesizers.sh (Debian packages fortunes, fortunes-cs, -de, -es, -it, -ru, -pl, "
            "-bg, -ga)"
        )
    raw: list[str] = []
    for path in files:
        raw.extend(_fortunes(path.read_text(encoding="utf-8", errors="replace")))
    sentences = clean_sentences(raw, language)
    if not sentences:
        raise NoSentencesError(f"fortune files for {language!r} gave no sentences of {_MIN_WORDS}-{_MAX_WORDS} words")
    logger.info("language %s: %d clean sentences from %d fortune files", language, len(sentences), len(files))
    return sentences


def split_of(sentence: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """The split a sentence belongs to: a seeded hash of its normalised form against the fractions."""
    digest = hashlib.sha1(f"{seed}:{_normalize_key(sentence)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


@dataclass
class SentencePool:
    """Sentences of one language, partitioned into disjoint per-split lists (each in a seeded order)."""

    language: str
    splits: dict[str, list[str]]

    @classmethod
    def from_sentences(
        cls, language: str, sentences: list[str], seed: int, fractions: tuple[float, float, float]
    ) -> SentencePool:
        """Partition sentences by ``split_of`` and order each part by a seeded hash (deterministic)."""
        parts: dict[str, list[str]] = {s: [] for s in SPLITS}
        for sentence in sentences:
            parts[split_of(sentence, seed, fractions)].append(sentence)
        for name in parts:
            parts[name].sort(key=lambda s: hashlib.sha1(f"order:{seed}:{s}".encode()).digest())
        return cls(language=language, splits=parts)

    def take(self, split: str, start: int, count: int) -> list[str]:
        """``count`` sentences of a split starting at ``start`` (wrapping around), so tasks spread over the pool."""
        pool = self.splits[split]
        if not pool:
            raise NoSentencesError(f"no {split} sentences for language {self.language!r}")
        return [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]
