"""Build the offline multi-speaker, multi-language corpus as a ``datasets.DatasetDict``.

``build_corpus`` plans the jobs (``plan.py``), phonemizes every sentence once per language, renders
each job into its own shard with a pool of worker processes (``render.py``), then joins the shards
into ``train``/``validation``/``test``, leaves out tasks with too few clips and writes the report.
Shards are renamed into place only when complete and a rerun skips the finished ones, so an
interrupted build resumes without duplicating rows.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import datasets
from datasets import DatasetDict, concatenate_datasets, load_from_disk

from .errors import CorpusBuildError, MetaTTSError, TooFewTasksError
from .plan import Job, make_plan
from .presets import SPLITS, CorpusPreset, get_preset
from .quality import ClipLimits
from .render import SHARD_SUMMARY, render_job
from .report import CorpusReport, summarize_split

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "REPORT", "WORK_DIR", "build_corpus", "phonemize_jobs"]

MANIFEST = "build_manifest.json"
REPORT = "corpus_report.json"
WORK_DIR = "_work"


def phonemize_jobs(jobs: list[Job]) -> None:
    """Fill ``job.phonemes``: each distinct sentence is phonemized once per espeak language code."""
    from ..tokenization_metatts import phonemize

    needed: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        needed[job.voice.language].update(s for s in job.sentences if s and s.strip())
    table: dict[tuple[str, str], str] = {}
    for language, sentences in sorted(needed.items()):
        ordered = sorted(sentences)
        for sentence, phonemes in zip(ordered, phonemize(ordered, language)):
            table[(language, sentence)] = phonemes
        logger.info("phonemized %d %s sentences", len(ordered), language)
    for job in jobs:
        job.phonemes = [table.get((job.voice.language, s), "") for s in job.sentences]


def _check_out_dir(out: Path, fingerprint: str, overwrite: bool) -> CorpusReport | None:
    """Return the finished report when ``out`` already holds this build; raise when it holds another."""
    manifest = out / MANIFEST
    if overwrite and out.exists():
        shutil.rmtree(out)
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("fingerprint") != fingerprint:
            raise CorpusBuildError(
                f"{out} holds a build with other settings (fingerprint {data.get('fingerprint')}, this one "
                f"{fingerprint}); pass --overwrite (overwrite=True) or choose another --out"
            )
        if data.get("status") == "complete" and (out / REPORT).exists():
            logger.info("%s already holds this complete build; nothing to do", out)
            return CorpusReport.load(out / REPORT)
    elif out.exists() and any(out.iterdir()):
        raise CorpusBuildError(f"{out} is not empty and holds no corpus build; choose an empty or new --out")
    return None


def _run_jobs(jobs: list[Job], limits: ClipLimits, shard_root: Path, workers: int, synthesizers) -> dict[str, str]:
    """Render the shards not built yet; returns ``{job_id: error}`` for jobs whose synthesiser failed."""
    todo = [j for j in jobs if not (shard_root / j.job_id / SHARD_SUMMARY).exists()]
    if len(todo) < len(jobs):
        logger.info("resuming: %d of %d shards already built", len(jobs) - len(todo), len(jobs))
    todo.sort(key=lambda j: -j.cost)  # longest first balances the pool
    start = time.monotonic()
    failed: dict[str, str] = {}
    if workers <= 0 or len(todo) <= 1:
        for n, job in enumerate(todo, 1):
            try:
                render_job(job, limits, str(shard_root), synthesizers)
            except MetaTTSError as exc:  # a voice that cannot run: report it, build the rest
                logger.error("task %s failed: %s", job.job_id, exc)
                failed[job.job_id] = str(exc)
            logger.debug("shard %d/%d done: %s", n, len(todo), job.job_id)
        return failed
    # fork shares the imported modules (a spawned worker would re-import torch and transformers);
    # the espeak engine is created inside each worker, never shared.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(render_job, job, limits, str(shard_root), synthesizers): job for job in todo}
        for n, future in enumerate(as_completed(futures), 1):
            try:
                summary = future.result()
            except MetaTTSError as exc:
                logger.error("task %s failed: %s", futures[future].job_id, exc)
                failed[futures[future].job_id] = str(exc)
                continue
            if n % 10 == 0 or n == len(todo):
                logger.info("shards %d/%d (%.0f s): last %s, %d rows", n, len(todo), time.monotonic() - start,
                            summary["job_id"], summary["rows"])
    return failed


def _assemble(jobs: list[Job], shard_root: Path, task_column: str, min_utterances: int,
              required_splits: tuple[str, ...] = SPLITS):
    """Join shards per split and drop tasks with too few clips; returns (DatasetDict, skipped, dropped).

    A split in ``required_splits`` with no voices is an error; any other split without voices is left out."""
    skipped: Counter = Counter()
    parts: dict[str, list] = {s: [] for s in SPLITS}
    planned: dict[str, set] = {s: set() for s in SPLITS}
    for job in jobs:
        planned[job.split].add(job.task_value(task_column))
        shard = shard_root / job.job_id
        summary = json.loads((shard / SHARD_SUMMARY).read_text())
        skipped.update(summary["skipped"])
        if (shard / "data").exists():
            parts[job.split].append(load_from_disk(str(shard / "data")))
    dropped: dict[str, int] = {}
    splits = {}
    for split in SPLITS:
        present = {task for part in parts[split] for task in part[task_column]}
        for task in sorted(planned[split] - present):
            logger.warning("task %s (%s) has no usable clips: left out", task, split)
            dropped[f"{split}:{task}"] = 0
        if not parts[split]:
            if split not in required_splits:
                continue  # a split the preset does not ask for
            raise TooFewTasksError(
                f"split {split!r} is empty: no voices were assigned to it; install more voices "
                "(scripts/install_synthesizers.sh) or use a preset with more voices"
            )
        ds = concatenate_datasets(parts[split])
        counts = Counter(ds[task_column])
        small = {task: n for task, n in counts.items() if n < min_utterances}
        if small:
            for task, n in small.items():
                logger.warning("task %s (%s) has %d clips < %d: left out", task, split, n, min_utterances)
            dropped.update({f"{split}:{t}": n for t, n in small.items()})
            keep = [i for i, t in enumerate(ds[task_column]) if t not in small]
            ds = ds.select(keep)
        if len(ds) == 0:
            raise TooFewTasksError(f"every task of split {split!r} has fewer than {min_utterances} clips")
        splits[split] = ds
    return DatasetDict(splits), skipped, dropped


def build_corpus(
    out_dir: str | Path,
    preset: str | CorpusPreset = "default",
    task_column: str = "speaker_id",
    holdout_language: str | None = None,
    validation_language: str | None = None,
    sources: tuple[str, ...] | None = None,
    num_workers: int | None = None,
    overwrite: bool = False,
    keep_work: bool = False,
    fortune_dir: str | Path | None = None,
    synthesizers: dict | None = None,
) -> CorpusReport:
    """Build the corpus into ``out_dir`` (readable with ``datasets.load_from_disk``) and return its report.

    Args:
        out_dir: output folder; a rerun with the same settings resumes (or returns at once when done).
        preset: ``"tiny"``, ``"default"`` or a ``CorpusPreset``.
        task_column: what a task is: ``speaker_id`` (default), ``language`` or ``style``.
        holdout_language: with ``task_column="language"``, the language whose rows are ``test`` only.
        validation_language: with ``task_column="language"``, the language used for ``validation``.
        sources: restrict to some of ``espeak``, ``flite``, ``festival`` (default: all installed).
        num_workers: synthesis processes (default: the preset's, 2); 0 renders in this process.
        overwrite: delete an existing build in ``out_dir`` first.
        keep_work: keep the per-task shards after a successful build.
        fortune_dir: where the Debian fortune files are (default ``/usr/share/games/fortunes``).
        synthesizers: ``{source: synthesize_batch}`` overrides (must be picklable when workers > 0).

    Raises:
        CorpusBuildError: ``out_dir`` holds something else, or no voice is usable.
        TooFewTasksError: a split ends up empty.
    """
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per shard would flood the log
    try:
        return _build(out_dir, preset, task_column, holdout_language, validation_language, sources, num_workers,
                      overwrite, keep_work, fortune_dir, synthesizers)
    finally:
        if bars:
            datasets.enable_progress_bars()


def _build(out_dir, preset, task_column, holdout_language, validation_language, sources, num_workers, overwrite,
           keep_work, fortune_dir, synthesizers) -> CorpusReport:
    started = time.monotonic()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    workers = preset.num_workers if num_workers is None else num_workers
    out = Path(out_dir)
    fingerprint = preset.fingerprint(task_column=task_column, holdout=holdout_language,
                                     validation=validation_language, sources=sorted(sources or []))
    done = _check_out_dir(out, fingerprint, overwrite)
    if done is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "status": "building",
                                            "preset": preset.name, "task_column": task_column}))
    plan = make_plan(preset, task_column, holdout_language, validation_language, sources, fortune_dir)
    logger.info("plan: %d tasks shards (%s)", len(plan.jobs), dict(Counter(j.split for j in plan.jobs)))
    phonemize_jobs(plan.jobs)
    shard_root = out / WORK_DIR / "shards"
    shard_root.mkdir(parents=True, exist_ok=True)
    limits = ClipLimits(preset.min_duration, preset.max_duration)
    failed = _run_jobs(plan.jobs, limits, shard_root, workers, synthesizers)
    built = [job for job in plan.jobs if job.job_id not in failed]
    dataset, skipped, dropped = _assemble(built, shard_root, task_column, preset.min_utterances,
                                        preset.splits)
    for split in SPLITS:
        if (out / split).exists():
            shutil.rmtree(out / split)
    dataset.save_to_disk(str(out))
    report = CorpusReport(
        splits={s: summarize_split(ds[task_column], ds["duration"], ds["language"], ds["source"])
                for s, ds in dataset.items()},
        skipped=dict(skipped), dropped_tasks=dropped, sources=plan.sources, skipped_voices=plan.skipped_voices,
        task_column=task_column, seconds=round(time.monotonic() - started, 1),
        extra={"preset": preset.name, "fingerprint": fingerprint, "workers": workers,
               "sentences_available": plan.sentence_counts,
               "distinct_sentences": {s: len(set(ds["text"])) for s, ds in dataset.items()},
               "failed_tasks": failed},
    )
    report.save(out / REPORT)
    status = "partial" if failed else "complete"  # a rerun retries the failed tasks only
    if not keep_work and not failed:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    (out / MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "status": status,
                                            "preset": preset.name, "task_column": task_column}))
    logger.info("corpus written to %s in %.1f s", out, report.seconds)
    return report
