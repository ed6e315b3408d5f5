"""benchmarks/adaptation.py end to end on the tiny corpus with a tiny model: shape and completeness of the JSON,
one adaptation run per (task, method, k), skipped methods, and bad settings that write nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tiny_models import save_tiny_checkpoint

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")

from hf_metatts.evaluation.benchmark import (  # noqa: E402
    BENCHMARK_METHODS,
    BenchmarkConfigError,
    BenchmarkSettings,
    run_benchmark,
)
from hf_metatts.evaluation.curves import render_markdown  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "adaptation.py"
SHOTS, STEPS = [1, 2], [0, 1, 3]


def _script():
    spec = importlib.util.spec_from_file_location("adaptation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from hf_metatts.data import build_corpus

    out = tmp_path_factory.mktemp("bench_corpus") / "voices"
    build_corpus(out, "tiny", num_workers=2)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench_model")
    save_tiny_checkpoint(path)
    return path


@pytest.mark.slow
def test_end_to_end_json_is_complete(corpus, checkpoint, tmp_path, monkeypatch):
    import hf_metatts.meta

    calls = []
    original = hf_metatts.meta.adapt_parameters

    def counting(*args, **kwargs):
        calls.append((kwargs["method"], kwargs["steps"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(hf_metatts.meta, "adapt_parameters", counting)
    out = tmp_path / "results" / "adaptation_speaker.json"
    code = _script().main(["--corpus", str(corpus), "--checkpoints", f"maml={checkpoint}", f"finetune={checkpoint}",
                           f"metasgd={checkpoint}", "--shots", *map(str, SHOTS), "--steps", *map(str, STEPS),
                           "--max-tasks", "2", "--metrics", "similarity", "mcd", "eer", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "| maml | 1 |" in out.with_suffix(".md").read_text()

    assert set(result["methods"]) == set(BENCHMARK_METHODS)
    assert result["methods"]["metasgd"]["status"] == "skipped"
    assert "meta-learner" in result["methods"]["metasgd"]["reason"]
    assert result["methods"]["meta_lstm"] == {"status": "skipped", "reason": "no checkpoint given",
                                              "checkpoint": None}
    tasks = [task["name"] for task in result["tasks"]]
    assert len(tasks) == 2 and all(task["heldout"] == 1 for task in result["tasks"])
    for method in ("maml", "finetune"):
        entry = result["methods"][method]
        assert entry["status"] == "ok"
        assert set(entry["results"]) == {str(k) for k in SHOTS}
        for k in SHOTS:
            assert set(entry["results"][str(k)]) == {str(s) for s in STEPS}
            for step in STEPS:
                cell = entry["results"][str(k)][str(step)]
                assert set(cell["per_task"]) == set(tasks), cell["skipped_tasks"]
                assert -1 <= cell["mean"]["similarity"] <= 1
                assert cell["mean"]["mcd"] > 0
                assert 0 <= cell["mean"]["eer"] <= 1
                losses = [values["support_loss"] for values in cell["per_task"].values()]
                assert all((loss is None) == (step == 0) for loss in losses)
    for bound in ("ground_truth", "resynthesis"):
        mean = result["upper_bounds"][bound]["mean"]
        assert 0 <= mean["eer"] <= 1 and -1 <= mean["similarity"] <= 1
        assert set(result["upper_bounds"][bound]["per_task"]) == set(tasks)
    assert result["upper_bounds"]["ground_truth"]["mean"]["similarity"] > 0.5
    # steps are cumulative: per (task, method, k) one run to the last step, plus the step-0 start
    assert sorted(calls) == sorted([(m, s) for m in ("maml", "finetune") for _ in tasks for _ in SHOTS
                                    for s in (0, max(STEPS))])


def test_a_single_task_reports_eer_as_not_available(corpus, checkpoint):
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0], max_tasks=1, eval_metrics=["similarity", "eer"])
    result = run_benchmark(settings)
    mean = result["methods"]["finetune"]["results"]["1"]["0"]["mean"]
    assert mean["eer"] is None and "at least 2 tasks" in mean["eer_note"]
    assert "n/a" in render_markdown(result)


def test_shots_beyond_the_support_pool_are_reported_per_task(corpus, checkpoint):
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[50],
                                 steps=[0], max_tasks=1, eval_metrics=["similarity"])
    cell = run_benchmark(settings)["methods"]["finetune"]["results"]["50"]["0"]
    assert cell["per_task"] == {} and cell["mean"]["similarity"] is None
    assert "k=50" in next(iter(cell["skipped_tasks"].values()))


@pytest.mark.parametrize("argv, message", [
    (["--checkpoints", "dreamer=DIR"], "Unknown methods"),
    (["--checkpoints", "maml"], "METHOD=VALUE"),
    (["--checkpoints", "maml=/nonexistent"], "No method could run"),
    (["--checkpoints", "maml=CKPT", "--split", "nope"], "no split"),
    (["--checkpoints", "maml=CKPT", "--task-column", "nope"], "no column"),
    (["--checkpoints", "maml=CKPT", "--heldout", "50"], "No usable"),
])
def test_bad_settings_raise_and_write_nothing(corpus, checkpoint, tmp_path, argv, message):
    argv = [item.replace("CKPT", str(checkpoint)) for item in argv]
    out = tmp_path / "out.json"
    with pytest.raises(ValueError, match=message):
        _script().main(["--corpus", str(corpus), *argv, "--shots", "1", "--steps", "0", "--out", str(out)])
    assert list(tmp_path.iterdir()) == []


def test_settings_validate_grids():
    with pytest.raises(BenchmarkConfigError, match="shots"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, shots=[0]).validate()
    with pytest.raises(BenchmarkConfigError, match="steps"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, steps=[-1]).validate()
