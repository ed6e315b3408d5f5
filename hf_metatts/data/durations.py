"""Token durations from a corpus's phone timings: frames per phoneme token, for training with given durations.

Every source of the corpus reports phone timings (``[{"phone", "start", "end"}]`` in seconds), but in its own
phone set: espeak-ng reports the same IPA symbols the tokenizer reads, flite and festival report their own
(ARPAbet-like ``ax``, ``ng``, ``pau`` for English; SAMPA-like ``c~``, ``i:`` for Czech; ...).

- `token_durations` first tries an exact match (each phone is a run of the tokens, skipping word
  boundaries and punctuation); where the phone sets differ it aligns phones to token groups with a
  monotonic dynamic-programming alignment on symbol and class (vowel / consonant / pause) agreement.
- Each phone's frames go to the base letters of the tokens it covers; stress and length marks, diacritics,
  spaces and punctuation get 0 frames, except where a pause lies (its frames go to that boundary token).
- An alignment that agrees on too few symbols is refused (``None``): the model's aligner handles that clip.
"""

import logging
import unicodedata

import numpy as np

logger = logging.getLogger(__name__)

#: Phones that mark silence in flite / festival / espeak timings.
PAUSE_PHONES = frozenset({"pau", "sil", "#", "_", "h#", "brth", "sp", "spn"})

#: ARPAbet-like phones of flite and festival's English voices -> the IPA letters espeak writes for them.
ARPABET_TO_IPA = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌə", "ao": "ɔɑ", "aw": "aʊ", "ax": "əɐ", "axr": "ɚ", "ay": "aɪ", "eh": "ɛ",
    "er": "ɜɚ", "ey": "eɪ", "ih": "ɪᵻ", "ix": "ɪᵻ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u",
    "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾt", "el": "l", "em": "m", "en": "n", "f": "f", "g": "ɡ",
    "hh": "h", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ", "p": "p", "r": "ɹ", "s": "s",
    "sh": "ʃ", "t": "tɾ", "th": "θ", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
}

VOWELS = frozenset("aeiouyɑɐɒæɔəɘɚɛɜɝɞɤɨɪʉʊʌʏøœɶᵻɯ")

#: Minimum share of a clip's letter groups aligned to a phone with the same symbol.
MIN_AGREEMENT = 0.5

# alignment costs: same symbol, same class, different class; a pause on a boundary, on a letter
_SAME_SYMBOL, _SAME_CLASS, _OTHER_CLASS = 0.0, 0.5, 1.2
_PAUSE_ON_BOUNDARY, _PAUSE_ON_LETTER, _PHONE_ON_BOUNDARY = 0.0, 1.5, 0.9
_STRETCH = 0.3  # extra cost of one phone covering several groups or one group several phones


class PhoneTimingError(ValueError):
    """Phone timings that cannot describe a clip (negative or decreasing times, no phones)."""


def _is_base_letter(char: str) -> bool:
    """A letter that carries sound (not a stress/length mark, diacritic, space or punctuation)."""
    return len(char) == 1 and unicodedata.category(char) in ("Ll", "Lu", "Lo")


def skippable_token_ids(tokenizer) -> list[int]:
    """The ids of the tokens these durations give 0 frames unless a pause lies there: every one-character token
    that is not a base letter (stress and length marks, diacritics, spaces, punctuation). Written into
    ``MetaTTSConfig.aligner_skippable_token_ids`` so that the model's aligner reads a clip without timings the
    same way (``monotonic_alignment_search(..., skippable=...)``)."""
    return sorted(index for token, index in tokenizer.get_vocab().items()
                  if len(token) == 1 and not _is_base_letter(token))


def _is_mark(char: str) -> bool:
    """A modifier letter or combining mark that attaches to a neighbouring letter (ˈ ˌ ː ʲ ̃ ...)."""
    return len(char) == 1 and unicodedata.category(char) in ("Lm", "Mn", "Sk")


def group_tokens(tokens: list[str]) -> list[tuple[list[int], bool]]:
    """Group token positions into ``(positions, is_letter_group)``: a letter group is one base letter with the
    stress marks before it and the length marks / diacritics after it; every space or punctuation token is a
    boundary group of its own. Tokens are the tokenizer's symbols (one character each)."""
    groups: list[tuple[list[int], bool]] = []
    pending_marks: list[int] = []
    for index, token in enumerate(tokens):
        if _is_base_letter(token):
            groups.append((pending_marks + [index], True))
            pending_marks = []
        elif _is_mark(token):
            if token in "ˈˌ":
                pending_marks.append(index)
            elif groups and groups[-1][1]:
                groups[-1][0].append(index)
            else:
                pending_marks.append(index)
        else:
            if pending_marks:
                groups.append((pending_marks, False))
                pending_marks = []
            groups.append(([index], False))
    if pending_marks:
        groups.append((pending_marks, False))
    return groups


def phone_frame_counts(phone_timings: list[dict], num_frames: int, frames_per_second: float) -> list[int]:
    """Frames per phone: phone ends rounded to frames, the last end moved to ``num_frames`` (sums to it)."""
    if not phone_timings:
        raise PhoneTimingError("No phone timings: give at least one {'phone', 'start', 'end'}.")
    ends = np.array([float(p["end"]) for p in phone_timings])
    if not np.all(np.isfinite(ends)) or (ends < 0).any() or (np.diff(ends) < -1e-6).any():
        raise PhoneTimingError(f"Phone end times must be finite, non-negative and non-decreasing, got {ends.tolist()}.")
    boundaries = np.minimum(np.round(ends * frames_per_second).astype(int), num_frames)
    boundaries = np.maximum.accumulate(boundaries)
    boundaries[-1] = num_frames
    return np.diff(np.concatenate([[0], boundaries])).tolist()


