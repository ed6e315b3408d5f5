"""Load any ``datasets`` speech corpus as meta-learning tasks with the corpus schema.

``load_speech_tasks`` maps a dataset's column names (presets for LibriTTS-R and VCTK), decodes the
audio whether or not the ``datasets`` audio backend works on this machine, resamples it to the
model's rate, skips unusable clips (counted by reason), leaves out tasks with too few clips, and
splits the tasks into ``train``/``validation``/``test`` deterministically from a seed.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
from datasets import Audio, Dataset, DatasetDict, Value, concatenate_datasets, load_dataset, load_from_disk

from .audio import SAMPLING_RATE, decode_audio, encode_audio
from .errors import CorpusBuildError, InvalidAudioError, MissingColumnError, TooFewTasksError
from .presets import SPLITS
from .quality import ClipLimits, check_clip
from .report import CorpusReport, summarize_split
from .schema import COLUMNS, corpus_features, storage_features

logger = logging.getLogger(__name__)

__all__ = ["LOADER_PRESETS", "ColumnMap", "load_speech_tasks", "split_tasks"]

_MAP_BATCH = 64


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a dataset hold the task, the transcript, the audio and (optionally) the language.

    ``language`` is the espeak code used when the dataset has no language column.
    """

    task: str = "speaker_id"
    text: str = "text"
    audio: str = "audio"
    language_column: str | None = None
    language: str = "en-us"
    style_column: str | None = None


#: Column maps of public corpora (Hub schemas of ``mythicinfinity/libritts_r`` and ``CSTR-Edinburgh/vctk``)
#: and of the corpus that ``build-corpus`` writes.
LOADER_PRESETS: dict[str, ColumnMap] = {
    "libritts_r": ColumnMap(task="speaker_id", text="text_normalized", audio="audio", language="en-us"),
    "vctk": ColumnMap(task="speaker_id", text="text", audio="audio", language="en-gb"),
    "metatts": ColumnMap(task="speaker_id", text="text", audio="audio", language_column="language",
                         style_column="style"),
}


def _open(dataset_or_id, split: str | None) -> tuple[Dataset, str]:
    """A single ``Dataset`` from a Dataset, a DatasetDict (one split or all joined), a folder or a Hub id."""
    name = "dataset"
    obj = dataset_or_id
    if isinstance(obj, (str, os.PathLike)):
        name = os.fspath(obj)
        if os.path.isdir(name):
            obj = load_from_disk(name)
        else:
            try:
                obj = load_dataset(name, split=split)
            except Exception as exc:  # offline, unknown id, gated: all surface differently
                raise CorpusBuildError(
                    f"cannot load dataset {name!r}: {exc}. Pass a local folder (datasets.save_to_disk) or a "
                    "Dataset object, or download it first on a machine with network access"
                ) from exc
    if isinstance(obj, DatasetDict):
        if split is not None:
            if split not in obj:
                raise CorpusBuildError(f"split {split!r} not in the dataset; splits present: {list(obj)}")
            obj = obj[split]
        else:
            obj = concatenate_datasets([obj[s] for s in obj])
    if not isinstance(obj, Dataset):
        raise CorpusBuildError(
            f"expected a datasets.Dataset, DatasetDict, folder or Hub id, got {type(obj).__name__}; "
            "streaming (Iterable) datasets are not supported: load without streaming=True"
        )
    return obj, name


def _resolve_columns(ds: Dataset, preset: str | None, task: str | None, text: str | None, audio: str | None,
                     language_column: str | None) -> ColumnMap:
    cols = set(ds.column_names)
    if preset is None:
        preset = "libritts_r" if "text_normalized" in cols else "metatts" if "phonemes" in cols else None
    if preset is not None and preset not in LOADER_PRESETS:
        raise KeyError(f"unknown loader preset {preset!r}; choose one of {sorted(LOADER_PRESETS)}")
    base = LOADER_PRESETS[preset] if preset else ColumnMap()
    cmap = ColumnMap(task=task or base.task, text=text or base.text, audio=audio or base.audio,
                     language_column=language_column or base.language_column, language=base.language,
                     style_column=base.style_column if (base.style_column in cols) else None)
    for role, column in (("task", cmap.task), ("text", cmap.text), ("audio", cmap.audio),
                         ("language", cmap.language_column)):
        if column is not None and column not in cols:
            raise MissingColumnError(column, role, ds.column_names)
    return cmap


