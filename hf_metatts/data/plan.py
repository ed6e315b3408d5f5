"""Plan a build: which voices exist, which task each becomes, its split, and the sentences it reads.

The plan is a list of ``Job`` objects, one per task shard. Rules that keep the evaluation honest:
a perturbed voice stays in its source voice's split (train-only perturbations exist only for train
voices), held-out voices (and their perturbations) only
ever land in ``test``, and every job reads sentences from its own split's pool, so no sentence is in
two splits.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field

from .errors import CorpusBuildError, NoSentencesError
from .perturb import Perturbation, pyworld_available
from .presets import FESTIVAL_VOICES, SPLITS, STYLES, CorpusPreset
from .sentences import SentencePool, load_sentences
from .sources import espeak, festival, flite
from .sources.base import NEUTRAL, Style, VoiceSpec

logger = logging.getLogger(__name__)

__all__ = ["TASK_COLUMNS", "Job", "Plan", "discover_voices", "make_plan"]

TASK_COLUMNS = ("speaker_id", "language", "style")


@dataclass
class Job:
    """One task shard: a voice (maybe perturbed) in one style reading its split's sentences."""

    voice: VoiceSpec
    speaker_id: str
    base_speaker: str
    split: str
    style: Style = NEUTRAL
    perturbation: Perturbation | None = None
    sentences: list[str] = field(default_factory=list)
    phonemes: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        """A file-system-safe unique id, used as the shard folder name."""
        name = f"{self.split}__{self.speaker_id}__{self.style.name}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)

    def task_value(self, task_column: str) -> str:
        """The value this job's rows have in ``task_column``."""
        return {"speaker_id": self.speaker_id, "language": self.voice.language, "style": self.style.name}[task_column]

    @property
    def text_language(self) -> str:
        """The language of the text pool (``en`` for every English accent)."""
        return self.voice.language.split("-")[0]

    @property
    def cost(self) -> float:
        """A rough relative run time, to start the slowest jobs first."""
        per = {"espeak": 0.02, "flite": 0.15, "festival": 0.1}.get(self.voice.source, 0.1)
        return len(self.sentences) * (per + (0.3 if self.perturbation else 0.0))


@dataclass
class Plan:
    """The jobs of a build plus what was found and skipped while planning."""

    jobs: list[Job]
    sources: dict[str, str]
    skipped_voices: dict[str, str]
    sentence_counts: dict[str, dict[str, int]]


def _speaker_id(voice: VoiceSpec, perturbation: Perturbation | None = None) -> str:
    base = f"{voice.source}:{voice.voice}"
    return f"{base}~{perturbation.name}" if perturbation else base


def discover_voices(preset: CorpusPreset, sources: tuple[str, ...] | None = None) -> tuple[list[VoiceSpec], dict, dict]:
    """The preset's voices that are installed; plus a message per source and per missing voice."""
    wanted = set(sources or ("espeak", "flite", "festival"))
    voices: list[VoiceSpec] = []
    messages: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if "espeak" in wanted:
        ok, msg = espeak.available()
        messages["espeak"] = msg
        if ok:
            variants = set(espeak.list_variants())
            for language, names in preset.espeak_voices.items():
                if language.lower() not in espeak.known_languages():
                    for name in names:
                        skipped[f"espeak:{language}+{name}"] = f"espeak-ng has no language {language!r}"
                    continue
                for name in names:
                    if name not in variants:
                        skipped[f"espeak:{language}+{name}"] = f"espeak-ng has no variant {name!r}"
                        continue
                    voices.append(VoiceSpec("espeak", f"{language}+{name}", language))
    for module, source, preset_voices in ((flite, "flite", preset.flite_voices),
                                          (festival, "festival", preset.festival_voices)):
        if source not in wanted or not preset_voices:
            continue
        ok, msg = module.available()
        messages[source] = msg
        if not ok:
            logger.warning("%s: skipping its %d voices", msg, len(preset_voices))
            for name in preset_voices:
                skipped[f"{source}:{name}"] = msg
            continue
        installed = set(module.installed_voices())
        for name in preset_voices:
            if name not in installed:
                skipped[f"{source}:{name}"] = f"{source} voice {name} not installed (scripts/install_synthesizers.sh)"
                continue
            if source == "festival":
                language, encoding = FESTIVAL_VOICES.get(name, ("en-us", "latin-1"))
                voices.append(VoiceSpec(source, name, language, encoding))
            else:
                voices.append(VoiceSpec(source, name, "en-us"))
    for key, why in skipped.items():
        logger.warning("voice %s skipped: %s", key, why)
    return voices, messages, skipped


def _rank(key: str, seed: int) -> bytes:
    return hashlib.sha1(f"voice:{seed}:{key}".encode()).digest()


def _speaker_splits(voices: list[VoiceSpec], preset: CorpusPreset) -> dict[str, str]:
    """Split of each base voice: held-out -> test, forced validation, else stratified by (source, language)."""
    splits: dict[str, str] = {}
    groups: dict[tuple[str, str], list[VoiceSpec]] = defaultdict(list)
    for voice in voices:
        key = _speaker_id(voice)
        if key in preset.heldout_voices:
            splits[key] = "test"
        elif key in preset.validation_voices:
            splits[key] = "validation"
        else:
            groups[(voice.source, voice.language)].append(voice)
    for group in groups.values():
        group.sort(key=lambda v: _rank(_speaker_id(v), preset.seed))
        n = len(group)
        n_val = int(n * preset.voice_fractions[1] + 0.5) if n >= 3 else 0
        n_test = int(n * preset.voice_fractions[2] + 0.5) if n >= 3 else 0
        for i, voice in enumerate(group):
            splits[_speaker_id(voice)] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    return splits


