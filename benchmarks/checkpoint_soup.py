"""A greedy model soup of meta-training runs, chosen on validation speakers (Wortsman et al., 2022).

Runs of one configuration that continue one start (other seeds, another shot count, an extra term in the
meta-objective) can be averaged (``hf-metatts average``). Which of them to average is chosen on the validation
speakers, never on the test speakers:

1. every run adapts to each validation speaker from 5 clips with its own learned rule (5 steps), and its mean
   speaker similarity on held-out sentences is measured (``adaptation_rules.py``'s ``learned`` rule);
2. the runs are sorted best first and the soup starts as the best one;
3. each next run joins the soup when the average of the soup with it scores at least as high, else it is left out;
4. for comparison, the uniform soup (the mean of all runs) is scored too;
5. the final soup is written to ``--out`` with :func:`hf_metatts.training.average.average_checkpoints` (nothing is
   written when no run joins the best one).

::

    python benchmarks/checkpoint_soup.py --runs outputs/run_a outputs/run_b outputs/run_c \\
        --out outputs/soup --json benchmarks/results/checkpoint_soup.json

The JSON has every run's and every candidate soup's validation similarity and identification, which runs joined,
the chosen soup's paired per-speaker difference to its best run with a 95% bootstrap interval
(``soup_vs_best_run``: a soup ahead by 0.0002 is not ahead unless the speakers agree), the machine and the
command; the PNG beside it shows the runs and the greedy steps.
"""

import argparse
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hf_metatts  # noqa: E402
from benchmarks.adaptation_rules import build_parser as rules_parser  # noqa: E402
from benchmarks.adaptation_rules import run as run_rules  # noqa: E402
from hf_metatts.evaluation.cli import script_command, write_json_atomic  # noqa: E402
from hf_metatts.training.average import average_checkpoints  # noqa: E402
from hf_metatts.training.hardware import hardware_description  # noqa: E402

logger = logging.getLogger("checkpoint_soup")

#: A scorer: checkpoint folder -> {"similarity": ..., ...}; higher similarity is better.
Scorer = Callable[[str], dict]


def greedy_soup(runs: list[str], score: Scorer, candidate_dir: str) -> dict:
    """Steps 1-4 of the module docstring. ``score`` measures a folder; candidate soups are written to
    ``candidate_dir`` (replaced each time, removed at the end). Returns ``{"runs": {run: scores}, "order",
    "steps": [...], "members": [...], "similarity", "uniform", "soup_vs_best_run"}`` where each step is
    ``{"added", "members", "similarity", "identification", "kept"}``, ``uniform`` the scores of the mean of all
    runs (None for two runs, where it is the first step) and ``soup_vs_best_run`` the paired per-speaker
    difference of the chosen soup to its best run with its 95% bootstrap interval
    (:func:`hf_metatts.evaluation.paired.paired_difference`; None when the soup is that run or the scorer gives no
    ``per_task`` similarities): whether the speakers agree that the soup is better."""
    if len(runs) < 2:
        raise ValueError(f"a soup needs two or more runs, got {runs}")
    scores = {run: score(run) for run in runs}
    ordered = sorted(runs, key=lambda run: -scores[run]["similarity"])
    members, best = [ordered[0]], scores[ordered[0]]["similarity"]
    chosen = scores[ordered[0]]
    steps, uniform = [], None
    try:
        if len(runs) > 2:  # the uniform soup, for comparison (Wortsman et al.'s other recipe)
            average_checkpoints(ordered, candidate_dir, overwrite=True)
            uniform = score(candidate_dir)
            logger.info("uniform soup of all %d runs: similarity %.4f", len(runs), uniform["similarity"])
        for run in ordered[1:]:
            average_checkpoints(members + [run], candidate_dir, overwrite=True)
            measured = score(candidate_dir)
            kept = measured["similarity"] >= best
            steps.append({"added": run, "members": members + [run], "similarity": measured["similarity"],
                          "identification": measured.get("identification"), "kept": kept})
            logger.info("%s: soup of %d -> similarity %.4f (best so far %.4f): %s", run, len(members) + 1,
                        measured["similarity"], best, "kept" if kept else "left out")
            if kept:
                members, best, chosen = members + [run], measured["similarity"], measured
    finally:
        shutil.rmtree(candidate_dir, ignore_errors=True)
    return {"runs": scores, "order": ordered, "steps": steps, "members": members, "similarity": best,
            "uniform": uniform, "soup_vs_best_run": soup_against_best_run(chosen, scores[ordered[0]])}