def _exact_phone_groups(tokens: list[str], phones: list[str]) -> list[list[int]] | None:
    """Token positions of each phone when every phone is literally a run of the tokens (espeak timings);
    boundaries between phones are skipped. ``None`` when the phone set differs."""
    position, spans = 0, []
    for phone in phones:
        if phone in PAUSE_PHONES:
            return None
        while position < len(tokens) and tokens[position] != phone[0]:
            if _is_base_letter(tokens[position]):
                return None
            position += 1
        if position >= len(tokens):
            return None
        if tokens[position: position + len(phone)] != list(phone):
            return None
        spans.append(list(range(position, position + len(phone))))
        position += len(phone)
    if any(_is_base_letter(token) for token in tokens[position:]):
        return None
    return spans


def _phone_symbols(phone: str, language: str) -> str:
    """The IPA letters a phone may be written with: ARPAbet table for English, the phone's own letters else."""
    if language.startswith("en") and phone.lower() in ARPABET_TO_IPA:
        return ARPABET_TO_IPA[phone.lower()]
    return "".join(ch for ch in phone.lower() if ch.isalpha()) or phone


def _group_cost(phone: str, symbols: str, group_letter: str | None) -> float:
    if phone in PAUSE_PHONES:
        return _PAUSE_ON_BOUNDARY if group_letter is None else _PAUSE_ON_LETTER
    if group_letter is None:
        return _PHONE_ON_BOUNDARY
    if group_letter in symbols:
        return _SAME_SYMBOL
    return _SAME_CLASS if (group_letter in VOWELS) == (symbols[0] in VOWELS) else _OTHER_CLASS


def _align_phones_to_groups(phones: list[str], language: str, group_letters: list[str | None]):
    """Monotonic alignment (dynamic time warping) of phones to token groups -> list of (phone, group) pairs."""
    symbols = [_phone_symbols(p, language) for p in phones]
    num_phones, num_groups = len(phones), len(group_letters)
    cost = np.array([[_group_cost(p, s, g) for g in group_letters] for p, s in zip(phones, symbols)])
    total = np.full((num_phones + 1, num_groups + 1), np.inf)
    total[0, 0] = 0.0
    move = np.zeros((num_phones + 1, num_groups + 1), dtype=np.int8)
    for i in range(1, num_phones + 1):
        for j in range(1, num_groups + 1):
            options = (total[i - 1, j - 1], total[i, j - 1] + _STRETCH, total[i - 1, j] + _STRETCH)
            best = int(np.argmin(options))
            total[i, j] = options[best] + cost[i - 1, j - 1]
            move[i, j] = best
    pairs, i, j = [], num_phones, num_groups
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        step = move[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i, j - 1) if step == 1 else (i - 1, j)
    pairs.reverse()
    agreeing = len({g for p, g in pairs if group_letters[g] is not None and cost[p, g] == _SAME_SYMBOL})
    letters = sum(1 for letter in group_letters if letter is not None)
    return pairs, agreeing / max(letters, 1)


def token_durations(tokens: list[str], phone_timings: list[dict], num_frames: int, frames_per_second: float,
                    language: str = "en-us", min_agreement: float = MIN_AGREEMENT) -> list[int] | None:
    """Frames per token for one clip, or ``None`` when its phone timings cannot be matched to its tokens.

    Args:
        tokens: the clip's phoneme tokens (``tokenizer.convert_ids_to_tokens(input_ids)``), length ``N``.
        phone_timings: ``[{"phone", "start", "end"}]`` in seconds, in the source's own phone set.
        num_frames: the clip's mel frames ``T``; frames_per_second: ``sampling_rate / hop_length``.
        language: the clip's language (chooses the phone-name table for English flite/festival phones).
        min_agreement: refuse alignments where fewer letter groups agree with their phone.

    Returns:
        ``N`` non-negative ints summing to ``T``, or ``None``.
    """
    if not tokens or num_frames < 1:
        return None
    phones = [str(p["phone"]) for p in phone_timings]
    frames = phone_frame_counts(phone_timings, num_frames, frames_per_second)
    durations = [0] * len(tokens)
    spans = _exact_phone_groups(tokens, phones)
    if spans is not None:
        for span, count in zip(spans, frames):
            _spread(durations, [i for i in span if _is_base_letter(tokens[i])] or span, count)
        return durations
    groups = group_tokens(tokens)
    group_letters = [next((tokens[i] for i in positions if _is_base_letter(tokens[i])), None) if is_letter else None
                     for positions, is_letter in groups]
    pairs, agreement = _align_phones_to_groups(phones, language, group_letters)
    if agreement < min_agreement:
        logger.debug("phone timings refused: %.2f of letter groups agree (%s)", agreement, phones[:12])
        return None
    covered: dict[int, list[int]] = {}
    for phone, group in pairs:
        covered.setdefault(phone, []).append(group)
    for phone, group_ids in covered.items():
        if phones[phone] in PAUSE_PHONES:
            chosen = [g for g in group_ids if group_letters[g] is None] or group_ids[-1:]
        else:
            chosen = [g for g in group_ids if group_letters[g] is not None] or group_ids[-1:]
        carriers = [i for g in chosen for i in groups[g][0] if _is_base_letter(tokens[i])]
        _spread(durations, carriers or [groups[chosen[0]][0][0]], frames[phone])
    return durations


def _spread(durations: list[int], positions: list[int], count: int) -> None:
    """Add ``count`` frames over ``positions`` as evenly as integers allow (earlier positions get the rest)."""
    share, rest = divmod(int(count), len(positions))
    for rank, position in enumerate(positions):
        durations[position] += share + (1 if rank < rest else 0)
