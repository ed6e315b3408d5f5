"""Corpus presets: every constant of a build (voices, sizes, limits, splits) in one dataclass.

``tiny`` builds in seconds for tests; ``default`` is the meta-training corpus (more than 100 training
speakers with 50 utterances each); ``augmented`` adds train-only shifts of its recorded voices;
``recorded_screen`` is a small screening split of recorded-like English voices none of them trains on. Voice
names are ``source:voice`` (``flite:awb``, ``festival:kal_diphone``, ``espeak:en-us+m3``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .perturb import Perturbation
from .sources.base import Style

#: Every split a build (or a loader) can produce, in this order.
SPLITS = ("train", "validation", "test")

__all__ = ["CorpusPreset", "FESTIVAL_VOICES", "HELDOUT_VOICES", "PRESETS", "SPLITS", "STYLES", "get_preset"]

#: Natural-sounding English voices kept for evaluation only: they and their perturbations are test-only.
HELDOUT_VOICES = ("flite:awb", "flite:slt", "flite:rms", "festival:cmu_us_slt_arctic_hts")

#: festival voice -> (espeak language code of its text, the text encoding it reads)
FESTIVAL_VOICES: dict[str, tuple[str, str]] = {
    "kal_diphone": ("en-us", "latin-1"),
    "ked_diphone": ("en-us", "latin-1"),
    "cmu_us_slt_arctic_hts": ("en-us", "latin-1"),
    "pc_diphone": ("it", "latin-1"),
    "lp_diphone": ("it", "latin-1"),
    "czech_dita": ("cs", "iso-8859-2"),
    "czech_krb": ("cs", "iso-8859-2"),
    "czech_machac": ("cs", "iso-8859-2"),
    "czech_ph": ("cs", "iso-8859-2"),
    "msu_ru_nsh_clunits": ("ru", "utf-8"),
    "suo_fi_lj_diphone": ("fi", "latin-1"),
    "hy_fi_mv_diphone": ("fi", "latin-1"),
    "upc_ca_ona_hts": ("ca", "iso-8859-15"),
}

#: Speaking styles from rate, pitch and pitch-range controls (espeak and flite apply all three,
#: festival only the rate).
STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("neutral"),
        Style("fast", rate=1.4),
        Style("slow", rate=0.7),
        Style("high", pitch=1.4),
        Style("low", pitch=0.7),
        Style("lively", pitch=1.1, range=2.0),
        Style("calm", rate=0.85, pitch=0.9, range=0.5),
        Style("monotone", range=0.1),
        Style("excited", rate=1.25, pitch=1.25, range=1.8),
    )
}

_ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
_VARIANTS_12 = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "adam")
_VARIANTS_8 = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "adam")
_NATURAL_PERTURBATIONS = (
    Perturbation(pitch=1.25, formant=1.10),
    Perturbation(pitch=0.80, formant=0.92),
    Perturbation(pitch=1.15, formant=1.0),
)
#: Shifts in directions no other preset uses (formant alone, pitch against formant): the ``recorded_screen``
#: preset's new timbres of the recorded English training voices.
_SCREEN_PERTURBATIONS = (
    Perturbation(pitch=1.00, formant=0.90),
    Perturbation(pitch=1.00, formant=1.12),
    Perturbation(pitch=1.35, formant=0.98),
    Perturbation(pitch=0.75, formant=1.02),
)
#: Extra pitch/formant shifts for training voices only (preset ``augmented``): wider vocal-tract and pitch
#: coverage so that meta-training sees more timbres of natural voices than the few recorded speakers give.
_TRAIN_ONLY_PERTURBATIONS = (
    Perturbation(pitch=1.60, formant=1.18),
    Perturbation(pitch=1.40, formant=1.14),
    Perturbation(pitch=1.10, formant=1.06),
    Perturbation(pitch=0.90, formant=1.04),
    Perturbation(pitch=1.05, formant=0.96),
    Perturbation(pitch=0.70, formant=0.88),
)


@dataclass(frozen=True)
class CorpusPreset:
    """Everything that decides what a build produces.

    Attributes:
        name: the preset's name.
        espeak_voices: espeak language code -> voice variants (each pair is one speaker).
        flite_voices: flite voices to use when flite is installed.
        festival_voices: festival voices to use when festival is installed (see ``FESTIVAL_VOICES``).
        perturbations: pitch/formant shifts applied to ``perturb_sources`` voices, each a new speaker.
        train_perturbations: further shifts applied only to ``perturb_sources`` voices of the train split
            (data augmentation: validation and test speakers are the same as without them).
        perturb_sources: which sources' voices get perturbed (``flite``, ``festival``, ``espeak``).
        heldout_voices: voices (and their perturbations) that appear only in ``test``.
        validation_voices: voices forced into ``validation`` (with their perturbations).
        utterances_per_task: sentences rendered per task.
        min_utterances: tasks with fewer valid clips are left out (and reported).
        max_duration / min_duration: clip length limits in seconds (outside: skipped and counted).
        voice_fractions: train/validation/test shares of the voices of each (source, language) group.
        sentence_fractions: train/validation/test shares of each language's sentences.
        styles: style names used when the task column is ``style``.
        style_splits: style name -> split when the task column is ``style``.
        style_voices_per_language: espeak voices per language rendered in every style (style tasks).
        style_utterances_per_voice: sentences each voice reads in each style (style tasks).
        splits: the splits a build must produce; one that no voice is assigned to is an error (a screening
            preset that places every voice in ``validation`` gives only that split).
        seed: the seed of every hash-based assignment.
        num_workers: synthesis processes (0 = in this process).
    """

    name: str
    espeak_voices: dict[str, tuple[str, ...]]
    flite_voices: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
    festival_voices: tuple[str, ...] = tuple(FESTIVAL_VOICES)
    perturbations: tuple[Perturbation, ...] = _NATURAL_PERTURBATIONS
    train_perturbations: tuple[Perturbation, ...] = ()
    perturb_sources: tuple[str, ...] = ("flite", "festival")
    heldout_voices: tuple[str, ...] = HELDOUT_VOICES
    validation_voices: tuple[str, ...] = ("festival:czech_ph",)
    utterances_per_task: int = 50
    min_utterances: int = 40
    max_duration: float = 15.0
    min_duration: float = 0.3
    voice_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    sentence_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    styles: tuple[str, ...] = tuple(STYLES)
    style_splits: dict[str, str] = field(
        default_factory=lambda: {"neutral": "train", "fast": "train", "slow": "train", "high": "train",
                                 "low": "train", "lively": "train", "calm": "validation",
                                 "monotone": "test", "excited": "test"}
    )
    style_voices_per_language: int = 4
    style_utterances_per_voice: int = 12
    splits: tuple[str, ...] = SPLITS
    seed: int = 0
    num_workers: int = 2

    def __post_init__(self) -> None:
        for name, fr in (("voice_fractions", self.voice_fractions), ("sentence_fractions", self.sentence_fractions)):
            if len(fr) != 3 or abs(sum(fr) - 1.0) > 1e-6 or min(fr) < 0:
                raise ValueError(f"{name} must be three non-negative shares summing to 1, got {fr}")
        if self.min_utterances > self.utterances_per_task:
            raise ValueError(
                f"min_utterances ({self.min_utterances}) exceeds utterances_per_task ({self.utterances_per_task})"
            )
        if not 0 < self.min_duration < self.max_duration:
            raise ValueError(f"need 0 < min_duration < max_duration, got {self.min_duration}, {self.max_duration}")
        shared = {p.name for p in self.train_perturbations} & {p.name for p in self.perturbations}
        if shared or any(p.is_identity for p in self.train_perturbations):
            raise ValueError(
                "train_perturbations must be new shifts (not the identity, not in perturbations); "
                f"repeated: {sorted(shared) or ['p1.00_f1.00']}"
            )
        if not self.splits or not set(self.splits) <= set(SPLITS):
            raise ValueError(f"splits must be some of {SPLITS}, got {self.splits}")
        unknown = set(self.style_splits) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown styles {sorted(unknown)}; known: {sorted(STYLES)}")

    def replace(self, **changes) -> CorpusPreset:
        """A copy with some fields changed (``preset.replace(num_workers=0)``)."""
        return dataclasses.replace(self, **changes)

    def fingerprint(self, **extra) -> str:
        """A hash of everything that changes the output (``num_workers`` excluded), plus ``extra``."""
        data = dataclasses.asdict(self)
        data.pop("num_workers")
        if not data["train_perturbations"]:
            data.pop("train_perturbations")  # builds made before the field existed keep their fingerprint
        if tuple(data["splits"]) == SPLITS:
            data.pop("splits")  # the same
        data.update(extra)
        return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


PRESETS: dict[str, CorpusPreset] = {
    "tiny": CorpusPreset(
        name="tiny",
        espeak_voices={"en-us": ("m1", "m3", "f1", "f3", "m5", "f5", "m7", "f2", "adam", "f4"),
                       "cs": ("m1", "f1", "m3")},
        flite_voices=("kal16", "awb"),
        festival_voices=(),
        perturbations=(Perturbation(pitch=1.25, formant=1.10),),
        validation_voices=(),
        utterances_per_task=6,
        min_utterances=4,
        style_voices_per_language=2,
        style_utterances_per_voice=3,
    ),
    "default": CorpusPreset(
        name="default",
        espeak_voices={
            **{accent: _VARIANTS_12 for accent in _ENGLISH_ACCENTS},
            **{lang: _VARIANTS_8 for lang in ("cs", "de", "es", "it", "ru")},
        },
    ),
}
#: ``default`` plus train-only pitch/formant shifts of the recorded voices: the same validation and test
#: speakers, 54 more training speakers.
PRESETS["augmented"] = PRESETS["default"].replace(name="augmented", train_perturbations=_TRAIN_ONLY_PERTURBATIONS)
#: A screening split of English recorded-like voices that ``default`` and ``augmented`` never train on: new
#: pitch/formant shifts of their three English recorded training voices, all in ``validation``, reading the
#: validation sentences. Read only the shifted voices (``--tasks flite:kal16~ festival:kal_diphone~
#: festival:ked_diphone~``): the unshifted bases are training speakers of the other presets. Its voices are near
#: training voices, and it orders adaptation starts as the validation split does, not as the unseen test speakers
#: (BENCHMARKS.md, "Tried: learned rates for the centroid", round 6).
PRESETS["recorded_screen"] = CorpusPreset(
    name="recorded_screen",
    espeak_voices={},
    flite_voices=("kal16",),
    festival_voices=("kal_diphone", "ked_diphone"),
    perturbations=_SCREEN_PERTURBATIONS,
    heldout_voices=(),
    validation_voices=("flite:kal16", "festival:kal_diphone", "festival:ked_diphone"),
    splits=("validation",),
)

#: The espeak voice variants of the default corpus's non-English test speakers (cs+adam, de+m3, es+f2, it+m5,
#: ru+m7): the ``unseen_languages`` preset renders each of them in each new language, so that a language the
#: checkpoint never heard can be set against a language it did, with the same voice variants.
_UNSEEN_LANGUAGE_VARIANTS = ("adam", "m3", "f2", "m5", "m7")
#: Other variants, for the screen of the same languages.
_UNSEEN_LANGUAGE_SCREEN_VARIANTS = ("m1", "f1", "f4")
_UNSEEN_LANGUAGES = ("pl", "bg", "ga")


def _unseen_language_voices(variants: tuple[str, ...]) -> dict:
    """``espeak_voices`` and ``heldout_voices`` of a preset that speaks every unseen language with ``variants``."""
    return {"espeak_voices": {language: variants for language in _UNSEEN_LANGUAGES},
            "heldout_voices": tuple(f"espeak:{language}+{variant}" for language in _UNSEEN_LANGUAGES
                                    for variant in variants)}


#: Languages that ``default`` and ``augmented`` never train on (Polish, Bulgarian, Irish), espeak voices only, all in
#: ``test``, each voice reading 20 of its language's sentences (Debian fortunes-pl, -bg, -ga): the low-resource
#: language use (BENCHMARKS.md, "Languages the checkpoint never heard").
PRESETS["unseen_languages"] = CorpusPreset(
    name="unseen_languages",
    **_unseen_language_voices(_UNSEEN_LANGUAGE_VARIANTS),
    flite_voices=(),
    festival_voices=(),
    perturbations=(),
    validation_voices=(),
    utterances_per_task=20,
    min_utterances=15,
    sentence_fractions=(0.0, 0.0, 1.0),
    splits=("test",),
)
#: The same languages spoken by three other variants (m1, f1, f4), also in ``test``: a screen on which to choose what
#: to change for new languages before the ``unseen_languages`` speakers are read.
PRESETS["unseen_languages_screen"] = PRESETS["unseen_languages"].replace(
    name="unseen_languages_screen", **_unseen_language_voices(_UNSEEN_LANGUAGE_SCREEN_VARIANTS))


def get_preset(name: str) -> CorpusPreset:
    """The preset called ``name``; raises ``KeyError`` listing the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown corpus preset {name!r}; choose one of {sorted(PRESETS)}") from None