def soup_against_best_run(soup: dict, best_run: dict) -> dict | None:
    """The paired per-speaker difference of the soup's similarity to its best run's (``PairedDifference.to_dict``),
    or None when the soup is that run (no other run joined) or the scores have no ``per_task``."""
    from hf_metatts.evaluation.paired import PairedComparisonError, paired_difference

    if soup is best_run or not soup.get("per_task") or not best_run.get("per_task"):
        return None
    try:
        paired = paired_difference(soup["per_task"], best_run["per_task"])
    except PairedComparisonError as error:
        logger.warning("soup against its best run: %s", error)
        return None
    logger.info("the soup against its best run: %+.4f [%+.4f, %+.4f] over %d speakers (%d ahead, %d behind)",
                paired.mean, paired.low, paired.high, paired.tasks, paired.above, paired.below)
    return paired.to_dict()


def validation_scorer(corpus: str, split: str, languages: list[str] | None, shots: int, steps: int, heldout: int,
                      seed: int, threads: int) -> Scorer:
    """Mean speaker similarity (and pooled identification) of a checkpoint's learned rule on ``split``; the
    tasks and their real audio are loaded at the first call and reused by the next ones."""
    reuse: dict = {}

    def score(folder: str) -> dict:
        argv = ["--checkpoint", folder, "--corpus", corpus, "--split", split, "--rules", "learned", "--shots",
                str(shots), "--steps", str(steps), "--heldout", str(heldout), "--seed", str(seed), "--threads",
                str(threads)]
        if languages:
            argv += ["--languages", *languages]
        result = run_rules(rules_parser().parse_args(argv), reuse=reuse)["results"]["learned"]
        return {"similarity": result["mean"]["similarity"], "identification": result["identification"],
                "tasks": len(result["per_task"]),
                "per_task": {task: values["similarity"] for task, values in result["per_task"].items()}}
    return score


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [os.path.basename(run.rstrip("/")) for run in result["order"]]
    values = [result["runs"][run]["similarity"] for run in result["order"]]
    fig, ax = plt.subplots(figsize=(2 + 1.2 * len(labels), 3.4))
    ax.bar(range(len(labels)), values, color="tab:blue", label="run alone")
    for step in result["steps"]:
        index = result["order"].index(step["added"])
        ax.scatter(index, step["similarity"], marker="o" if step["kept"] else "x", s=60, zorder=3,
                   color="tab:green" if step["kept"] else "tab:red",
                   label="soup with it: kept" if step["kept"] else "soup with it: left out")
    low = min(values + [s["similarity"] for s in result["steps"]])
    if result.get("uniform"):
        ax.axhline(result["uniform"]["similarity"], color="tab:gray", linestyle="--", label="uniform soup")
        low = min(low, result["uniform"]["similarity"])
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylim(low - 0.02, max(values + [result["similarity"]]) + 0.01)
    ax.set_ylabel(f"similarity, {result['split']} speakers")
    ax.set_title("greedy soup (runs best first)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="checkpoint folders of one configuration")
    parser.add_argument("--out", required=True, help="folder of the final soup")
    parser.add_argument("--json", default="benchmarks/results/checkpoint_soup.json")
    parser.add_argument("--corpus", default="data/voices")
    parser.add_argument("--split", default="validation", help="never the test split: the soup is chosen on it")
    parser.add_argument("--languages", nargs="*", default=None, help="language-code prefixes (default: all)")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it already holds files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.split == "test":
        parser.error("--split test: choose the soup on validation speakers, then measure it on the test speakers")
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        parser.error(f"{args.out} already holds files; choose another --out or pass --overwrite")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    score = validation_scorer(args.corpus, args.split, args.languages, args.shots, args.steps, args.heldout,
                              args.seed, args.threads)
    result = greedy_soup(args.runs, score, args.out.rstrip("/") + ".candidate")
    if len(result["members"]) > 1:
        average_checkpoints(result["members"], args.out, overwrite=args.overwrite)
        logger.info("wrote %s: the soup of %s", args.out, result["members"])
    else:
        logger.info("no run joined %s: nothing written", result["members"][0])
    result.update({"split": args.split, "corpus": args.corpus, "shots": args.shots, "inner_steps": args.steps,
                   "heldout": args.heldout, "out": args.out if len(result["members"]) > 1 else None,
                   "seconds": round(time.perf_counter() - started, 1),
                   "machine": {**hardware_description(), "platform": platform.platform()},
                   "library_version": hf_metatts.__version__,
                   "command": script_command(__file__, argv)})
    write_json_atomic(args.json, result)
    plot(result, os.path.splitext(args.json)[0] + ".png")
    logger.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