def split_tasks(tasks: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Assign tasks to splits: a seeded shuffle of the sorted task list cut by ``fractions``.

    Every split gets at least one task. Raises ``TooFewTasksError`` with fewer than 3 tasks.
    """
    if len(tasks) < 3:
        raise TooFewTasksError(
            f"need at least 3 tasks with enough utterances to make train/validation/test, got {len(tasks)}; "
            "lower min_utterances or use a task column with more distinct values"
        )
    order = sorted(tasks)
    np.random.default_rng(seed).shuffle(order)
    n = len(order)
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    n_train = n - n_val - n_test
    if n_train < 1:
        n_val, n_test, n_train = 1, 1, n - 2
    assignment = {}
    for i, task in enumerate(order):
        assignment[task] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return assignment


def _convert(batch: dict, indices: list[int], cmap: ColumnMap, sampling_rate: int, limits: ClipLimits,
             source: str, has_id: bool, preparation=None) -> dict:
    if preparation is not None:
        from ..voice_validation import prepare_clip
    out = {name: [] for name in COLUMNS}
    out["skip_reason"] = []
    for j, idx in enumerate(indices):
        text = batch[cmap.text][j]
        task = batch[cmap.task][j]
        reason = None
        audio = np.zeros(0, dtype=np.float32)
        try:
            audio = decode_audio(batch[cmap.audio][j], target_sr=sampling_rate)
        except InvalidAudioError as exc:
            logger.debug("row %d: %s", idx, exc)
            reason = "undecodable"
        if reason is None and preparation is not None:
            audio = prepare_clip(audio, sampling_rate, preparation)
        if reason is None:
            reason = check_clip(audio, sampling_rate, text, limits)
        if reason is not None:
            audio = np.zeros(0, dtype=np.float32)
        language = batch[cmap.language_column][j] if cmap.language_column else cmap.language
        out["id"].append(str(batch["id"][j]) if has_id else str(idx))
        out["audio"].append(encode_audio(audio, sampling_rate, path=f"{idx}.flac") if reason is None
                            else {"bytes": None, "path": None})
        out["text"].append("" if text is None else str(text).strip())
        out["phonemes"].append("")
        out["speaker_id"].append(str(batch["speaker_id"][j]) if "speaker_id" in batch else str(task))
        out["base_speaker"].append(out["speaker_id"][-1])
        out["language"].append(str(language))
        out["style"].append(str(batch[cmap.style_column][j]) if cmap.style_column else "neutral")
        out["source"].append(source)
        out["perturbation"].append("")
        out["duration"].append(audio.size / sampling_rate)
        out["phone_timings"].append([])
        out["skip_reason"].append(reason or "")
        if cmap.task not in COLUMNS:
            out.setdefault(cmap.task, []).append(str(task))
    return out


def _add_phonemes(ds: Dataset) -> Dataset:
    from ..tokenization_metatts import phonemize

    table: dict[tuple[str, str], str] = {}
    for language in sorted(set(ds["language"])):
        texts = sorted({t for t, lang in zip(ds["text"], ds["language"]) if lang == language})
        for text, ph in zip(texts, phonemize(texts, language)):
            table[(language, text)] = ph
    return ds.map(lambda b: {"phonemes": [table[(lang, t)] for lang, t in zip(b["language"], b["text"])]},
                  batched=True)


def load_speech_tasks(
    dataset_or_id,
    task_column: str | None = None,
    text_column: str | None = None,
    audio_column: str | None = None,
    *,
    preset: str | None = None,
    language_column: str | None = None,
    split: str | None = None,
    sampling_rate: int = SAMPLING_RATE,
    min_utterances: int = 10,
    max_utterances_per_task: int | None = None,
    min_duration: float = 0.3,
    max_duration: float = 20.0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    phonemize: bool = True,
    num_proc: int | None = None,
    return_report: bool = False,
    clip_preparation=None,
):
    """Turn a speech dataset into a ``DatasetDict`` of disjoint task splits with the corpus schema.

    Args:
        dataset_or_id: a ``Dataset``, a ``DatasetDict`` (all splits are pooled unless ``split`` is
            given), a folder written by ``save_to_disk``, or a Hub id (needs the network or a cache).
        task_column / text_column / audio_column: column names; default from ``preset``.
        preset: ``"libritts_r"``, ``"vctk"`` or ``"metatts"``; guessed from the columns when omitted.
        language_column: a column with espeak language codes (else the preset's language).
        split: use only this split of a ``DatasetDict`` or Hub dataset.
        sampling_rate: the model's rate; audio is resampled to it.
        min_utterances: tasks with fewer usable clips are left out (and reported).
        max_utterances_per_task: keep at most this many clips per task (the first ones).
        min_duration / max_duration: clips outside are skipped (and counted), measured after ``clip_preparation``.
        fractions: train/validation/test shares of the tasks.
        seed: the seed of the task split (same seed, same split).
        phonemize: fill the ``phonemes`` column with espeak-ng IPA.
        num_proc: processes for decoding.
        return_report: also return a ``CorpusReport``.
        clip_preparation: a `hf_metatts.voice_validation.ClipValidation` whose silence cut and speech level are
            applied to every clip before its checks (``ClipValidation()``: as ``model.adapt`` prepares a user's
            clips, so a model trained on the corpus hears its training clips as it will hear a new voice's);
            None keeps the clips as recorded.

    Returns:
        ``DatasetDict`` (and the report when ``return_report``). Columns: those of the corpus; a task
        column outside them (say ``accent``) is kept under its own name.

    Raises:
        MissingColumnError: a named column does not exist (the message lists the columns present).
        TooFewTasksError: fewer than 3 tasks have ``min_utterances`` usable clips.
        TypeError: ``clip_preparation`` is not a ``ClipValidation``.
    """
    if clip_preparation is not None:
        from ..voice_validation import ClipValidation

        if not isinstance(clip_preparation, ClipValidation):
            raise TypeError(f"clip_preparation must be a hf_metatts.voice_validation.ClipValidation or None, not "
                            f"{type(clip_preparation).__name__}: ClipValidation() prepares clips as model.adapt does.")
    ds, name = _open(dataset_or_id, split)
    cmap = _resolve_columns(ds, preset, task_column, text_column, audio_column, language_column)
    if isinstance(ds.features[cmap.audio], Audio):
        ds = ds.cast_column(cmap.audio, Audio(decode=False))  # decode with soundfile, not the datasets backend
    features = storage_features(sampling_rate)
    features["skip_reason"] = Value("string")
    if cmap.task not in COLUMNS:
        features[cmap.task] = Value("string")
    limits = ClipLimits(min_duration=min_duration, max_duration=max_duration)
    source = os.path.basename(name.rstrip("/")) or name
    converted = ds.map(
        _convert, batched=True, batch_size=_MAP_BATCH, with_indices=True, remove_columns=ds.column_names,
        features=features, num_proc=num_proc,
        fn_kwargs={"cmap": cmap, "sampling_rate": sampling_rate, "limits": limits, "source": source,
                   "has_id": "id" in ds.column_names, "preparation": clip_preparation},
    )
    skipped = Counter(r for r in converted["skip_reason"] if r)
    for reason, n in skipped.items():
        logger.warning("skipped %d clips: %s", n, reason)
    kept = converted.filter(lambda r: [not x for x in r], input_columns=["skip_reason"], batched=True)
    kept = kept.remove_columns("skip_reason")
    task_key = cmap.task if cmap.task in kept.column_names else "speaker_id"
    tasks = kept[task_key]
    counts = Counter(tasks)
    dropped = {t: n for t, n in counts.items() if n < min_utterances}
    for task, n in dropped.items():
        logger.warning("task %s has %d usable clips < min_utterances=%d: left out", task, n, min_utterances)
    seen: Counter = Counter()
    keep_idx = []
    for i, task in enumerate(tasks):
        if task in dropped or (max_utterances_per_task and seen[task] >= max_utterances_per_task):
            continue
        seen[task] += 1
        keep_idx.append(i)
    kept = kept.select(keep_idx)
    assignment = split_tasks(sorted(seen), fractions, seed)
    final_features = corpus_features(sampling_rate)
    for col in kept.column_names:
        if col not in final_features:
            final_features[col] = Value("string")
    kept = kept.cast(final_features)
    if phonemize:
        kept = _add_phonemes(kept)
    labels = kept[task_key]
    result = DatasetDict({
        s: kept.select([i for i, t in enumerate(labels) if assignment[t] == s]) for s in SPLITS
    })
    if not return_report:
        return result
    report = CorpusReport(
        splits={s: summarize_split(d[task_key], d["duration"], d["language"], d["source"]) for s, d in result.items()},
        skipped=dict(skipped), dropped_tasks=dropped, sources={"dataset": name}, task_column=task_key,
        extra={"seed": seed, "fractions": list(fractions), "min_utterances": min_utterances},
    )
    return result, report
