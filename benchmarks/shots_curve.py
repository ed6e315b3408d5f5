"""How adaptation scales with the number of support clips: results of ``benchmarks/default_checkpoint.py`` measured
at several ``--shots`` (one file per shot count, any methods and steps) joined into one table and plot.

    python benchmarks/shots_curve.py \\
        --results benchmarks/results/shots_product_zero_shot_{1,2,10,20}.json \\
                  benchmarks/results/default_checkpoint_product.json \\
                  benchmarks/results/shots_product_finetune_{1,10,20}.json \\
        --compare zero_shot@5 finetune@100 --out benchmarks/results/shots_curve_product.json

Every file must come from the same corpus, split, held-out sentences and seed, so that each shot count is read on
the same held-out sentences of the same speakers (``hf_metatts.evaluation.benchmark.load_tasks`` draws the held-out
rows independently of the shots, and a k-shot support is the first k rows of one fixed pool, so the supports nest).
Where two files measured the same method, shots and steps, the first given is kept. ``--compare A@S B@T`` adds, for
every shot count both were measured at, the paired per-speaker difference of their similarity with its 95%
bootstrap interval over the speakers (``hf_metatts.evaluation.paired``).

Writes the JSON, a markdown table (``.md``) and a plot (``.png``: similarity and WER against the shot count, one line
per method and step count).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hf_metatts.evaluation.cli import script_command, write_json_atomic  # noqa: E402
from hf_metatts.evaluation.paired import CONFIDENCE_LEVEL, PairedComparisonError, paired_difference  # noqa: E402

logger = logging.getLogger("shots_curve")
#: the means each row reports (those a cell measured; ``wer_ratio_pooled``: the pooled WER over the recordings')
MEASURES = ("similarity", "identification", "eer", "mcd", "wer", "wer_ratio_pooled")
#: the settings that must agree between files, so that every shot count reads the same held-out sentences
SAME_SETTINGS = ("corpus", "split", "task_column", "languages", "heldout", "seed", "max_tasks")


class ShotsCurveError(ValueError):
    """The results cannot be joined into one curve; the message says which file and why."""


def load_result(path: str) -> dict:
    """A ``default_checkpoint.py`` result -> its JSON. Raises ShotsCurveError when it cannot be read or is none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ShotsCurveError(f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(data.get("methods"), dict) or not isinstance(data.get("settings"), dict):
        raise ShotsCurveError(f"{path} is not a result of benchmarks/default_checkpoint.py (no methods/settings)")
    return data


def joined_cells(results: dict[str, dict]) -> dict[tuple[str, int, int], dict]:
    """``{path: result}`` -> ``{(method, shots, steps): {"mean", "per_task", "from"}}`` over every measured cell,
    the first file kept where two measured the same cell.

    Raises:
        ShotsCurveError: two files differ in one of :data:`SAME_SETTINGS` (named with both values).
    """
    cells: dict[tuple[str, int, int], dict] = {}
    reference_path, reference = None, None
    for path, result in results.items():
        settings = {key: result["settings"].get(key) for key in SAME_SETTINGS}
        if reference is None:
            reference_path, reference = path, settings
        for key in SAME_SETTINGS:
            if settings[key] != reference[key]:
                raise ShotsCurveError(f"{path} has {key}={settings[key]!r} where {reference_path} has "
                                      f"{reference[key]!r}: measure every shot count on the same held-out sentences")
        for method, entry in result["methods"].items():
            if entry.get("status") != "ok":
                continue
            for shots, by_step in (entry.get("results") or {}).items():
                for steps, cell in by_step.items():
                    key = (method, int(shots), int(steps))
                    if key not in cells:
                        cells[key] = {"mean": cell.get("mean") or {}, "per_task": cell.get("per_task") or {},
                                      "from": path}
    return cells


def parse_selector(text: str) -> tuple[str, int]:
    """``METHOD@STEPS`` -> (method, steps); SystemExit with the format on a bad one."""
    method, _, steps = text.partition("@")
    try:
        if not method:
            raise ValueError
        return method, int(steps)
    except ValueError:
        raise SystemExit(f"error: --compare {text!r}: write METHOD@STEPS, e.g. zero_shot@5") from None


def curve(cells: dict, compare: tuple[tuple[str, int], tuple[str, int]] | None = None, seed: int = 0) -> dict:
    """The rows (one per method, shots and steps, sorted; the means of :data:`MEASURES` and the speakers measured)
    and, with ``compare`` ((A, steps), (B, steps)), per shot count where both were measured the paired similarity
    difference A - B."""
    rows = []
    for (method, shots, steps), cell in sorted(cells.items()):
        row = {"method": method, "shots": shots, "steps": steps, "tasks": len(cell["per_task"]), "from": cell["from"]}
        row.update({key: cell["mean"].get(key) for key in MEASURES if cell["mean"].get(key) is not None})
        rows.append(row)
    comparisons = []
    if compare:
        (a_method, a_steps), (b_method, b_steps) = compare
        for shots in sorted({shots for _, shots, _ in cells}):
            a, b = cells.get((a_method, shots, a_steps)), cells.get((b_method, shots, b_steps))
            if a is None or b is None:
                continue
            values = [{task: row["similarity"] for task, row in cell["per_task"].items()
                       if row.get("similarity") is not None} for cell in (a, b)]
            try:
                paired = paired_difference(values[0], values[1], seed=seed)
            except PairedComparisonError as error:
                logger.warning("k=%d: %s", shots, error)
                continue
            comparisons.append({"shots": shots, "a": f"{a_method}@{a_steps}", "b": f"{b_method}@{b_steps}",
                                "a_mean": a["mean"].get("similarity"), "b_mean": b["mean"].get("similarity"),
                                "paired": paired.to_dict()})
    return {"rows": rows, "comparisons": comparisons}


def render(result: dict) -> str:
    """The markdown table of the rows, then the comparisons."""
    def number(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    lines = ["| method | shots | steps | similarity | identification | EER | MCD (dB) | WER | WER / recordings' |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['method']} | {row['shots']} | {row['steps']} | {number(row.get('similarity'))} | "
                     f"{number(row.get('identification'))} | {number(row.get('eer'))} | {number(row.get('mcd'), 2)} | "
                     f"{number(row.get('wer'))} | {number(row.get('wer_ratio_pooled'), 2)} |")
    if result["comparisons"]:
        lines += ["", "| shots | A | B | A's similarity | B's | A - B | 95% interval | speakers above / below |",
                  "|---|---|---|---|---|---|---|---|"]
        for item in result["comparisons"]:
            paired = item["paired"]
            lines.append(f"| {item['shots']} | {item['a']} | {item['b']} | {number(item['a_mean'], 4)} | "
                         f"{number(item['b_mean'], 4)} | {paired['mean']:+.4f} | [{paired['low']:+.4f}, "
                         f"{paired['high']:+.4f}] | {paired['above']} / {paired['below']} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    """Similarity (left) and WER (right) against the shot count (log scale), one line per method and steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[dict]] = {}
    for row in result["rows"]:
        lines.setdefault(f"{row['method']}@{row['steps']}", []).append(row)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, key in zip(axes, ("similarity", "wer")):
        for label, rows in lines.items():
            points = [(row["shots"], row[key]) for row in rows if key in row]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        axis.set_xscale("log")
        shots = sorted({row["shots"] for row in result["rows"]})
        axis.set_xticks(shots, [str(k) for k in shots])
        axis.set_xlabel("support clips (shots)")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("adaptation against the number of support clips (held-out speakers)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", nargs="+", required=True, metavar="JSON",
                        help="results of benchmarks/default_checkpoint.py, one or more shot counts each")
    parser.add_argument("--compare", nargs=2, default=None, metavar="METHOD@STEPS",
                        help="two cells to compare per shot count, e.g. zero_shot@5 finetune@100")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--out", required=True, help="JSON path; the .md and .png are written beside it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    compare = tuple(parse_selector(text) for text in args.compare) if args.compare else None
    try:
        cells = joined_cells({path: load_result(path) for path in args.results})
    except ShotsCurveError as error:
        parser.error(str(error))
    result = curve(cells, compare, args.seed)
    result.update({"results": args.results, "confidence": CONFIDENCE_LEVEL, "seed": args.seed,
                   "command": script_command(__file__, argv)})
    table = render(result)
    logger.info("\n%s", table)
    write_json_atomic(args.out, result)
    base = os.path.splitext(args.out)[0]
    with open(base + ".md", "w", encoding="utf-8") as stream:
        stream.write(table)
    plot(result, base + ".png")
    logger.info("wrote %s and its .md and .png", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
