"""benchmarks/paired_comparison.py on made-up results of adaptation_rules.py and default_checkpoint.py."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark_script

SPEAKERS = ["espeak:a", "espeak:b", "flite:c", "flite:d", "festival:e"]


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("paired_comparison")


def rules_result(path, rules: dict[str, list[float]], split="validation", shots=5):
    data = {"checkpoint": "outputs/x", "split": split, "shots": shots,
            "results": {rule: {"per_task": {s: {"similarity": v, "mcd": 10.0 - v} for s, v in zip(SPEAKERS, values)}}
                        for rule, values in rules.items()}}
    path.write_text(json.dumps(data))
    return str(path)


def bars_result(path):
    def cell(values):
        return {"mean": {}, "per_task": {s: {"similarity": v} for s, v in zip(SPEAKERS, values)}}

    data = {"settings": {"split": "validation", "shots": [5]},
            "methods": {"finetune": {"status": "ok", "results": {"5": {"100": cell([0.70, 0.72, 0.60, 0.62, 0.65])}}},
                        "metasgd": {"status": "ok", "results": {"5": {"5": cell([0.71, 0.70, 0.61, 0.60, 0.66])}}}}}
    path.write_text(json.dumps(data))
    return str(path)


def test_candidates_against_a_baseline_with_json_and_markdown(script, tmp_path):
    base = rules_result(tmp_path / "base.json", {"learned": [0.80, 0.82, 0.70, 0.72, 0.75]})
    better = rules_result(tmp_path / "better.json", {"learned": [0.83, 0.84, 0.73, 0.74, 0.78]})
    two = rules_result(tmp_path / "two.json", {"learned": [0.79, 0.83, 0.69, 0.73, 0.74],
                                               "adam:0.01": [0.7] * 5})
    out = tmp_path / "cmp.json"
    assert script.main(["--baseline", base, "--candidates", better, f"{two}#learned", f"{two}#adam:0.01",
                        "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["candidate"] for r in rows] == [better, f"{two}#learned", f"{two}#adam:0.01"]
    gain = rows[0]["paired"]
    assert gain["mean"] == pytest.approx(0.026) and gain["above"] == 5 and gain["low"] > 0
    assert rows[0]["candidate_mean"] == pytest.approx(0.784) and rows[0]["baseline_mean"] == pytest.approx(0.758)
    mixed = rows[1]["paired"]
    assert mixed["low"] < 0 < mixed["high"] and (mixed["above"], mixed["below"]) == (2, 3)
    assert rows[2]["paired"]["mean"] == pytest.approx(-0.058)
    table = (tmp_path / "cmp.md").read_text()
    assert "| difference | 95% interval |" in table and "+0.0260" in table


def test_bar_results_by_method_and_step_and_another_metric(script, tmp_path):
    bars = bars_result(tmp_path / "bars.json")
    row = script.compare(script.load_selection(f"{bars}#finetune@100", "similarity"),
                         script.load_selection(f"{bars}#metasgd@5", "similarity"))
    assert row["paired"]["mean"] == pytest.approx(-0.002) and row["left_out"] == 0
    base = rules_result(tmp_path / "base.json", {"learned": [0.8, 0.8, 0.7, 0.7, 0.7]})
    mcd = script.load_selection(base, "mcd")
    assert mcd["values"]["flite:c"] == pytest.approx(9.3)


def test_study_results_keep_one_table_per_measure_and_are_read_by_variant(script, tmp_path):
    def variant(values, wers):
        return {"similarity": sum(values) / len(values), "similarity_per_task": dict(zip(SPEAKERS, values)),
                "wer_per_task": dict(zip(SPEAKERS, wers)), "identification": 0.8}

    data = {"checkpoint": "ckpt", "split": "validation", "shots": 5,
            "results": {"vocoder": variant([0.80, 0.82, 0.70, 0.72, 0.75], [0.5] * 5),
                        "vocoder_adapted_head": variant([0.83, 0.84, 0.73, 0.74, 0.78], [0.6, 0.4, 0.5, 0.5, None])}}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(data))
    row = script.compare(script.load_selection(f"{path}#vocoder", "similarity"),
                         script.load_selection(f"{path}#vocoder_adapted_head", "similarity"))
    assert row["paired"]["mean"] == pytest.approx(0.026) and row["paired"]["above"] == 5
    wer = script.load_selection(f"{path}#vocoder_adapted_head", "wer")
    assert wer["values"] == {"espeak:a": 0.6, "espeak:b": 0.4, "flite:c": 0.5, "flite:d": 0.5}
    assert (wer["split"], wer["shots"]) == ("validation", 5)
    with pytest.raises(script.ResultSelectionError, match="no speaker has 'mcd'"):
        script.load_selection(f"{path}#vocoder", "mcd")


def test_bad_items_are_refused_with_what_to_do_and_nothing_written(script, tmp_path, capsys):
    base = rules_result(tmp_path / "base.json", {"learned": [0.8] * 5})
    two = rules_result(tmp_path / "two.json", {"learned": [0.8] * 5, "start": [0.6] * 5})
    test_split = rules_result(tmp_path / "test.json", {"learned": [0.8] * 5}, split="test")
    bars = bars_result(tmp_path / "bars.json")
    unrelated = tmp_path / "speed.json"
    unrelated.write_text(json.dumps({"metatts_istft_rtf": 0.01}))
    out = tmp_path / "cmp.json"
    cases = [([two], "name one as"), ([f"{two}#adam:0.1"], "has no rule 'adam:0.1'"),
             ([test_split], "split='test'"), ([bars], "METHOD@STEP"), ([f"{bars}#finetune@5"], "no finetune at 5"),
             ([str(unrelated)], "not a result of"), ([str(tmp_path / "missing.json")], "cannot read")]
    for candidates, message in cases:
        with pytest.raises(SystemExit):
            script.main(["--baseline", base, "--candidates", *candidates, "--out", str(out)])
        assert message in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(SystemExit):
        script.main(["--baseline", base, "--candidates", base, "--metric", "wer", "--out", str(out)])
    assert "no speaker has 'wer'" in capsys.readouterr().err and not out.exists()


def test_families_keep_only_their_speakers(script, tmp_path):
    base = rules_result(tmp_path / "base.json", {"learned": [0.80, 0.82, 0.70, 0.72, 0.75]})
    other = rules_result(tmp_path / "other.json", {"learned": [0.90, 0.92, 0.69, 0.71, 0.74]})
    out = tmp_path / "cmp.json"
    assert script.main(["--baseline", base, "--candidates", other, "--families", "flite", "festival",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["families"] == ["flite", "festival"]
    row = result["rows"][0]
    assert row["paired"]["tasks"] == 3 and row["paired"]["mean"] == pytest.approx(-0.01)
    assert "of the families flite, festival" in (tmp_path / "cmp.md").read_text()
    assert script.load_selection(other, "similarity", ["espeak"])["values"] == {"espeak:a": 0.90, "espeak:b": 0.92}
    with pytest.raises(script.ResultSelectionError, match="no speaker among the families"):
        script.load_selection(other, "similarity", ["piper"])


def test_a_baseline_of_several_draws_is_each_speakers_mean(script, tmp_path):
    first = rules_result(tmp_path / "first.json", {"learned": [0.80, 0.82, 0.70, 0.72, 0.75]})
    second = rules_result(tmp_path / "second.json", {"learned": [0.84, 0.80, 0.74, 0.70, 0.79]})
    candidate = rules_result(tmp_path / "candidate.json", {"learned": [0.83, 0.82, 0.73, 0.72, 0.78]})
    out = tmp_path / "cmp.json"
    assert script.main(["--baseline", first, second, "--candidates", candidate, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["baseline"] == [first, second]
    assert result["baseline_draw_means"] == {first: pytest.approx(0.758), second: pytest.approx(0.774)}
    assert result["baseline_draw_sd"] == pytest.approx(0.0113, abs=1e-4)  # sample sd of 0.758 and 0.774
    row = result["rows"][0]
    assert row["baseline_mean"] == pytest.approx(0.766) and row["candidate_mean"] == pytest.approx(0.776)
    assert row["paired"]["mean"] == pytest.approx(0.010) and row["paired"]["tasks"] == 5
    table = (tmp_path / "cmp.md").read_text()
    assert "per-speaker mean of 2 draws" in table and f"`{second}` 0.7740" in table
    assert (tmp_path / "cmp.png").stat().st_size > 0
    one = script.main(["--baseline", first, "--candidates", candidate, "--out", str(tmp_path / "one.json")])
    assert one == 0 and json.loads((tmp_path / "one.json").read_text())["baseline"] == first


def test_a_candidate_of_several_draws_joined_by_commas(script, tmp_path):
    base = rules_result(tmp_path / "base.json", {"learned": [0.80, 0.82, 0.70, 0.72, 0.75]})
    first = rules_result(tmp_path / "first.json", {"learned": [0.82, 0.82, 0.72, 0.72, 0.76]})
    second = rules_result(tmp_path / "second.json", {"learned": [0.80, 0.84, 0.70, 0.76, 0.76]})
    out = tmp_path / "cmp.json"
    assert script.main(["--baseline", base, "--candidates", f"{first},{second}", first, "--out", str(out)]) == 0
    both, alone = json.loads(out.read_text())["rows"]
    assert both["candidate"] == f"{first},{second}" and alone["candidate"] == first
    assert both["candidate_draw_means"] == {first: pytest.approx(0.768), second: pytest.approx(0.772)}
    assert both["candidate_draw_sd"] == pytest.approx(0.0028, abs=1e-4)
    assert both["candidate_mean"] == pytest.approx(0.770) and both["paired"]["mean"] == pytest.approx(0.012)
    assert alone["candidate_draw_means"] is None and alone["paired"]["mean"] == pytest.approx(0.010)
    assert "per-speaker mean of 2 draws" in (tmp_path / "cmp.md").read_text()


def test_draws_of_a_baseline_must_be_measured_alike(script, tmp_path, capsys):
    first = rules_result(tmp_path / "first.json", {"learned": [0.8] * 5})
    on_test = rules_result(tmp_path / "test.json", {"learned": [0.8] * 5}, split="test")
    three_shots = rules_result(tmp_path / "shots.json", {"learned": [0.8] * 5}, shots=3)
    out = tmp_path / "cmp.json"
    for draws, message in (([first, on_test], "split='test'"), ([first, three_shots], "shots=3"),
                           ([first, first], "names a draw twice")):
        with pytest.raises(SystemExit):
            script.main(["--baseline", *draws, "--candidates", first, "--out", str(out)])
        assert message in capsys.readouterr().err and not out.exists()
        with pytest.raises(SystemExit):
            script.main(["--baseline", first, "--candidates", ",".join(draws), "--out", str(out)])
        assert message in capsys.readouterr().err and not out.exists()
    apart = {"values": {"espeak:a": 0.8, "espeak:b": 0.7}, "split": "validation", "shots": 5}
    with pytest.raises(script.ResultSelectionError, match="share 1 speaker"):
        script.mean_over_draws([{**apart, "item": "x"}, {**apart, "item": "y", "values": {"espeak:a": 0.7}}])
