"""Paired comparison of measured results on the same held-out speakers: for each candidate, the mean per-speaker
difference to a baseline and its 95% bootstrap interval over the speakers (``hf_metatts.evaluation.paired``).

A validation mean that is 0.0002 higher says nothing by itself; this says whether the speakers agree on it::

    python benchmarks/paired_comparison.py \\
        --baseline benchmarks/results/adaptation_rules_validation_plain_soup.json \\
        --candidates benchmarks/results/adaptation_rules_validation_plain_soup_gv.json \\
                     benchmarks/results/adaptation_rules_validation_plain_soup_tasks8.json \\
        --out benchmarks/results/paired_validation_plain_soup.json

Each item is a result of ``benchmarks/adaptation_rules.py`` (``PATH``, or ``PATH#RULE`` when it holds several
rules), of a study script such as ``benchmarks/vocoder_voice_adaptation.py`` (``PATH#VARIANT``), or of
``benchmarks/default_checkpoint.py`` (``PATH#METHOD@STEP``, e.g. ``...#finetune@100``). Every
candidate must come from the same split and shots as the baseline; speakers only one side measured are left out
and counted. ``--metric`` picks the per-speaker number (default ``similarity``; ``mcd``, ``wer`` where measured);
``--families espeak`` (or ``flite festival``) keeps the speakers of those voice families only (the source before
``:`` in a speaker's name).

Training runs of one recipe differ (another seed, another machine), so one run of a baseline is one draw. With
several items after ``--baseline`` the baseline is each speaker's mean over those draws (the speakers every draw
measured), and the table also gives each draw's own mean. A candidate's draws are one item, joined by commas
(``A.json#metasgd@5,B.json#metasgd@5``)::

    python benchmarks/paired_comparison.py \
        --baseline benchmarks/results/default_checkpoint.json#finetune@100 \
                   benchmarks/results/default_checkpoint_finetune_redraw.json#finetune@100 \
        --candidates benchmarks/results/default_checkpoint.json#zero_shot@5 \
            benchmarks/results/default_checkpoint.json#metasgd@5,benchmarks/results/default_checkpoint_plain_start_800_rerun.json#metasgd@5

Writes the JSON, a markdown table and a plot beside it (``.md``, ``.png``: each side's mean and draws, each
candidate's paired difference and interval).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.default_checkpoint import result_cell  # noqa: E402
from hf_metatts.evaluation.cli import script_command, write_json_atomic  # noqa: E402
from hf_metatts.evaluation.paired import CONFIDENCE_LEVEL, PairedComparisonError, paired_difference  # noqa: E402

logger = logging.getLogger("paired_comparison")


class ResultSelectionError(ValueError):
    """An item does not name one set of per-speaker numbers of a result file."""


def study_per_task(variant: dict) -> dict:
    """A variant of a study script's result (``benchmarks/vocoder_voice_adaptation.py`` and the other scripts on
    ``hf_metatts.evaluation.adaptation_study``), which keeps one ``<metric>_per_task`` table per measure, as
    ``{speaker: {metric: value}}``."""
    per_task: dict = {}
    for key, table in variant.items():
        if key.endswith("_per_task") and isinstance(table, dict):
            for task, value in table.items():
                per_task.setdefault(task, {})[key[: -len("_per_task")]] = value
    return per_task


def load_selection(item: str, metric: str, families: list[str] | None = None) -> dict:
    """``PATH[#SELECTOR]`` -> ``{"item", "split", "shots", "values": {speaker: value}}``, the speakers of
    ``families`` only when given.

    Raises:
        ResultSelectionError: the file cannot be read, is neither script's result, the selector is missing,
            unknown or ambiguous, or no speaker (of those families) has ``metric``.
    """
    path, _, selector = item.partition("#")
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ResultSelectionError(f"{path}: cannot read it as JSON ({error})") from None
    if isinstance(data.get("results"), dict) and "checkpoint" in data:  # benchmarks/adaptation_rules.py
        rules = data["results"]
        if not selector and len(rules) != 1:
            raise ResultSelectionError(f"{path} holds the rules {sorted(rules)}: name one as {path}#RULE")
        rule = selector or next(iter(rules))
        if rule not in rules:
            raise ResultSelectionError(f"{path} has no rule {rule!r}; it has {sorted(rules)}")
        per_task = rules[rule].get("per_task") or study_per_task(rules[rule])
        split, shots = data.get("split"), data.get("shots")
    elif isinstance(data.get("methods"), dict):  # benchmarks/default_checkpoint.py
        method, _, step = selector.partition("@")
        if not method or not step:
            raise ResultSelectionError(f"{path} is a bar result: name a method and step as {path}#METHOD@STEP "
                                       f"(methods: {sorted(data['methods'])})")
        settings = data.get("settings") or {}
        shots = (settings.get("shots") or [None])[0]
        cell, reason = result_cell(data, method, shots, step)
        if cell is None:
            raise ResultSelectionError(f"{path} has no {method} at {step} steps with {shots} shots ({reason})")
        per_task, split = cell.get("per_task") or {}, settings.get("split")
    else:
        raise ResultSelectionError(f"{path} is not a result of adaptation_rules.py or default_checkpoint.py")
    values = {task: row[metric] for task, row in per_task.items() if row.get(metric) is not None
              and (not families or task.split(":", 1)[0] in families)}
    if not values:
        among = f" among the families {families}" if families else ""
        raise ResultSelectionError(f"{item}: no speaker{among} has {metric!r}")
    return {"item": item, "split": split, "shots": shots, "values": values}


def _require_measured_alike(selection: dict, reference: dict, reference_name: str, advice: str) -> None:
    """Raise :class:`ResultSelectionError` unless ``selection`` was measured on ``reference``'s split and shots."""
    for key in ("split", "shots"):
        if selection[key] != reference[key]:
            raise ResultSelectionError(f"{selection['item']} was measured with {key}={selection[key]!r}, "
                                       f"{reference_name} with {key}={reference[key]!r}: {advice}")


def _mean_over(values: dict, tasks: list[str]) -> float:
    """The mean of ``values`` over ``tasks``, to 4 decimals."""
    return round(sum(values[task] for task in tasks) / len(tasks), 4)


def mean_over_draws(draws: list[dict]) -> dict:
    """Several selections of one method (its training runs) -> one selection whose value for each speaker is the
    mean over the draws, kept for the speakers every draw measured; ``draw_means`` gives each draw's own mean over
    those speakers and ``draw_sd`` their standard deviation (how far one training run of the recipe lands from
    another: the paired interval over speakers does not hold that). One draw is returned as it is.

    Raises:
        ResultSelectionError: the draws were measured on another split or number of shots, name the same item
            twice, or share fewer than 2 speakers.
    """
    if len(draws) == 1:
        return draws[0]
    items = [draw["item"] for draw in draws]
    if len(set(items)) != len(items):
        raise ResultSelectionError(f"{items} names a draw twice: give each training run once")
    for draw in draws[1:]:
        _require_measured_alike(draw, draws[0], draws[0]["item"], "draws of one method must be measured alike")
    shared = sorted(set.intersection(*(set(draw["values"]) for draw in draws)))
    if len(shared) < 2:
        raise ResultSelectionError(f"the draws {items} share {len(shared)} speaker(s): they must be measured on "
                                   "the same speakers")
    values = {task: sum(draw["values"][task] for draw in draws) / len(draws) for task in shared}
    draw_means = {draw["item"]: _mean_over(draw["values"], shared) for draw in draws}
    return {"item": ",".join(items), "split": draws[0]["split"], "shots": draws[0]["shots"],
            "values": values, "draws": items, "draw_means": draw_means,
            "draw_sd": round(statistics.stdev(draw_means.values()), 4)}


def compare(baseline: dict, candidate: dict, seed: int = 0) -> dict:
    """One row: the candidate's and the baseline's means over the shared speakers and the paired difference.

    Raises:
        ResultSelectionError: the two were measured on another split or number of shots.
        PairedComparisonError: fewer than 2 shared speakers.
    """
    _require_measured_alike(candidate, baseline, "the baseline", "compare like with like")
    paired = paired_difference(candidate["values"], baseline["values"], seed=seed)
    shared = sorted(set(candidate["values"]) & set(baseline["values"]))
    return {"candidate": candidate["item"], "candidate_mean": _mean_over(candidate["values"], shared),
            "candidate_draw_means": candidate.get("draw_means"), "candidate_draw_sd": candidate.get("draw_sd"),
            "baseline_mean": _mean_over(baseline["values"], shared), "paired": paired.to_dict(),
            "left_out": len(set(candidate["values"]) ^ set(baseline["values"]))}


def _draws_text(draw_means: dict) -> str:
    """Each draw's mean, for the table: ```a.json#m@5` 0.6731; `b.json#m@5` 0.6585``."""
    return "; ".join(f"`{item}` {mean:.4f}" for item, mean in draw_means.items())


def render(result: dict) -> str:
    level = round(100 * CONFIDENCE_LEVEL)
    among = f" of the families {', '.join(result['families'])}" if result.get("families") else ""
    baseline = f"`{result['baseline']}`"
    if isinstance(result["baseline"], list):
        draws = _draws_text(result["baseline_draw_means"])
        baseline = (f"the per-speaker mean of {len(result['baseline'])} draws ({draws}: each draw's mean over the "
                    f"speakers all of them measured; standard deviation over draws {result['baseline_draw_sd']:.4f})")
    lines = [f"Baseline {baseline}, metric `{result['metric']}`, paired over speakers{among}", "",
             f"| candidate | its mean | baseline's | difference | {level}% interval | speakers above / below |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        p = row["paired"]
        candidate = f"`{row['candidate']}`"
        if row.get("candidate_draw_means"):
            draws = _draws_text(row["candidate_draw_means"])
            candidate = (f"the per-speaker mean of {len(row['candidate_draw_means'])} draws ({draws}; standard "
                         f"deviation {row['candidate_draw_sd']:.4f})")
        lines.append(f"| {candidate} | {row['candidate_mean']:.4f} | {row['baseline_mean']:.4f} | "
                     f"{p['mean']:+.4f} | [{p['low']:+.4f}, {p['high']:+.4f}] | {p['above']} / {p['below']} |")
    return "\n".join(lines) + "\n"


def _short(item: str) -> str:
    """``benchmarks/results/x.json#m@5`` -> ``x#m@5`` for plot labels."""
    path, _, selector = item.partition("#")
    return os.path.splitext(os.path.basename(path))[0] + (f"#{selector}" if selector else "")


def plot(result: dict, path: str) -> None:
    """Left: the baseline's and each candidate's mean over the shared speakers, with each draw's own mean as a dot;
    right: each candidate's paired difference to the baseline with its interval over the speakers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    baseline_items = result["baseline"] if isinstance(result["baseline"], list) else [result["baseline"]]

    def label(items: list[str]) -> str:
        return _short(items[0]) + (f" (+{len(items) - 1} draws)" if len(items) > 1 else "")

    labels = ["baseline: " + label(baseline_items)] + [label(row["candidate"].split(",")) for row in rows]
    means = [rows[0]["baseline_mean"]] + [row["candidate_mean"] for row in rows]
    draws = [list((result.get("baseline_draw_means") or {}).values())]
    draws += [list((row.get("candidate_draw_means") or {}).values()) for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 1.4 + 0.45 * len(labels)), sharey=True)
    positions = list(range(len(labels)))[::-1]
    for y, mean, dots in zip(positions, means, draws):
        left.scatter(dots, [y] * len(dots), color="tab:gray", s=18, zorder=2, label="one draw")
        left.scatter([mean], [y], color="tab:blue", marker="D", s=40, zorder=3, label="mean")
    handles, names = left.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    left.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    left.set_yticks(positions, labels, fontsize=7)
    left.set_xlabel(result["metric"])
    for y, row in zip(positions[1:], rows):
        paired = row["paired"]
        error = [[paired["mean"] - paired["low"]], [paired["high"] - paired["mean"]]]
        color = "tab:green" if paired["low"] > 0 else "tab:red" if paired["high"] < 0 else "tab:gray"
        right.errorbar([paired["mean"]], [y], xerr=error, fmt="o", color=color, capsize=3)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel(f"candidate - baseline ({round(100 * result['confidence'])}% interval over speakers)")
    fig.suptitle(f"paired over the speakers: {result['metric']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, nargs="+", metavar="PATH[#SELECTOR]",
                        help="the baseline; several: draws of it (training runs), compared as each speaker's mean")
    parser.add_argument("--candidates", required=True, nargs="+", metavar="PATH[#SELECTOR][,PATH[#SELECTOR]...]",
                        help="the candidates; items joined by commas: draws of one candidate, as each speaker's mean")
    parser.add_argument("--metric", default="similarity", help="per-speaker number to compare (default: similarity)")
    parser.add_argument("--families", nargs="+", default=None, metavar="FAMILY",
                        help="only the speakers of these voice families (espeak, flite, festival)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it); default: log only")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        baseline = mean_over_draws([load_selection(item, args.metric, args.families) for item in args.baseline])
        rows = [compare(baseline, mean_over_draws([load_selection(draw, args.metric, args.families)
                                                   for draw in item.split(",")]), args.seed)
                for item in args.candidates]
    except (ResultSelectionError, PairedComparisonError) as error:
        parser.error(str(error))
    result = {"baseline": args.baseline[0] if len(args.baseline) == 1 else args.baseline,
              "baseline_draw_means": baseline.get("draw_means"), "baseline_draw_sd": baseline.get("draw_sd"),
              "metric": args.metric, "families": args.families,
              "confidence": CONFIDENCE_LEVEL, "seed": args.seed,
              "rows": rows, "command": script_command(__file__, argv)}
    table = render(result)
    logger.info("\n%s", table)
    if args.out:
        write_json_atomic(args.out, result)
        with open(os.path.splitext(args.out)[0] + ".md", "w", encoding="utf-8") as stream:
            stream.write(table)
        plot(result, os.path.splitext(args.out)[0] + ".png")
        logger.info("wrote %s and its .md and .png", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
