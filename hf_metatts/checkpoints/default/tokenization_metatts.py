"""Phoneme tokenizer: text -> espeak-ng IPA phonemes -> ids from one symbol table shared by all languages.

The phonemes come from espeak-ng through `phonemizer`, on the library that the `espeakng-loader` wheel
ships, so no system espeak is needed. Stress marks, word boundaries (a space) and punctuation are kept.
Numbers, abbreviations and other scripts are normalised by espeak itself.

This file travels with saved checkpoints (remote code): it imports only the standard library,
transformers, the phonemizer stack and sibling files.
"""

import json
import logging
import os
import threading
import unicodedata
from functools import lru_cache

from transformers import PreTrainedTokenizer

from .errors import InvalidTextError, UnsupportedLanguageError

logger = logging.getLogger(__name__)
#: phonemizer's own messages (e.g. "words count mismatch", harmless with kept punctuation) stay quiet.
_phonemizer_logger = logging.getLogger(__name__ + ".phonemizer")
_phonemizer_logger.setLevel(logging.ERROR)

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}
DEFAULT_LANGUAGE = "en-us"

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
WORD_BOUNDARY = " "
#: Punctuation that espeak keeps with ``preserve_punctuation``; sentence enders split long input.
PUNCTUATION = "!'(),-.:;?\"«»“”„¡¿—…"
SENTENCE_END = ".!?;…"


def _default_symbols() -> list[str]:
    """Every symbol espeak-ng can emit, in a fixed order: the shared table of all languages.

    Latin letters, digits (tone numbers), the Greek letters used in IPA, the IPA Extensions block,
    the spacing modifier letters (stress, length, tones) and the combining diacritics.
    """
    symbols = [PAD_TOKEN, UNK_TOKEN, WORD_BOUNDARY]
    symbols += list(PUNCTUATION)
    symbols += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    symbols += [chr(c) for c in range(ord("0"), ord("9") + 1)]
    symbols += list("æçðøħŋœβθχᵻᵝⁿ↓↑→↗↘")
    blocks = [(0x0250, 0x02AF), (0x02B0, 0x02FF), (0x0300, 0x036F)]
    for start, end in blocks:
        for code in range(start, end + 1):
            char = chr(code)
            if unicodedata.category(char) != "Cn" and char not in symbols:
                symbols.append(char)
    return symbols


DEFAULT_SYMBOLS = _default_symbols()

_ESPEAK_LOCK = threading.Lock()
_ESPEAK_READY = False


def _configure_espeak() -> None:
    """Point phonemizer at the espeak-ng library and data shipped by the ``espeakng-loader`` wheel."""
    global _ESPEAK_READY
    if _ESPEAK_READY:
        return
    try:
        import espeakng_loader
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as error:  # pragma: no cover - both are install requirements
        raise ImportError(
            "The phoneme tokenizer needs `phonemizer` and `espeakng-loader`: pip install phonemizer espeakng-loader"
        ) from error
    os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    _ESPEAK_READY = True


def supported_languages() -> dict[str, str]:
    """The espeak-ng language codes and names, e.g. ``{"en-us": "English_(America)", ...}``."""
    _configure_espeak()
    from phonemizer.backend import EspeakBackend

    return dict(EspeakBackend.supported_languages())


@lru_cache(maxsize=32)
def _backend(language: str):
    _configure_espeak()
    from phonemizer.backend import EspeakBackend

    if language not in supported_languages():
        raise UnsupportedLanguageError(
            f"Unknown language code {language!r}. List the supported espeak-ng codes with "
            "`hf_metatts.supported_languages()` or `hf-metatts languages`."
        )
    return EspeakBackend(
        language, preserve_punctuation=True, with_stress=True, language_switch="remove-flags",
        logger=_phonemizer_logger
    )


def phonemize(texts: list[str], language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Turn texts into IPA phoneme strings (stress kept, words separated by a space, punctuation kept).

    Args:
        texts: the sentences to convert.
        language: an espeak-ng language code (``hf_metatts.supported_languages()`` lists them).

    Raises:
        InvalidTextError: a text is empty or whitespace-only.
        UnsupportedLanguageError: espeak-ng does not know ``language``.
    """
    from phonemizer.separator import Separator

    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise InvalidTextError(f"Cannot synthesise empty or whitespace-only text {text!r}: give some words.")
    backend = _backend(language)
    # espeak reads its input line by line: one utterance is one line.
    lines = [" ".join(text.split()) for text in texts]
    with _ESPEAK_LOCK:
        phonemes = backend.phonemize(lines, separator=Separator(phone="", word=WORD_BOUNDARY), strip=True)
    return [" ".join(p.split()) for p in phonemes]


def is_pronounceable(phonemes: str) -> bool:
    """True when a phoneme string holds at least one sound (not only punctuation and spaces)."""
    return any(ch not in PUNCTUATION and not ch.isspace() for ch in phonemes)


class MetaTTSTokenizer(PreTrainedTokenizer):
    """Character-level tokenizer over espeak-ng IPA phonemes.

    ``tokenizer("Hello there.", language="de")`` phonemizes with the German voice, then maps each IPA
    symbol to its id. Symbols outside the table become ``<unk>`` with a logged warning. Pass
    ``is_phonemized=True`` for input that already is an IPA string (e.g. a corpus ``phonemes`` column).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file=None, language=DEFAULT_LANGUAGE, pad_token=PAD_TOKEN, unk_token=UNK_TOKEN, **kwargs):
        if vocab_file is None:
            symbols = DEFAULT_SYMBOLS
        else:
            with open(vocab_file, encoding="utf-8") as handle:
                vocab = json.load(handle)
            symbols = [symbol for symbol, _ in sorted(vocab.items(), key=lambda item: item[1])]
        self.encoder = {symbol: index for index, symbol in enumerate(symbols)}
        self.decoder = dict(enumerate(symbols))
        self.language = language
        self._warned_symbols: set[str] = set()
        kwargs.setdefault("model_max_length", int(1e9))
        super().__init__(pad_token=pad_token, unk_token=unk_token, language=language, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.encoder)

    def prepare_for_tokenization(self, text, is_split_into_words=False, language=None, is_phonemized=False, **kwargs):
        """Phonemize ``text`` (unless ``is_phonemized``) in ``language`` (default: the tokenizer's)."""
        if is_phonemized:
            phonemes = " ".join(str(text).split())
        else:
            phonemes = phonemize([text], language or self.language)[0]
        if not is_pronounceable(phonemes):
            raise InvalidTextError(
                f"Text {text!r} has no pronounceable content (phonemes: {phonemes!r}): give words, not only "
                "punctuation or symbols."
            )
        return phonemes, kwargs

    def _tokenize(self, text, **kwargs):
        return list(text)

    def _convert_token_to_id(self, token):
        if token in self.encoder:
            return self.encoder[token]
        if token not in self._warned_symbols:
            self._warned_symbols.add(token)
            logger.warning(
                "Symbol %r (U+%04X) is not in the phoneme table: mapped to %s.", token, ord(token[0]), UNK_TOKEN
            )
        return self.encoder[UNK_TOKEN]

    def _convert_id_to_token(self, index):
        return self.decoder.get(int(index), UNK_TOKEN)

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)

    def sentence_end_ids(self) -> list[int]:
        """Ids of the punctuation that ends a sentence (long input is split there)."""
        return [self.encoder[ch] for ch in SENTENCE_END if ch in self.encoder]

    def save_vocabulary(self, save_directory, filename_prefix=None):
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.encoder, handle, ensure_ascii=False, indent=0)
        return (path,)
