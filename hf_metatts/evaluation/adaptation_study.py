"""The common frame of the benchmark scripts that adapt every held-out speaker once, as the bar harness does
(``benchmarks/default_checkpoint.py``), and then read its held-out sentences in several ways
(``benchmarks/pitch_level.py``, ``benchmarks/prosody_source.py``): their command-line arguments, the loading of
tasks, model and audio, the adaptation itself, and the JSON/plot/log ending of ``main``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .benchmark import BenchmarkSettings, Task, TaskAudio, load_method, load_tasks, support_batch

STUDY_METHODS = ("zero_shot", "metasgd", "maml", "meta_lstm")


def add_task_arguments(parser: argparse.ArgumentParser, split: str, heldout: int,
                       languages: list[str] | None = None) -> None:
    """The held-out speakers a script reads (:func:`task_settings`): the corpus, its split, language-code and
    task-name prefixes, shots, held-out sentences per speaker and the seed of the draw."""
    parser.add_argument("--corpus", default="data/voices")
    parser.add_argument("--split", default=split)
    parser.add_argument("--languages", nargs="*", default=languages, help="language-code prefixes (none given: all)")
    parser.add_argument("--tasks", nargs="*", default=None, help="keep the tasks whose names start with these")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=heldout, help="held-out sentences per speaker")
    parser.add_argument("--seed", type=int, default=0)


def task_settings(args: argparse.Namespace, checkpoints: dict[str, str], steps: int,
                  eval_metrics: list[str]) -> BenchmarkSettings:
    """The validated `BenchmarkSettings` of the arguments of :func:`add_task_arguments`, for ``checkpoints``
    adapted ``steps`` steps and read with ``eval_metrics``."""
    settings = BenchmarkSettings(corpus=args.corpus, checkpoints=checkpoints, split=args.split, shots=[args.shots],
                                 steps=[steps], heldout=args.heldout, seed=args.seed, eval_metrics=eval_metrics,
                                 languages=args.languages or None, task_prefixes=args.tasks or None)
    settings.validate()
    return settings


def add_study_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The arguments every study takes: the checkpoint and its adaptation (method, step size, global-variance
    weight), the held-out speakers (:func:`add_task_arguments`), steps, threads and output file."""
    parser.add_argument("--checkpoint", required=True, help="a meta-trained checkpoint folder")
    parser.add_argument("--method", default="zero_shot", choices=STUDY_METHODS)
    parser.add_argument("--lr", type=float, default=None, help="step size in place of the meta-learner's")
    parser.add_argument("--global-variance-weight", type=float, default=0.0,
                        help="weight of the global-variance term (0: the meta-learner's own)")
    add_task_arguments(parser, split="test", heldout=3, languages=["en"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=default_out)


@dataclass
class Study:
    """What a study works on: the held-out tasks, the loaded method and each task's real audio."""

    tasks: list[Task]
    model: object
    processor: object
    head: object
    audios: dict[str, TaskAudio]
    loss_term: Callable | None

    @property
    def rate(self) -> int:
        return self.model.config.sampling_rate

    def support(self, task: Task, shots: int) -> dict:
        """The collated batch of ``task``'s first ``shots`` support clips (see :func:`support_batch`)."""
        return support_batch(task.pool[:shots], self.processor)

    def adapt(self, support: dict, args: argparse.Namespace, steps: int | None = None) -> dict[str, torch.Tensor]:
        """The adapted parameter set after ``steps`` (default ``args.steps``) steps on ``support``, as the bar
        harness adapts (``args.method``, ``args.lr``, the study's loss term; seeded with ``args.seed``)."""
        from ..meta import adapt_parameters

        torch.manual_seed(args.seed)
        return adapt_parameters(self.model, support, method=args.method,
                                steps=args.steps if steps is None else steps, meta_learner=self.head, lr=args.lr,
                                loss_term=self.loss_term)


def load_study(args: argparse.Namespace, eval_metrics: list[str]) -> Study:
    """Tasks, method and real audio for ``args`` (from :func:`add_study_arguments`); the recordings' WER is
    measured when ``eval_metrics`` has ``"wer"``. Raises ``SystemExit`` when the method cannot run."""
    from ..meta.global_variance import global_variance_term

    tasks = load_tasks(task_settings(args, {args.method: args.checkpoint}, args.steps, eval_metrics))
    model, processor, head, reason = load_method(args.method, args.checkpoint)
    if reason:
        raise SystemExit(f"error: {reason}")
    rate = model.config.sampling_rate
    audios = {t.name: TaskAudio(t, processor, rate, with_wer="wer" in eval_metrics) for t in tasks}
    term = global_variance_term(args.global_variance_weight) if args.global_variance_weight else None
    return Study(tasks=tasks, model=model, processor=processor, head=head, audios=audios, loss_term=term)


def study_record(args: argparse.Namespace, study: Study) -> dict:
    """The fields every study's JSON starts with: what was adapted how, on which machine, by which command."""
    import hf_metatts

    from ..training.hardware import hardware_description

    return {
        "checkpoint": args.checkpoint, "method": args.method, "split": args.split,
        "tasks": [t.name for t in study.tasks], "shots": args.shots, "steps": args.steps, "lr": args.lr,
        "global_variance_weight": args.global_variance_weight,
        "machine": {**hardware_description(), "platform": platform.platform()},
        "library_version": hf_metatts.__version__, "command": getattr(args, "command", None),
    }


def add_variant_wers(results: dict[str, dict], waves_by_variant: dict[str, dict[str, list]], audios: dict,
                     rate: int, log: logging.Logger) -> None:
    """Each variant's recogniser WER of its held-out speech: ``results[variant]`` gains ``wer_per_task`` (task ->
    WER of ``waves_by_variant[variant][task]`` against ``audios[task].texts``) and ``wer_mean_over_tasks``."""
    import numpy as np

    from .asr import asr_word_error_rate

    for variant, waves in waves_by_variant.items():
        per_task = {name: asr_word_error_rate(waves[name], audios[name].texts, rate).wer for name in audios}
        results[variant]["wer_mean_over_tasks"] = float(np.mean(list(per_task.values())))
        results[variant]["wer_per_task"] = per_task
        log.info("%s: WER %.3f (mean over speakers)", variant, results[variant]["wer_mean_over_tasks"])


def plot_variants(result: dict, keys: tuple[str, ...], title: str, path: str,
                  ylim: tuple[float, float] | None = None) -> None:
    """One bar chart per measure in ``keys``: its value for each variant of ``result["results"]`` (variant ->
    measures), side by side, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(result["results"])
    fig, axes = plt.subplots(1, len(keys), figsize=(1.0 + 4.0 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.bar(variants, [result["results"][v][key] for v in variants], color="tab:blue")
        ax.set_title(key)
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
        if ylim is not None:
            ax.set_ylim(*ylim)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_study_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict],
                   plot: Callable[[dict, str], None], argv=None) -> None:
    """Parse ``argv``, set logging and torch threads, ``run`` the study, write its JSON to ``--out`` and its plot
    beside it (same name, ``.png``). ``args.command`` holds how the script was run (:func:`script_command` of the
    file that defines ``run``), for the result's record."""
    from .cli import script_command, write_json_atomic

    args = parser.parse_args(argv)
    args.command = script_command(inspect.getfile(run), argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    result = run(args)
    write_json_atomic(args.out, result)
    plot(result, os.path.splitext(args.out)[0] + ".png")
    logging.getLogger(parser.prog).info("wrote %s", args.out)


__all__ = ["STUDY_METHODS", "Study", "add_study_arguments", "add_task_arguments", "add_variant_wers", "load_study",
           "plot_variants", "run_study_main", "study_record", "task_settings"]
