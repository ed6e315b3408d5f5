"""hf_metatts.evaluation.adaptation_study: the common frame of the adapt-then-read benchmark scripts."""

import argparse
import json

import pytest
import torch
from tiny_models import tiny_model, tiny_support_batch

from hf_metatts.evaluation.adaptation_study import Study, add_study_arguments, run_study_main


def _parser(out: str = "results/study.json") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study")
    add_study_arguments(parser, out)
    return parser


def test_the_arguments_default_to_the_bar_harness_adaptation():
    args = _parser().parse_args(["--checkpoint", "ckpt"])
    assert (args.method, args.lr, args.global_variance_weight) == ("zero_shot", None, 0.0)
    assert (args.split, args.languages, args.shots, args.steps, args.heldout) == ("test", ["en"], 5, 5, 3)
    assert args.out == "results/study.json" and args.tasks is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["--checkpoint", "ckpt", "--method", "finetune"])  # not a meta-learned method


def test_a_study_adapts_as_asked_and_the_same_way_each_time():
    model = tiny_model()
    study = Study(tasks=[], model=model, processor=None, head=None, audios={}, loss_term=None)
    args = _parser().parse_args(["--checkpoint", "ckpt", "--method", "maml", "--lr", "0.05", "--steps", "3"])
    support = tiny_support_batch(model)
    start = study.adapt(support, args, steps=0)
    adapted, again = study.adapt(support, args), study.adapt(support, args)
    assert set(start) == set(adapted) == set(model.adapted_parameter_names())
    assert all(torch.equal(start[name], model.get_parameter(name)) for name in start)  # 0 steps: the start
    assert any(not torch.equal(adapted[name], start[name]) for name in start)
    assert all(torch.equal(adapted[name], again[name]) for name in adapted)
    assert study.rate == model.config.sampling_rate


def test_main_writes_the_result_and_its_plot_beside_it(tmp_path):
    out = tmp_path / "deep" / "study.json"
    seen = {}

    def run(args):
        seen["threads"] = torch.get_num_threads()
        return {"checkpoint": args.checkpoint, "value": 0.5}

    def plot(result, path):
        with open(path, "wb") as handle:
            handle.write(b"png of " + str(result["value"]).encode())

    threads = torch.get_num_threads()
    try:
        run_study_main(_parser(), run, plot, ["--checkpoint", "ckpt", "--out", str(out), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert json.loads(out.read_text()) == {"checkpoint": "ckpt", "value": 0.5}
    assert (tmp_path / "deep" / "study.png").read_bytes() == b"png of 0.5"
    assert seen["threads"] == 1


def test_the_variant_plot_has_one_chart_per_measure(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from hf_metatts.evaluation.adaptation_study import plot_variants

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    result = {"results": {"plain": {"similarity": 0.7, "identification": 0.6},
                          "shifted": {"similarity": 0.65, "identification": 0.8}}}
    plot_variants(result, ("similarity", "identification"), "a title", str(tmp_path / "plot.png"), ylim=(0.0, 1.0))
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    axes = figures[0].axes
    assert [ax.get_title() for ax in axes] == ["similarity", "identification"]
    assert [bar.get_height() for bar in axes[1].patches] == [0.6, 0.8]
    assert axes[0].get_ylim() == (0.0, 1.0)
