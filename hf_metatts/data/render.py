"""Render one job into a shard on disk: synthesise, resample to 16 kHz, perturb, check, encode, save.

Runs inside a worker process. The shard is written to a temporary folder and renamed into place
only when complete, so an interrupted build never leaves a half shard that a rerun would trust.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .audio import SAMPLING_RATE, encode_audio, resample
from .perturb import perturb
from .plan import Job
from .quality import ClipLimits, check_clip
from .schema import rows_to_dataset
from .sources import espeak, festival, flite

logger = logging.getLogger(__name__)

__all__ = ["SHARD_SUMMARY", "SYNTHESIZERS", "render_job", "render_rows"]

SHARD_SUMMARY = "shard_summary.json"
SYNTHESIZERS = {
    "espeak": espeak.synthesize_batch,
    "flite": flite.synthesize_batch,
    "festival": festival.synthesize_batch,
}


def _fit_timings(timings: list[dict], duration: float) -> list[dict]:
    out = []
    for t in timings:
        start = min(float(t["start"]), duration)
        end = min(float(t["end"]), duration)
        if end > start or not out:
            out.append({"phone": str(t["phone"]), "start": start, "end": max(end, start)})
    return out


def render_rows(job: Job, limits: ClipLimits, synthesizers: dict | None = None) -> tuple[list[dict], Counter]:
    """Synthesise a job's sentences; returns the kept rows and a count of skipped clips by reason."""
    synth = (synthesizers or SYNTHESIZERS)[job.voice.source]
    skipped: Counter = Counter()
    pairs = []
    for i, (text, phonemes) in enumerate(zip(job.sentences, job.phonemes)):
        if not text or not text.strip():
            skipped["empty_text"] += 1
        elif not phonemes or not phonemes.strip():
            skipped["no_phonemes"] += 1
        else:
            pairs.append((i, text, phonemes))
    results = synth(job.voice, [text for _, text, _ in pairs], job.style) if pairs else []
    rows = []
    for (i, text, phonemes), result in zip(pairs, results):
        if result is None:
            skipped["synthesis_failed"] += 1
            continue
        audio = resample(np.asarray(result.audio, dtype=np.float32), result.sampling_rate, SAMPLING_RATE)
        if job.perturbation is not None:
            audio = perturb(audio, SAMPLING_RATE, job.perturbation)
        reason = check_clip(audio, SAMPLING_RATE, text, limits)
        if reason:
            skipped[reason] += 1
            continue
        duration = audio.size / SAMPLING_RATE
        utt_id = f"{job.speaker_id}/{job.style.name}/{i:04d}"
        rows.append({
            "id": utt_id,
            "audio": encode_audio(audio, SAMPLING_RATE, path=f"{job.job_id}/{i:04d}.flac"),
            "text": text,
            "phonemes": phonemes,
            "speaker_id": job.speaker_id,
            "base_speaker": job.base_speaker,
            "language": job.voice.language,
            "style": job.style.name,
            "source": f"{job.voice.source}:{job.voice.voice}",
            "perturbation": job.perturbation.name if job.perturbation else "",
            "duration": float(duration),
            "phone_timings": _fit_timings(result.phone_timings, duration),
        })
    return rows, skipped


def render_job(job: Job, limits: ClipLimits, shard_root: str, synthesizers: dict | None = None) -> dict:
    """Render a job into ``shard_root/<job_id>`` (atomically) and return its summary."""
    final = Path(shard_root) / job.job_id
    tmp = Path(shard_root) / f".{job.job_id}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    rows, skipped = render_rows(job, limits, synthesizers)
    summary = {
        "job_id": job.job_id, "split": job.split, "speaker_id": job.speaker_id, "rows": len(rows),
        "seconds": float(sum(r["duration"] for r in rows)), "skipped": dict(skipped),
    }
    tmp.mkdir(parents=True)
    if rows:
        rows_to_dataset(rows).save_to_disk(str(tmp / "data"))
    (tmp / SHARD_SUMMARY).write_text(json.dumps(summary))
    os.replace(tmp, final)
    return summary