def _language_split(language: str, holdout: str | None, validation: str | None) -> str:
    def matches(code: str | None) -> bool:
        return bool(code) and (language == code or language.split("-")[0] == code)

    return "test" if matches(holdout) else "validation" if matches(validation) else "train"


def _pick_validation_language(voices: list[VoiceSpec], holdout: str) -> str:
    """The base language with the fewest voices other than the held-out one (ties: alphabetical)."""
    counts: dict[str, int] = defaultdict(int)
    for voice in voices:
        base = voice.language.split("-")[0]
        if _language_split(voice.language, holdout, None) != "test":
            counts[base] += 1
    if len(counts) < 2:
        raise CorpusBuildError("language tasks need at least three languages with voices (test, validation, train)")
    choice = min(sorted(counts), key=lambda lang: counts[lang])
    logger.info("validation language: %s (pass --validation-language to choose)", choice)
    return choice


def _jobs_for_mode(
    voices: list[VoiceSpec], preset: CorpusPreset, task_column: str, holdout_language: str | None,
    validation_language: str | None, can_perturb: bool,
) -> list[Job]:
    jobs: list[Job] = []

    def add(voice: VoiceSpec, split: str, style: Style = NEUTRAL) -> None:
        heldout = _speaker_id(voice) in preset.heldout_voices
        variants = [None]
        if can_perturb and voice.source in preset.perturb_sources:
            variants += list(preset.perturbations)
            if split == "train":
                variants += list(preset.train_perturbations)
        for perturbation in variants:
            if heldout and split != "test":
                continue  # held-out voices never train or validate
            jobs.append(Job(voice=voice, speaker_id=_speaker_id(voice, perturbation),
                            base_speaker=_speaker_id(voice), split=split, style=style, perturbation=perturbation))

    if task_column == "speaker_id":
        splits = _speaker_splits(voices, preset)
        for voice in voices:
            add(voice, splits[_speaker_id(voice)])
    elif task_column == "language":
        if not holdout_language:
            raise CorpusBuildError("task column 'language' needs --holdout-language (e.g. cs), the test language")
        found = {v.language for v in voices} | {v.language.split("-")[0] for v in voices}
        if validation_language is None:
            validation_language = _pick_validation_language(voices, holdout_language)
        for code in (holdout_language, validation_language):
            if code and code not in found:
                raise CorpusBuildError(f"language {code!r} has no voices; available: {sorted(found)}")
        for voice in voices:
            add(voice, _language_split(voice.language, holdout_language, validation_language))
    elif task_column == "style":
        per_language: dict[str, int] = defaultdict(int)
        for voice in voices:
            if voice.source == "festival":
                continue  # festival has no pitch control: its styles would differ in rate only
            if voice.source == "espeak":
                per_language[voice.language] += 1
                if per_language[voice.language] > preset.style_voices_per_language:
                    continue
            for style_name in preset.styles:
                split = preset.style_splits.get(style_name, "train")
                heldout = _speaker_id(voice) in preset.heldout_voices
                if heldout and split != "test":
                    continue
                jobs.append(Job(voice=voice, speaker_id=_speaker_id(voice), base_speaker=_speaker_id(voice),
                                split=split, style=STYLES[style_name]))
    else:
        raise CorpusBuildError(f"unknown task column {task_column!r}; choose one of {TASK_COLUMNS}")
    return jobs


def make_plan(
    preset: CorpusPreset,
    task_column: str = "speaker_id",
    holdout_language: str | None = None,
    validation_language: str | None = None,
    sources: tuple[str, ...] | None = None,
    fortune_dir=None,
) -> Plan:
    """Discover voices, assign tasks to splits and give each job its sentences and phonemes."""
    voices, messages, skipped = discover_voices(preset, sources)
    can_perturb, why = pyworld_available()
    if not can_perturb and preset.perturbations:
        logger.warning("%s: building without perturbed voices", why)
        messages["perturbation"] = why
    pools: dict[str, SentencePool] = {}
    usable: list[VoiceSpec] = []
    for voice in voices:
        lang = voice.language.split("-")[0]
        if lang not in pools:
            try:
                sentences = load_sentences(lang, root=fortune_dir)
            except NoSentencesError as exc:
                pools[lang] = None  # type: ignore[assignment]
                logger.warning("%s", exc)
            else:
                pools[lang] = SentencePool.from_sentences(lang, sentences, preset.seed, preset.sentence_fractions)
        if pools[lang] is None:
            skipped[_speaker_id(voice)] = f"no sentences for language {lang!r}"
            continue
        usable.append(voice)
    if not usable:
        raise CorpusBuildError(
            "no usable voices: install the sentence and voice packages with scripts/install_synthesizers.sh"
        )
    jobs = _jobs_for_mode(usable, preset, task_column, holdout_language, validation_language, can_perturb)
    offsets: dict[tuple[str, str], int] = defaultdict(int)
    for job in jobs:
        key = (job.text_language, job.split)
        count = preset.style_utterances_per_voice if task_column == "style" else preset.utterances_per_task
        job.sentences = pools[job.text_language].take(job.split, offsets[key], count)
        offsets[key] += count
    counts = {lang: {s: len(p.splits[s]) for s in SPLITS} for lang, p in pools.items() if p is not None}
    return Plan(jobs=jobs, sources=messages, skipped_voices=skipped, sentence_counts=counts)
