"""The build/load report: tasks, utterances and hours per split, language and source, plus every skip."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["CorpusReport", "summarize_split"]


def summarize_split(task_ids: list[str], durations: list[float], languages: list[str], sources: list[str],
                    ) -> dict:
    """Counts of one split: tasks, utterances, hours, and the same per language and per source."""
    def block(keys: list[str]) -> dict:
        tasks: dict[str, set] = defaultdict(set)
        utts: Counter = Counter()
        secs: Counter = Counter()
        for key, task, dur in zip(keys, task_ids, durations):
            tasks[key].add(task)
            utts[key] += 1
            secs[key] += dur
        return {k: {"tasks": len(tasks[k]), "utterances": utts[k], "hours": round(secs[k] / 3600, 4)}
                for k in sorted(utts)}

    return {
        "tasks": len(set(task_ids)),
        "utterances": len(task_ids),
        "hours": round(sum(durations) / 3600, 4),
        "by_language": block(languages),
        "by_source": block([s.split(":")[0] for s in sources]),
    }


@dataclass
class CorpusReport:
    """What a build (or a load) produced and what it left out.

    Attributes:
        splits: per split, the ``summarize_split`` counts.
        skipped: clips skipped, by reason (see ``quality.SKIP_REASONS``).
        dropped_tasks: tasks left out for having fewer than ``min_utterances`` clips -> their clip count.
        sources: per source, what was found (or why it is missing).
        skipped_voices: voices of the preset that could not be used, and why.
        task_column: the column that defines tasks.
        seconds: wall-clock build time.
        extra: anything else worth keeping (preset name, fingerprint, sentence counts).
    """

    splits: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    dropped_tasks: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    skipped_voices: dict = field(default_factory=dict)
    task_column: str = "speaker_id"
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> CorpusReport:
        return cls(**json.loads(Path(path).read_text()))

    def table(self) -> str:
        """A plain-text table: one line per split, then per split x language and split x source."""
        lines = [f"{'split':<12}{'group':<22}{'tasks':>7}{'utts':>8}{'hours':>9}"]
        for split, s in self.splits.items():
            lines.append(f"{split:<12}{'(all)':<22}{s['tasks']:>7}{s['utterances']:>8}{s['hours']:>9.3f}")
            for kind in ("by_language", "by_source"):
                for key, c in s.get(kind, {}).items():
                    label = ("lang " if kind == "by_language" else "src ") + key
                    lines.append(f"{'':<12}{label:<22}{c['tasks']:>7}{c['utterances']:>8}{c['hours']:>9.3f}")
        for source, message in sorted(self.sources.items()):
            lines.append(f"source {source}: {message}")
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()) if v) or "none"
        lines.append(f"skipped clips: {skipped}")
        lines.append(f"dropped tasks (< min utterances): {len(self.dropped_tasks)}")
        if self.extra.get("failed_tasks"):
            lines.append(f"failed tasks (synthesiser errors; rerun to retry): {len(self.extra['failed_tasks'])}")
        if self.skipped_voices:
            lines.append(f"voices not used: {len(self.skipped_voices)} ({', '.join(sorted(self.skipped_voices))})")
        lines.append(f"task column: {self.task_column}; build time: {self.seconds:.1f} s")
        return "\n".join(lines)
