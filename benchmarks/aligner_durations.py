"""How far the durations ``model.adapt`` finds for a speaker's support clips lie from the corpus's phone timings,
for several weights of the duration predictor in the aligner's search (``config.aligner_duration_weight``,
``hf_metatts.modeling_alignment.duration_informed_search``); nothing is adapted or synthesised.

For each held-out speaker the first ``--shots`` clips of its support pool (as ``benchmarks/adaptation_rules.py``
draws them) are read by ``model.compute_durations`` once per weight, and each weight gets the mean absolute frames
per token against the timings and the share of tokens more than 2 frames off, per speaker, per voice family (the
source before ``:`` in a speaker's name) and over all speakers. The row ``predictor_alone`` is the duration
predictor's own durations for the clips' voice, stretched to each clip's length (``model.expected_durations``,
what the search holds the tokens to)::

    python benchmarks/aligner_durations.py --checkpoint hf_metatts/checkpoints/default --split validation \\
        --weights 0 1 3 10 30 60 100 300 --out benchmarks/results/aligner_durations_validation.json

Writes the JSON and a plot of the error against the weight beside it (``.png``).
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hf_metatts  # noqa: E402
from hf_metatts.evaluation.adaptation_study import add_task_arguments, run_study_main, task_settings  # noqa: E402
from hf_metatts.evaluation.benchmark import (  # noqa: E402
    ALIGNER_SEARCHES,
    duration_weight_argument,
    load_method,
    load_tasks,
    set_aligner_search,
    support_batch,
)
from hf_metatts.training.hardware import hardware_description  # noqa: E402

logger = logging.getLogger("aligner_durations")
PREDICTOR = "predictor_alone"


def frame_errors(durations: torch.Tensor, timings: torch.Tensor, mask: torch.Tensor) -> dict:
    """Mean absolute frames per token and the share more than 2 frames off, over the tokens in ``mask``; all
    ``(B, N)``."""
    off = (durations.double() - timings.double()).abs()[mask.bool()]
    return {"mean_abs_frames": float(off.mean()), "tokens_off_by_more_than_2": float((off > 2).double().mean())}


def read_task(model, support: dict, weights: list[float]) -> dict:
    """``{str(weight): errors, PREDICTOR: errors}`` for one speaker's collated support batch with ``durations``."""
    timings = support["durations"]
    batch = {key: value for key, value in support.items() if key != "durations"}
    mask = batch["attention_mask"]
    row = {}
    with torch.no_grad():
        for weight in weights:
            model.config.aligner_duration_weight = weight
            row[f"{weight:g}"] = frame_errors(model.compute_durations(**batch), timings, mask)
        row[PREDICTOR] = frame_errors(model.expected_durations(**batch), timings, mask)
    return row


def summarise(per_task: dict) -> dict:
    """Means over speakers, overall and per voice family, for every row of ``per_task``."""
    rows = next(iter(per_task.values())).keys()
    families = sorted({name.split(":")[0] for name in per_task})
    summary = {}
    for row in rows:
        def mean(names, key, row=row):
            return float(np.mean([per_task[name][row][key] for name in names]))

        names = list(per_task)
        summary[row] = {"mean_abs_frames": mean(names, "mean_abs_frames"),
                        "tokens_off_by_more_than_2": mean(names, "tokens_off_by_more_than_2"),
                        "by_family": {family: mean([n for n in names if n.split(":")[0] == family],
                                                   "mean_abs_frames") for family in families}}
    return summary


def run(args) -> dict:
    settings = task_settings(args, {"zero_shot": args.checkpoint}, 0, ["similarity"])
    model, processor, _, reason = load_method("zero_shot", args.checkpoint)
    if reason:
        raise SystemExit(f"error: {reason}")
    set_aligner_search(model, processor, args.aligner_search)
    tasks = load_tasks(settings)
    started = time.perf_counter()
    per_task = {}
    for task in tasks:
        support = support_batch(task.pool[: args.shots], processor)
        if support.get("durations") is None:
            raise SystemExit(f"error: the support clips of {task.name} have no phone timings to measure against")
        per_task[task.name] = read_task(model, support, args.weights)
    summary = summarise(per_task)
    for row, values in summary.items():
        logger.info("%s: %.3f frames per token, %.1f%% more than 2 off %s", row, values["mean_abs_frames"],
                    100 * values["tokens_off_by_more_than_2"],
                    {family: round(value, 3) for family, value in values["by_family"].items()})
    return {"checkpoint": args.checkpoint, "corpus": args.corpus, "split": args.split, "shots": args.shots,
            "seed": args.seed, "aligner_search": args.aligner_search,
            "aligner_skips_marks": bool(model.config.aligner_skippable_token_ids), "weights": args.weights,
            "tasks": [t.name for t in tasks], "summary": summary, "per_task": per_task,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": {**hardware_description(), "platform": platform.platform()},
            "library_version": hf_metatts.__version__, "command": getattr(args, "command", None)}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = result["weights"]
    positions = np.arange(len(weights))
    summary = result["summary"]
    fig, ax = plt.subplots(figsize=(7, 4))
    families = sorted(summary[PREDICTOR]["by_family"])
    for family in families:
        line = ax.plot(positions, [summary[f"{w:g}"]["by_family"][family] for w in weights], marker="o",
                       label=family)
        ax.axhline(summary[PREDICTOR]["by_family"][family], color=line[0].get_color(), linestyle=":")
    ax.plot(positions, [summary[f"{w:g}"]["mean_abs_frames"] for w in weights], marker="s", color="black",
            label="all speakers")
    ax.set_xticks(positions, [f"{w:g}" for w in weights])
    ax.set_xlabel("aligner_duration_weight")
    ax.set_ylabel("frames per token from the phone timings")
    ax.set_title(f"{result['split']} speakers, {result['shots']} clips each (dotted: the predictor alone)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aligner_durations", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder with a trained duration predictor")
    add_task_arguments(parser, split="validation", heldout=6)  # the support pool adaptation_rules.py draws
    parser.add_argument("--weights", nargs="+", type=duration_weight_argument,
                        default=[0.0, 1.0, 3.0, 10.0, 30.0, 60.0, 100.0, 300.0])
    parser.add_argument("--aligner-search", choices=ALIGNER_SEARCHES, default="own",
                        help="which tokens may take no frame (see benchmarks/default_checkpoint.py)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/aligner_durations.json")
    return parser


def main(argv=None) -> None:
    run_study_main(build_parser(), run, plot, argv)


if __name__ == "__main__":
    main()
