"""Where the adaptation steps' WER cost comes from, speaker by speaker.

The naturalness bar compares the WER after the steps with the WER before them. The steps move the voice toward
the target speaker, and some targets are harder for the recogniser than the start voice (their own recordings'
WER is higher), some easier. This splits the cost, over the speakers of a bar-harness result
(``benchmarks/default_checkpoint.py``), by an ordinary least-squares line::

    cost = WER after - WER before  =  slope x (WER of the target's recordings - WER before)  +  intercept

- ``slope``: how far the steps carry the voice's readability toward the target's own (0: not at all, 1: all the
  way);
- ``intercept``: what the steps cost a target exactly as readable as the start voice: the part of the cost that
  is not the target's voice.

Each coefficient gets a percentile interval from resampling the speakers (``BOOTSTRAP_RESAMPLES``, seeded)::

    python benchmarks/wer_cost.py \\
        --results benchmarks/results/default_checkpoint_step_0.01.json \\
                  benchmarks/results/default_checkpoint_step_0.015.json \\
                  benchmarks/results/default_checkpoint_step_0.02_rerun.json \\
        --method zero_shot --out benchmarks/results/wer_cost_step_size.json

Writes the JSON, a markdown table and a plot beside it (``.md``, ``.png``: each result's speakers and line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.paired_comparison import ResultSelectionError, load_selection  # noqa: E402
from hf_metatts.evaluation.cli import script_command, write_json_atomic  # noqa: E402
from hf_metatts.evaluation.paired import CONFIDENCE_LEVEL  # noqa: E402

logger = logging.getLogger("wer_cost")

#: speaker resamples for the coefficients' intervals
BOOTSTRAP_RESAMPLES = 10_000
#: fewest speakers with a WER before, after and of their recordings for a line to mean anything
MIN_SPEAKERS = 4


class WerCostError(ValueError):
    """A result cannot be split: not a bar result, the method or step not measured, or too few speakers with WER."""


def speaker_wers(path: str, method: str, steps: int) -> dict[str, dict[str, float]]:
    """``{speaker: {"before", "after", "recordings"}}``: WER of ``method`` at 0 and ``steps`` steps and of the
    speaker's own recordings, for the speakers where all three were measured.

    Raises:
        WerCostError: the file is not a bar-harness result with that method at 0 and ``steps`` steps and the
            recordings' WER, or fewer than ``MIN_SPEAKERS`` speakers have all three.
    """
    try:
        before = load_selection(f"{path}#{method}@0", "wer")["values"]
        after = load_selection(f"{path}#{method}@{steps}", "wer")["values"]
    except ResultSelectionError as error:
        raise WerCostError(f"{error} (measure it with benchmarks/default_checkpoint.py, wer among its --metrics, "
                           "the method's steps including 0)") from None
    data = json.loads(Path(path).read_text())
    truth = (((data.get("upper_bounds") or {}).get("ground_truth") or {}).get("per_task")) or {}
    recordings = {task: row["wer"] for task, row in truth.items() if row.get("wer") is not None}
    if not recordings:
        raise WerCostError(f"{path} has no WER of the speakers' own recordings (upper_bounds.ground_truth): "
                           "measure it with the bar harness's upper bounds")
    shared = sorted(set(before) & set(after) & set(recordings))
    if len(shared) < MIN_SPEAKERS:
        raise WerCostError(f"{path}: only {len(shared)} speaker(s) have a WER before, after and of their "
                           f"recordings; a line needs at least {MIN_SPEAKERS}")
    return {task: {"before": before[task], "after": after[task], "recordings": recordings[task]} for task in shared}


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept`` -> ``(slope, intercept)``; x and y are ``(N,)``."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    slope, intercept = np.linalg.lstsq(design, y, rcond=None)[0]
    return float(slope), float(intercept)


def split_cost(wers: dict[str, dict[str, float]], seed: int = 0,
               resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """The line of the cost over the readability gap, with percentile intervals from resampling the speakers.

    Raises:
        WerCostError: every speaker has the same gap, so no line is defined.

    Returns:
        ``{"speakers", "mean_cost", "mean_gap", "correlation", "slope", "slope_interval", "intercept",
        "intercept_interval", "confidence"}`` (intervals as ``[low, high]``; resamples whose gaps are all equal
        are skipped, they fix no line).
    """
    tasks = sorted(wers)
    gap = np.array([wers[t]["recordings"] - wers[t]["before"] for t in tasks])
    cost = np.array([wers[t]["after"] - wers[t]["before"] for t in tasks])
    if np.ptp(gap) < 1e-9:
        raise WerCostError(f"every one of the {len(tasks)} speakers has the same readability gap ({gap[0]:+.3f}): "
                           "no line runs through one x; measure speakers whose recordings differ in WER")
    slope, intercept = fit_line(gap, cost)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        index = rng.integers(0, len(tasks), len(tasks))
        if np.ptp(gap[index]) > 0:
            draws.append(fit_line(gap[index], cost[index]))
    draws = np.array(draws)
    tail = 100 * (1 - CONFIDENCE_LEVEL) / 2
    slope_low, slope_high = np.percentile(draws[:, 0], [tail, 100 - tail])
    intercept_low, intercept_high = np.percentile(draws[:, 1], [tail, 100 - tail])
    correlation = float(np.corrcoef(gap, cost)[0, 1]) if np.ptp(cost) > 0 else float("nan")
    return {"speakers": len(tasks), "mean_cost": round(float(cost.mean()), 4), "mean_gap": round(float(gap.mean()), 4),
            "correlation": round(correlation, 3), "slope": round(slope, 4),
            "slope_interval": [round(float(slope_low), 4), round(float(slope_high), 4)],
            "intercept": round(intercept, 4),
            "intercept_interval": [round(float(intercept_low), 4), round(float(intercept_high), 4)],
            "confidence": CONFIDENCE_LEVEL}


def run(paths: list[str], method: str, steps: int, seed: int = 0) -> dict:
    """Every result of ``paths`` split; raises :class:`WerCostError` before anything is written."""
    rows = []
    for path in paths:
        wers = speaker_wers(path, method, steps)
        rows.append({"result": path, **split_cost(wers, seed=seed), "per_task": wers})
    return {"method": method, "steps": steps, "rows": rows, "seed": seed, "resamples": BOOTSTRAP_RESAMPLES}


def render(result: dict) -> str:
    level = round(100 * CONFIDENCE_LEVEL)
    lines = [f"`{result['method']}` after {result['steps']} steps: cost = WER after - WER before = slope x (WER of "
             "the target's recordings - WER before) + intercept, over the speakers", "",
             f"| result | speakers | mean cost | mean gap | correlation | slope ({level}% interval) | "
             f"intercept ({level}% interval) |", "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        s, i = row["slope_interval"], row["intercept_interval"]
        lines.append(f"| `{row['result']}` | {row['speakers']} | {row['mean_cost']:+.3f} | {row['mean_gap']:+.3f} | "
                     f"{row['correlation']:.2f} | {row['slope']:.2f} [{s[0]:.2f}, {s[1]:.2f}] | "
                     f"{row['intercept']:+.3f} [{i[0]:+.3f}, {i[1]:+.3f}] |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
    """Each result's speakers (readability gap against cost) and its fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4.5))
    for row in result["rows"]:
        rows = row["per_task"].values()
        gap = np.array([r["recordings"] - r["before"] for r in rows])
        cost = np.array([r["after"] - r["before"] for r in rows])
        name = os.path.splitext(os.path.basename(row["result"]))[0]
        dots = axis.scatter(gap, cost, s=16, alpha=0.7, label=f"{name}: {row['slope']:.2f} x gap "
                                                                 f"{row['intercept']:+.3f}")
        ends = np.array([gap.min(), gap.max()])
        axis.plot(ends, row["slope"] * ends + row["intercept"], color=dots.get_facecolor()[0])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("WER of the target's recordings - WER before the steps")
    axis.set_ylabel("WER after the steps - WER before")
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, nargs="+", metavar="PATH",
                        help="results of benchmarks/default_checkpoint.py measured with WER")
    parser.add_argument("--method", default="zero_shot", help="the method whose steps are split (default zero_shot)")
    parser.add_argument("--steps", type=int, default=5, help="the step count after which the cost is read")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker resampling")
    parser.add_argument("--out", default=None, help="JSON path (.md and .png written beside it); default: log only")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result = run(args.results, args.method, args.steps, seed=args.seed)
    except WerCostError as error:
        raise SystemExit(f"error: {error}") from None
    result["command"] = script_command(__file__, argv)
    table = render(result)
    logger.info("\n%s", table)
    if args.out:
        write_json_atomic(args.out, result)
        Path(args.out).with_suffix(".md").write_text(table)
        plot(result, str(Path(args.out).with_suffix(".png")))
        logger.info("wrote %s and its .md and .png", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
