"""benchmarks/shots_curve.py on made-up results of default_checkpoint.py measured at several shot counts."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark_script

SPEAKERS = ["espeak:a", "espeak:b", "flite:c", "flite:d", "festival:e"]
SETTINGS = {"corpus": "data/voices", "split": "test", "task_column": "speaker_id", "languages": ["en"], "heldout": 3,
            "seed": 0, "max_tasks": None}


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("shots_curve")


def cell(similarities, wer):
    per_task = {s: {"similarity": v, "wer": wer} for s, v in zip(SPEAKERS, similarities)}
    return {"mean": {"similarity": sum(similarities) / len(similarities), "wer": wer, "identification": 0.5},
            "per_task": per_task}


def result(path, shots: int, methods: dict[str, dict[int, tuple[list[float], float]]], **settings):
    data = {"settings": {**SETTINGS, **settings, "shots": [shots]},
            "methods": {method: {"status": "ok", "results": {str(shots): {str(steps): cell(*values)
                                                                          for steps, values in by_step.items()}}}
                        for method, by_step in methods.items()}}
    path.write_text(json.dumps(data))
    return str(path)


def test_shot_counts_join_into_rows_and_paired_comparisons(script, tmp_path):
    one = result(tmp_path / "one.json", 1, {
        "zero_shot": {0: ([0.6] * 5, 0.50), 5: ([0.70, 0.72, 0.68, 0.69, 0.71], 0.6)},
        "finetune": {100: ([0.65, 0.66, 0.64, 0.70, 0.66], 0.55)}})
    five = result(tmp_path / "five.json", 5, {"zero_shot": {5: ([0.80, 0.82, 0.78, 0.79, 0.81], 0.62)}})
    also_five = result(tmp_path / "five_again.json", 5, {"zero_shot": {5: ([0.1] * 5, 0.9)},
                                                         "finetune": {100: ([0.75] * 5, 0.6)}})
    out = tmp_path / "curve.json"
    assert script.main(["--results", one, five, also_five, "--compare", "zero_shot@5", "finetune@100",
                        "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    rows = {(r["method"], r["shots"], r["steps"]): r for r in written["rows"]}
    assert sorted(rows) == [("finetune", 1, 100), ("finetune", 5, 100), ("zero_shot", 1, 0), ("zero_shot", 1, 5),
                            ("zero_shot", 5, 5)]
    assert rows[("zero_shot", 5, 5)]["similarity"] == pytest.approx(0.80)  # the first file given is kept
    assert rows[("zero_shot", 5, 5)]["from"] == five and rows[("zero_shot", 5, 5)]["tasks"] == 5
    assert rows[("finetune", 5, 100)]["from"] == also_five
    comparisons = {c["shots"]: c["paired"] for c in written["comparisons"]}
    assert comparisons[1]["mean"] == pytest.approx(0.70 - 0.662) and comparisons[1]["above"] == 4
    assert comparisons[5]["mean"] == pytest.approx(0.05) and comparisons[5]["low"] > 0
    table = (tmp_path / "curve.md").read_text()
    assert "| zero_shot | 5 | 5 | 0.800 |" in table and "| 5 | zero_shot@5 | finetune@100 |" in table
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_results_on_other_held_out_sentences_or_no_result_are_refused(script, tmp_path, capsys):
    one = result(tmp_path / "one.json", 1, {"zero_shot": {5: ([0.7] * 5, 0.6)}})
    other = result(tmp_path / "other.json", 5, {"zero_shot": {5: ([0.8] * 5, 0.6)}}, heldout=6)
    out = tmp_path / "curve.json"
    with pytest.raises(SystemExit):
        script.main(["--results", one, other, "--out", str(out)])
    assert "heldout=6 where" in capsys.readouterr().err and not out.exists()
    (tmp_path / "rules.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(SystemExit):
        script.main(["--results", one, str(tmp_path / "rules.json"), "--out", str(out)])
    assert "not a result of benchmarks/default_checkpoint.py" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit, match="write METHOD@STEPS"):
        script.main(["--results", one, "--compare", "zero_shot", "finetune@100", "--out", str(out)])
    assert not out.exists()
