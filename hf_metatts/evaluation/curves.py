"""Render an adaptation-benchmark result (:func:`hf_metatts.evaluation.benchmark.run_benchmark`) as PNG
curves and as the markdown tables of BENCHMARKS.md."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

#: (key, label, direction) of each metric in the plots and tables.
METRIC_LABELS = (
    ("similarity", "speaker similarity (cosine, higher is better)", "higher"),
    ("eer", "speaker-verification EER (lower is better)", "lower"),
    ("identification", "speaker-identification accuracy (higher is better)", "higher"),
    ("mcd", "MCD dB (lower is better)", "lower"),
    ("wer", "ASR WER (lower is better)", "lower"),
)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(cells: dict, step) -> dict:
    """The means of one step; empty for a step this method was not run to (merged results of several runs)."""
    return (cells.get(str(step)) or {}).get("mean", {})


def _ok_methods(result: dict) -> list[str]:
    return [m for m, e in result["methods"].items() if e.get("status") == "ok"]


def plot_curves(result: dict, path: str, dpi: int = 80) -> None:
    """One panel per (metric, k): the metric against adaptation steps, a line per method, upper bounds dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = result["settings"]["shots"]
    steps = result["settings"]["steps"]
    fig, axes = plt.subplots(len(METRIC_LABELS), len(shots), figsize=(3.2 * len(shots), 2.4 * len(METRIC_LABELS)),
                             squeeze=False)
    xs = [max(s, 0.5) for s in steps]  # step 0 sits at 0.5 on the log axis
    for row, (key, label, _) in enumerate(METRIC_LABELS):
        for col, k in enumerate(shots):
            ax = axes[row][col]
            for method in _ok_methods(result):
                cells = result["methods"][method]["results"].get(str(k), {})
                ys = [_cell(cells, s).get(key) for s in steps]
                points = [(x, y) for x, y in zip(xs, ys) if y is not None]
                if points:
                    ax.plot(*zip(*points), marker="o", markersize=3, label=method)
            for bound, style in (("ground_truth", "k--"), ("resynthesis", "k:")):
                value = (result.get("upper_bounds") or {}).get(bound, {}).get("mean", {}).get(key)
                if value is not None:
                    ax.axhline(value, linestyle=style[1:], color="k", linewidth=0.8, label=bound)
            ax.set_xscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([str(s) for s in steps], fontsize=7)
            ax.set_title(f"k={k}", fontsize=8)
            if col == 0:
                ax.set_ylabel(label.split(" (")[0], fontsize=8)
            if row == len(METRIC_LABELS) - 1:
                ax.set_xlabel("adaptation steps", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=7)
    task_column = result["settings"]["task_column"]
    fig.suptitle(f"Adaptation to held-out {task_column} tasks", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    logger.info("wrote %s", path)


def render_markdown(result: dict) -> str:
    """The BENCHMARKS.md section: settings, one table per metric (rows method x k, columns steps), bounds."""
    settings = result["settings"]
    steps = settings["steps"]
    tasks = result["tasks"]
    lines = [
        f"### Adaptation to held-out `{settings['task_column']}` tasks",
        "",
        f"{len(tasks)} test task(s) ({', '.join(t['name'] for t in tasks)}), {settings['heldout']} held-out "
        f"sentence(s) each; corpus `{settings['corpus']}`; {result['seconds']:.0f} s in all. "
        "Means over tasks; EER and identification pooled over tasks.",
        "",
    ]
    skipped = [(m, e["reason"]) for m, e in result["methods"].items() if e.get("status") != "ok"]
    for method in _ok_methods(result):
        entry = result["methods"][method]
        notes = [f"{label} {entry[key]}" for key, label in (("lr", "lr"), ("rate_scale", "step sizes x"),
                                                             ("global_variance_weight", "global-variance weight"))
                 if entry.get(key)]
        lines.append(f"- `{method}`: checkpoint `{entry['checkpoint']}`" + "".join(f", {note}" for note in notes))
    for method, reason in skipped:
        lines.append(f"- `{method}`: skipped ({reason})")
    lines.append("")
    bounds = result.get("upper_bounds") or {}
    for key, label, _ in METRIC_LABELS:
        lines += [f"**{label}**", "", "| method | k | " + " | ".join(f"{s} steps" for s in steps) + " |",
                  "|---|---|" + "---|" * len(steps)]
        for method in _ok_methods(result):
            for k in settings["shots"]:
                cells = result["methods"][method]["results"].get(str(k), {})
                values = [_fmt(_cell(cells, s).get(key)) if str(s) in cells else "-" for s in steps]
                lines.append(f"| {method} | {k} | " + " | ".join(values) + " |")
        for bound in ("ground_truth", "resynthesis"):
            value = bounds.get(bound, {}).get("mean", {}).get(key)
            lines.append(f"| *{bound}* | - | {_fmt(value)} |" + " |" * (len(steps) - 1))
        lines.append("")
    truth = bounds.get("ground_truth", {}).get("mean", {})
    eer_note = truth.get("eer_note")
    if eer_note:
        lines += [f"EER n/a: {eer_note}.", ""]
    if truth.get("identification_note"):
        lines += [f"Identification n/a: {truth['identification_note']}.", ""]
    elif truth.get("identification_candidates"):
        lines += [f"Identification: the closest of {truth['identification_candidates']} enrolled tasks "
                  f"(chance {1 / truth['identification_candidates']:.3f}).", ""]
    ref_wer = bounds.get("ground_truth", {}).get("mean", {}).get("wer")
    if ref_wer is not None:
        lines.append(f"WER of the targets' own recordings: {ref_wer:.3f} (the WER row of `ground_truth`); "
                     "`wer_delta` in the JSON is each cell minus it, `wer_ratio_pooled` each cell's mean WER over "
                     "the mean WER of the same tasks' recordings.")
        lines.append("")
    return "\n".join(lines)


__all__ = ["METRIC_LABELS", "plot_curves", "render_markdown"]
