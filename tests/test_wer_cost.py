"""benchmarks/wer_cost.py on made-up bar-harness results with a known line."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark_script

SPEAKERS = ["espeak:a", "espeak:b", "flite:c", "flite:d", "festival:e", "festival:f"]
BEFORE = [0.50, 0.40, 0.60, 0.30, 0.45, 0.55]
RECORDINGS = [0.90, 0.20, 0.30, 0.10, 0.45, 0.80]


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("wer_cost")


def bar_result(path, slope: float, intercept: float, recordings=RECORDINGS, method="zero_shot", with_truth=True):
    """A bar result whose WER after 5 steps is exactly before + slope * (recordings - before) + intercept."""
    after = [b + slope * (r - b) + intercept for b, r in zip(BEFORE, recordings)]

    def cell(values):
        return {"mean": {}, "per_task": {s: {"wer": v, "similarity": 0.7} for s, v in zip(SPEAKERS, values)}}

    data = {"settings": {"split": "test", "shots": [5]},
            "methods": {method: {"status": "ok", "results": {"5": {"0": cell(BEFORE), "5": cell(after)}}}},
            "upper_bounds": {"ground_truth": {"per_task": {s: {"wer": r} for s, r in zip(SPEAKERS, recordings)}}
                             if with_truth else {}}}
    path.write_text(json.dumps(data))
    return str(path)


def test_recovers_the_slope_and_intercept_of_an_exact_line(script, tmp_path):
    path = bar_result(tmp_path / "r.json", slope=0.4, intercept=0.1)
    row = script.run([path], "zero_shot", 5)["rows"][0]
    assert row["speakers"] == 6
    assert row["slope"] == pytest.approx(0.4, abs=1e-4)
    assert row["intercept"] == pytest.approx(0.1, abs=1e-4)
    # every resample lies on the same line, so the intervals close on the coefficients
    assert row["slope_interval"] == pytest.approx([0.4, 0.4], abs=1e-4)
    assert row["intercept_interval"] == pytest.approx([0.1, 0.1], abs=1e-4)
    assert row["correlation"] == pytest.approx(1.0, abs=1e-6)
    gaps = [r - b for r, b in zip(RECORDINGS, BEFORE)]
    assert row["mean_gap"] == pytest.approx(sum(gaps) / 6, abs=1e-4)
    assert row["mean_cost"] == pytest.approx(0.4 * sum(gaps) / 6 + 0.1, abs=1e-4)


def test_noise_widens_the_intervals_around_the_fit(script, tmp_path):
    path = bar_result(tmp_path / "r.json", slope=0.5, intercept=0.05)
    data = json.loads((tmp_path / "r.json").read_text())
    cells = data["methods"]["zero_shot"]["results"]["5"]["5"]["per_task"]
    for speaker, noise in zip(SPEAKERS, [0.03, -0.02, 0.04, -0.05, 0.01, -0.01]):
        cells[speaker]["wer"] += noise
    (tmp_path / "r.json").write_text(json.dumps(data))
    row = script.run([path], "zero_shot", 5, seed=3)["rows"][0]
    low, high = row["slope_interval"]
    assert low < row["slope"] < high and high - low > 0.01
    low, high = row["intercept_interval"]
    assert low < row["intercept"] < high


def test_the_command_writes_json_markdown_and_plot(script, tmp_path):
    first = bar_result(tmp_path / "a.json", slope=0.2, intercept=0.0)
    second = bar_result(tmp_path / "b.json", slope=0.6, intercept=0.12)
    out = tmp_path / "out" / "cost.json"
    assert script.main(["--results", first, second, "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [round(r["slope"], 3) for r in saved["rows"]] == [0.2, 0.6]
    assert saved["command"].startswith("python benchmarks/wer_cost.py --results")
    table = out.with_suffix(".md").read_text()
    assert "+0.120 [+0.120, +0.120]" in table and table.count("| `") == 2
    assert out.with_suffix(".png").stat().st_size > 0


def test_other_methods_and_steps_are_read(script, tmp_path):
    path = bar_result(tmp_path / "r.json", slope=0.3, intercept=0.02, method="finetune")
    assert script.run([path], "finetune", 5)["rows"][0]["slope"] == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize("case, message", [
    ("missing_method", "has no zero_shot"),
    ("missing_step", "was not run to 100 steps"),
    ("no_recordings", "no WER of the speakers' own recordings"),
    ("too_few", "only 3 speaker(s)"),
    ("not_a_result", "not a result of"),
    ("one_gap", "the same readability gap"),
])
def test_bad_inputs_are_refused_and_nothing_is_written(script, tmp_path, case, message):
    path = tmp_path / "r.json"
    steps, method = 5, "zero_shot"
    if case == "missing_method":
        bar_result(path, 0.4, 0.1, method="maml")
    elif case == "missing_step":
        bar_result(path, 0.4, 0.1)
        steps = 100
    elif case == "no_recordings":
        bar_result(path, 0.4, 0.1, with_truth=False)
    elif case == "too_few":
        bar_result(path, 0.4, 0.1)
        data = json.loads(path.read_text())
        data["upper_bounds"]["ground_truth"]["per_task"] = {s: {"wer": 0.2} for s in SPEAKERS[:3]}
        path.write_text(json.dumps(data))
    elif case == "one_gap":
        bar_result(path, 0.4, 0.1, recordings=[b + 0.1 for b in BEFORE])
    else:
        path.write_text(json.dumps({"something": "else"}))
    before = path.read_text()
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit, match="error: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        script.main(["--results", str(path), "--method", method, "--steps", str(steps), "--out", str(out)])
    assert not out.exists() and not out.with_suffix(".md").exists()
    assert path.read_text() == before
