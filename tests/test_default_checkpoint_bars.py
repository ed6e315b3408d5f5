"""benchmarks/default_checkpoint.py without models: the bars of a made-up merged result (pass, fail and not
measured), the speed JSONs, the model-index entries and the merging of per-method runs."""

from __future__ import annotations

import copy
import json

import pytest
from benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def bars():
    return load_benchmark_script("default_checkpoint", "default_checkpoint_bars")


def cell(**mean) -> dict:
    return {"mean": mean, "per_task": {"a": {}, "b": {}}, "skipped_tasks": {}}


def ok(cells: dict[int, dict], k: int = 5) -> dict:
    return {"status": "ok", "results": {str(k): {str(step): c for step, c in cells.items()}}}


RESULT = {
    "settings": {"corpus": "data/voices", "split": "test", "shots": [5]},
    "tasks": [{"name": "a"}, {"name": "b"}],
    "methods": {
        "metasgd": ok({0: cell(similarity=0.6, wer=0.30),
                       5: cell(similarity=0.8, wer=0.25, wer_real_pooled=0.2, wer_ratio_pooled=1.25, wer_ratio_tasks=2,
                               identification=0.95, identification_candidates=20)}),
        "finetune": ok({0: cell(similarity=0.6), 5: cell(similarity=0.65), 100: cell(similarity=0.75)}),
        "meta_lstm": ok({0: cell(similarity=0.5), 5: cell(similarity=0.7)}),
        "maml": {"status": "skipped", "reason": "checkpoint folder outputs/x does not exist",
                 "checkpoint": "outputs/x"},
    },
}


def test_bars_pass_fail_and_not_measured(bars):
    result = bars.evaluate_bars(RESULT)
    assert list(result) == ["intelligible", "adaptation_maml", "adaptation_meta_lstm", "identification",
                            "no_naturalness_loss", "rtf", "adaptation_seconds"]
    status = {name: bar["status"] for name, bar in result.items()}
    assert status == {"intelligible": "pass", "adaptation_maml": "pass", "adaptation_meta_lstm": "fail",
                      "identification": "pass", "no_naturalness_loss": "pass", "rtf": "not measured",
                      "adaptation_seconds": "not measured"}
    assert result["intelligible"]["measured"] == {"wer": 0.25, "recordings_wer": 0.2, "ratio": 1.25, "tasks": 2}
    maml = result["adaptation_maml"]["measured"]
    assert maml["metasgd_5_steps"] == 0.8 and maml["finetune_100_steps"] == 0.75 and maml["maml_5_steps"] is None
    assert "does not exist" in maml["maml_note"]
    assert result["identification"]["measured"] == {"accuracy": 0.95, "candidates": 20, "chance": 0.05}
    assert "not measured here" in result["rtf"]["reason"]
    table = bars.render_bars(result)
    assert table.count("\n") == 8 and "**FAIL**" in table and "| not measured here: give --speed-json" in table
    assert "| intelligible |" in table and "wer 0.25, recordings_wer 0.2, ratio 1.25, tasks 2" in table


def test_bars_fail_on_worse_numbers(bars):
    result = copy.deepcopy(RESULT)
    five = result["methods"]["metasgd"]["results"]["5"]["5"]["mean"]
    five.update(wer=0.4, wer_ratio_pooled=2.0, identification=0.5, similarity=0.7)
    status = {name: bar["status"] for name, bar in bars.evaluate_bars(result).items()}
    assert status["intelligible"] == status["identification"] == status["no_naturalness_loss"] == "fail"
    assert status["adaptation_maml"] == "fail"


def test_missing_methods_steps_shots_and_metrics_are_not_measured(bars):
    result = copy.deepcopy(RESULT)
    del result["methods"]["finetune"]["results"]["5"]["100"]
    del result["methods"]["meta_lstm"]
    five = result["methods"]["metasgd"]["results"]["5"]["5"]["mean"]
    for key in ("wer", "wer_real_pooled", "wer_ratio_pooled", "wer_ratio_tasks"):
        del five[key]
    five.update(identification=None, identification_note="identification needs at least 2 candidate tasks; got 1")
    out = bars.evaluate_bars(result)
    assert all(bar["status"] == "not measured" for bar in out.values())
    assert out["adaptation_maml"]["reason"] == "finetune was not run to 100 steps (its steps: [0, 5])"
    assert out["adaptation_meta_lstm"]["reason"].startswith("meta_lstm was not run")
    assert out["intelligible"]["reason"] == "metasgd at 5 steps: wer not measured"
    assert "at least 2 candidate" in out["identification"]["reason"]
    assert "metasgd at 5 steps: wer not measured" in out["no_naturalness_loss"]["reason"]
    assert "not run with k=10" in bars.evaluate_bars(RESULT, shots=10)["intelligible"]["reason"]
    failed = copy.deepcopy(RESULT)
    failed["methods"]["metasgd"] = {"status": "failed", "reason": "RuntimeError: out of memory"}
    assert "metasgd failed: RuntimeError" in bars.evaluate_bars(failed)["identification"]["reason"]


def test_speed_jsons(bars, tmp_path):
    synthesis = tmp_path / "synthesis_speed.json"
    synthesis.write_text(json.dumps({"machine": {"threads": 2}, "metatts_istft_rtf": 0.08}))
    adaptation = tmp_path / "voice_adaptation_speed.json"
    adaptation.write_text(json.dumps({"benchmark": "voice_adaptation_speed", "shots": 5, "steps": 5, "threads": 2,
                                      "maml": {"median_s": 1.2}}))
    unrelated = tmp_path / "other.json"
    unrelated.write_text("{}")
    speed = bars._read_speed([str(synthesis), str(adaptation), str(unrelated)])
    out = bars.evaluate_bars(RESULT, speed=speed)
    assert out["rtf"]["status"] == "fail" and out["rtf"]["measured"]["rtf"] == 0.08
    assert out["adaptation_seconds"]["status"] == "pass" and out["adaptation_seconds"]["measured"]["seconds"] == 1.2
    assert "vocoder_steps" not in out["adaptation_seconds"]["measured"]
    adaptation.write_text(json.dumps({"benchmark": "voice_adaptation_speed", "shots": 5, "steps": 5, "threads": 2,
                                      "maml": {"median_s": 2.4}, "vocoder_adaptation": {"steps": 50}}))
    out = bars.evaluate_bars(RESULT, speed=bars._read_speed([str(adaptation)]))
    assert out["adaptation_seconds"]["status"] == "fail"
    assert out["adaptation_seconds"]["measured"]["vocoder_steps"] == 50  # the vocoder's steps are in the time
    adaptation.write_text(json.dumps({"benchmark": "voice_adaptation_speed", "shots": 3, "steps": 5,
                                      "maml": {"median_s": 0.5}}))
    out = bars.evaluate_bars(RESULT, speed=bars._read_speed([str(adaptation), str(tmp_path / "missing.json")]))
    assert out["adaptation_seconds"]["status"] == "not measured" and "3-shot" in out["adaptation_seconds"]["reason"]
    assert out["rtf"]["status"] == "not measured" and "could not read" in out["rtf"]["reason"]


def test_model_index_entries_are_valid_eval_results(bars):
    from hf_metatts.model_cards import eval_results

    entries = bars.model_index(RESULT, 5, "hf-metatts/voices-default")
    assert [e["metric_type"] for e in entries] == ["speaker_similarity", "accuracy", "wer"]
    assert len(eval_results(entries)) == 3 and entries[0]["dataset_name"].startswith("held-out speakers of voices")


def test_merge_keeps_each_method_and_the_first_upper_bounds(bars):
    def run(method, steps, bound):
        settings = {"corpus": "c", "shots": [5], "steps": steps, "lrs": {"maml": 0.05} if method == "maml" else {},
                    "global_variance_weights": {"maml": 0.3} if method == "maml" else {},
                    "checkpoints": {method: f"ckpt/{method}"}}
        return {"method": method, "status": "ok", "result": {
            "schema_version": 1, "settings": settings, "library_version": "0", "tasks": [{"name": "a"}],
            "upper_bounds": {"ground_truth": bound}, "methods": {method: ok({s: cell(similarity=0.5) for s in steps})}}}

    checkpoints = {"finetune": "ckpt/finetune", "metasgd": "ckpt/metasgd", "maml": "ckpt/maml"}
    steps = {"finetune": [0, 100], "metasgd": [0, 5], "maml": [0, 5]}
    skipped = {"method": "metasgd", "status": "skipped", "reason": "no meta-learner"}
    merged = bars.merge([run("finetune", [0, 100], "first"), skipped, run("maml", [0, 5], "second")],
                        checkpoints, steps)
    assert merged["upper_bounds"] == {"ground_truth": "first"} and merged["upper_bounds_from"] == "finetune"
    assert merged["settings"]["steps"] == [0, 5, 100] and merged["settings"]["lrs"] == {"maml": 0.05}
    assert merged["settings"]["global_variance_weights"] == {"maml": 0.3}
    assert merged["methods"]["metasgd"] == {"status": "skipped", "reason": "no meta-learner",
                                            "checkpoint": "ckpt/metasgd"}
    assert set(merged["methods"]["maml"]["results"]["5"]) == {"0", "5"}
    assert set(merged["method_settings"]) == {"finetune", "maml"}
    assert bars.merge([skipped], {"metasgd": "ckpt/metasgd"}, steps) is None


def test_zero_shot_counts_for_the_second_adaptation_bar_and_best_picks_the_judged_method(bars):
    result = copy.deepcopy(RESULT)
    result["methods"]["zero_shot"] = ok({0: cell(similarity=0.7, wer=0.5),
                                         5: cell(similarity=0.76, wer=0.6, identification=0.5,
                                                 identification_candidates=20)})
    out = bars.evaluate_bars(result)
    second = out["adaptation_meta_lstm"]
    assert second["status"] == "pass" and "meta_lstm or zero_shot" in second["requirement"]
    assert second["measured"] == {"meta_lstm_5_steps": 0.7, "zero_shot_5_steps": 0.76, "finetune_100_steps": 0.75}
    assert out["identification"]["status"] == "pass"  # metasgd is judged by default
    judged = bars.evaluate_bars(result, best="zero_shot")
    assert judged["identification"]["status"] == "fail" and judged["identification"]["measured"]["accuracy"] == 0.5
    assert judged["no_naturalness_loss"]["status"] == "fail" and "zero_shot after 5" in judged["intelligible"][
        "requirement"]
    assert judged["adaptation_maml"] == out["adaptation_maml"]  # the MAML bar always judges metasgd
    del result["methods"]["meta_lstm"]
    result["methods"]["zero_shot"]["results"]["5"]["5"]["mean"]["similarity"] = 0.74
    second = bars.evaluate_bars(result)["adaptation_meta_lstm"]
    assert second["status"] == "fail" and second["measured"]["meta_lstm_note"] == "meta_lstm was not run"
    names = [e["metric_name"] for e in bars.model_index(result, 5, "d", best="zero_shot")]
    assert names and all("zero_shot steps" in n for n in names)


def test_reuse_merges_only_methods_not_run_now_and_refuses_other_settings_or_tasks(bars):
    settings = {"corpus": "data/voices", "task_column": "speaker_id", "split": "test", "shots": [5],
                "max_tasks": None, "heldout": 3, "seed": 0, "eval_metrics": ["similarity", "wer"],
                "languages": ["en"]}
    earlier = copy.deepcopy(RESULT)
    earlier["settings"] = {**settings, "steps": [0, 5, 100], "checkpoints": {"finetune": "ckpt/ft",
                           "metasgd": "ckpt/old", "meta_lstm": "ckpt/lstm", "maml": "outputs/x"},
                           "steps_per_method": {"finetune": [0, 5, 100], "metasgd": [0, 5], "meta_lstm": [0, 5]}}
    earlier["command"] = "python benchmarks/default_checkpoint.py ..."
    bars.check_reusable(earlier, settings, "old.json")
    with pytest.raises(ValueError, match="seed: 0 there, 1 now"):
        bars.check_reusable(earlier, {**settings, "seed": 1}, "old.json")
    # a result from before --support-durations read the corpus's timings: it serves a timings run, not an aligner one
    bars.check_reusable(earlier, {**settings, "support_durations": "timings"}, "old.json")
    with pytest.raises(ValueError, match="support_durations: 'timings' there, 'aligner' now"):
        bars.check_reusable(earlier, {**settings, "support_durations": "aligner"}, "old.json")
    # ... and with each checkpoint's own aligner search, not one chosen for every method
    bars.check_reusable(earlier, {**settings, "aligner_search": "own"}, "old.json")
    with pytest.raises(ValueError, match="aligner_search: 'own' there, 'skip_marks' now"):
        bars.check_reusable(earlier, {**settings, "aligner_search": "skip_marks"}, "old.json")
    # ... and with each checkpoint's own duration weight
    bars.check_reusable(earlier, {**settings, "aligner_duration_weight": None}, "old.json")
    with pytest.raises(ValueError, match="aligner_duration_weight: None there, 30.0 now"):
        bars.check_reusable(earlier, {**settings, "aligner_duration_weight": 30.0}, "old.json")
    now = {"settings": {**settings, "steps": [0, 5], "checkpoints": {"metasgd": "ckpt/new"},
                        "steps_per_method": {"metasgd": [0, 5]}},
           "method_settings": {}, "tasks": copy.deepcopy(RESULT["tasks"]),
           "methods": {"metasgd": ok({0: cell(similarity=0.1), 5: cell(similarity=0.2)})}}
    kept = copy.deepcopy(now["methods"]["metasgd"])
    assert bars.add_reused(now, earlier, "old.json") == ["finetune", "meta_lstm"]
    assert now["methods"]["metasgd"] == kept  # what ran now wins; the skipped maml is not copied
    assert now["methods"]["finetune"] == earlier["methods"]["finetune"] and "maml" not in now["methods"]
    assert now["settings"]["checkpoints"] == {"metasgd": "ckpt/new", "finetune": "ckpt/ft", "meta_lstm": "ckpt/lstm"}
    assert now["settings"]["steps"] == [0, 5, 100] and now["reused"]["from"] == "old.json"
    assert now["reused"]["measured_by"] == {"finetune": earlier["command"], "meta_lstm": earlier["command"]}
    # reusing a result that itself reused: each method keeps the command that measured it
    later = {**copy.deepcopy(now), "methods": {"zero_shot": ok({5: cell(similarity=0.3)})},
             "settings": {**now["settings"], "checkpoints": {"zero_shot": "z"}, "steps_per_method": {}}}
    now["command"] = "python benchmarks/default_checkpoint.py --checkpoints metasgd=ckpt/new --reuse old.json"
    bars.add_reused(later, now, "now.json")
    assert later["reused"]["measured_by"] == {"metasgd": now["command"], "finetune": earlier["command"],
                                              "meta_lstm": earlier["command"]}
    other = copy.deepcopy(now)
    other["tasks"] = [{"name": "a"}]
    with pytest.raises(ValueError, match="other tasks"):
        bars.add_reused(other, earlier, "old.json")


def test_maml_bar_counts_only_maml_runs_from_their_meta_learned_start(bars):
    def learner(method, zero_shot_start=False):
        return {"method": method, "inner_optimizer": "adam", "inner_lr": 0.03, "zero_shot_start": zero_shot_start}

    result = copy.deepcopy(RESULT)
    result["methods"]["metasgd"]["results"]["5"]["5"]["mean"]["similarity"] = 0.7  # below finetune@100 (0.75)
    result["methods"]["maml"] = ok({0: cell(similarity=0.6), 5: cell(similarity=0.76)})
    # an older result (no meta-learner recorded): its maml ran on the Meta-SGD checkpoint and does not count
    old = bars.evaluate_bars(result)["adaptation_maml"]
    assert old["status"] == "fail" and old["measured"]["maml_5_steps"] == 0.76
    assert "recorded no meta-learner" in old["measured"]["maml_note"]
    # plain SGD steps on a Meta-SGD checkpoint do not count either
    result["methods"]["maml"]["meta_learner"] = learner("metasgd")
    stepped = bars.evaluate_bars(result)["adaptation_maml"]
    assert stepped["status"] == "fail" and "not a checkpoint meta-trained as maml" in stepped["measured"]["maml_note"]
    # a checkpoint meta-trained as maml, from its meta-learned start, counts
    result["methods"]["maml"]["meta_learner"] = learner("maml")
    counted = bars.evaluate_bars(result)["adaptation_maml"]
    assert counted["status"] == "pass" and "maml_note" not in counted["measured"]
    assert counted["threshold"] == "metasgd@5 or maml@5 >= finetune@100"
    # one that starts from the support encoder's voice is the zero_shot bar's, whatever its method
    result["methods"]["maml"]["meta_learner"] = learner("maml", zero_shot_start=True)
    result["methods"]["metasgd"]["meta_learner"] = learner("metasgd", zero_shot_start=True)
    encoder = bars.evaluate_bars(result)["adaptation_maml"]
    assert encoder["status"] == "not measured"
    assert "zero_shot_start" in encoder["measured"]["maml_note"] and "zero_shot_start" in encoder["reason"]
    assert encoder["measured"]["metasgd_5_steps"] == 0.7 and encoder["measured"]["maml_5_steps"] == 0.76


def test_a_bad_global_variance_weight_is_refused_before_any_run(bars, tmp_path, capsys):
    out = tmp_path / "bars.json"
    with pytest.raises(SystemExit):
        bars.main(["--checkpoints", "zero_shot=outputs/x", "--global-variance-weight", "zero_shot=-1",
                   "--out", str(out)])
    assert "--global-variance-weight" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("items, message", [
    (["--vocoder-steps", "zero_shot=-5"], "--vocoder-steps {'zero_shot': -5}: give whole numbers >= 0"),
    (["--vocoder-steps", "zero_shot=many"], "--vocoder-steps takes METHOD=N"),
    (["--vocoder-lr", "zero_shot=2"], "--vocoder-lr {'zero_shot': 2.0}: give learning rates in (0, 1)"),
])
def test_bad_vocoder_adaptation_settings_are_refused_before_any_run(bars, tmp_path, capsys, items, message):
    out = tmp_path / "bars.json"
    with pytest.raises(SystemExit):
        bars.main(["--checkpoints", "zero_shot=outputs/x", *items, "--out", str(out)])
    assert message in capsys.readouterr().err and not out.exists()


def with_per_task(result: dict, method: str, step: int, key: str, values: dict) -> None:
    per_task = result["methods"][method]["results"]["5"][str(step)]["per_task"]
    for task, value in values.items():
        per_task.setdefault(task, {})[key] = value


def test_comparative_bars_carry_the_paired_difference_and_its_interval(bars):
    result = copy.deepcopy(RESULT)
    result["tasks"] = [{"name": n} for n in "abcdef"]
    with_per_task(result, "metasgd", 5, "similarity", dict(zip("abcdef", [0.82, 0.78, 0.84, 0.77, 0.80, 0.79])))
    with_per_task(result, "finetune", 100, "similarity", dict(zip("abcdef", [0.76, 0.74, 0.77, 0.73, 0.75, 0.75])))
    with_per_task(result, "metasgd", 0, "wer", dict(zip("abcdef", [0.3, 0.2, 0.4, 0.3, 0.3, 0.3])))
    with_per_task(result, "metasgd", 5, "wer", dict(zip("abcdef", [0.2, 0.3, 0.4, 0.2, 0.2, 0.2])))
    out = bars.evaluate_bars(result)
    maml = out["adaptation_maml"]["measured"]
    assert maml["difference"] == pytest.approx(0.05, abs=1e-4) and maml["tasks_above_zero"] == "6/6"
    low, high = maml["difference_ci95"]
    assert 0 < low < maml["difference"] < high
    natural = out["no_naturalness_loss"]["measured"]
    assert natural["difference"] == pytest.approx(-0.05, abs=1e-4) and natural["tasks_above_zero"] == "1/6"
    assert natural["difference_ci95"][0] < natural["difference"] < natural["difference_ci95"][1]
    # the interval is reported, never the verdict's judge: the point estimates decide as before
    assert out["adaptation_maml"]["status"] == out["no_naturalness_loss"]["status"] == "pass"
    assert "difference_ci95 [" in bars.render_bars(out)
    # the second bar compares its best counted method (meta_lstm here, 0.7, with two tasks) with fine-tuning
    with_per_task(result, "meta_lstm", 5, "similarity", {"a": 0.7, "b": 0.7})
    second = bars.evaluate_bars(result)["adaptation_meta_lstm"]["measured"]
    assert second["difference"] == pytest.approx(-0.05) and second["tasks_above_zero"] == "0/2"
    # a result without per-task numbers (RESULT) reports the means alone
    assert "difference" not in bars.evaluate_bars(RESULT)["adaptation_maml"]["measured"]


def test_rescore_checks_the_bars_of_an_earlier_result_again(bars, tmp_path):
    earlier = copy.deepcopy(RESULT)
    earlier["best"] = "metasgd"
    earlier["settings"].update(steps=[0, 5, 100], eval_metrics=["similarity", "wer"], heldout=3,
                               task_column="speaker_id")
    earlier["upper_bounds"], earlier["seconds"] = {}, 1.0
    for method, entry in earlier["methods"].items():
        entry.setdefault("checkpoint", f"outputs/{method}")
    with_per_task(earlier, "metasgd", 5, "similarity", {"a": 0.8, "b": 0.82})
    with_per_task(earlier, "finetune", 100, "similarity", {"a": 0.75, "b": 0.74})
    earlier["bars"] = {"adaptation_maml": {"status": "stale", "measured": {}}}
    source = tmp_path / "earlier.json"
    source.write_text(json.dumps(earlier))
    out = tmp_path / "again.json"
    assert bars.main(["--rescore", str(source), "--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["methods"] == earlier["methods"] and again["best"] == "metasgd"
    assert again["bars"]["adaptation_maml"]["status"] == "pass"
    assert again["bars"]["adaptation_maml"]["measured"]["difference"] == pytest.approx(0.065)
    assert again["rescore_command"].endswith(f"--rescore {source} --out {out}")
    assert (tmp_path / "again.md").read_text().startswith("## Bars of the default checkpoint")
    assert json.loads(source.read_text()) == earlier  # the earlier result is read, not rewritten


def test_rescore_refuses_a_file_that_is_not_a_result(bars, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"metatts_istft_rtf": 0.01}))
    out = tmp_path / "again.json"
    with pytest.raises(SystemExit):
        bars.main(["--rescore", str(other), "--out", str(out)])
    assert "not a result of this script" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bars.main(["--rescore", str(tmp_path / "missing.json"), "--out", str(out)])
    assert not out.exists() and json.loads(other.read_text()) == {"metatts_istft_rtf": 0.01}


def _rescorable(tmp_path, checkpoint_vocoder: str | None = None) -> dict:
    """An earlier result as --rescore reads it; finetune's checkpoint folder exists when its vocoder is given."""
    earlier = copy.deepcopy(RESULT)
    earlier["settings"].update(steps=[0, 5, 100], eval_metrics=["similarity", "wer"], heldout=3,
                               task_column="speaker_id")
    earlier["upper_bounds"], earlier["seconds"], earlier["best"] = {}, 1.0, "metasgd"
    for method, entry in earlier["methods"].items():
        entry.setdefault("checkpoint", str(tmp_path / method))
    if checkpoint_vocoder:
        (tmp_path / "finetune").mkdir()
        (tmp_path / "finetune" / "config.json").write_text(json.dumps({"vocoder_type": checkpoint_vocoder}))
    return earlier


def test_rescore_records_the_vocoder_each_method_was_heard_through(bars, tmp_path):
    earlier = _rescorable(tmp_path, checkpoint_vocoder="griffin_lim")
    source = tmp_path / "earlier.json"
    source.write_text(json.dumps(earlier))
    out = tmp_path / "again.json"
    assert bars.main(["--rescore", str(source), "--heard-through", "finetune=griffin_lim", "metasgd=istft",
                      "--out", str(out)]) == 0
    again = json.loads(out.read_text())
    vocoders = {method: entry.get("vocoder") for method, entry in again["methods"].items()}
    assert vocoders == {"finetune": "griffin_lim", "metasgd": "istft", "meta_lstm": None, "maml": None}
    assert {k: v for k, v in again["methods"]["metasgd"].items() if k != "vocoder"} == earlier["methods"]["metasgd"]
    assert "--heard-through finetune=griffin_lim metasgd=istft" in again["rescore_command"]


@pytest.mark.parametrize("items, message", [
    (["finetune=istft"], "spoke through griffin_lim"),  # its checkpoint folder's config says otherwise
    (["metasgd=wavenet"], "the vocoder is one of"),
    (["maml=griffin_lim"], "maml has no measurement"),
    (["metasgd"], "METHOD=VALUE"),
])
def test_rescore_refuses_a_vocoder_it_cannot_stand_behind_and_writes_nothing(bars, tmp_path, capsys, items, message):
    earlier = _rescorable(tmp_path, checkpoint_vocoder="griffin_lim")
    source = tmp_path / "earlier.json"
    source.write_text(json.dumps(earlier))
    out = tmp_path / "again.json"
    with pytest.raises(SystemExit):
        bars.main(["--rescore", str(source), "--heard-through", *items, "--out", str(out)])
    assert message in capsys.readouterr().err
    assert not out.exists() and json.loads(source.read_text()) == earlier


def test_heard_through_without_rescore_is_refused(bars, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bars.main(["--checkpoints", f"finetune={tmp_path}", "--heard-through", "finetune=griffin_lim",
                   "--out", str(tmp_path / "r.json")])
    assert "give it with --rescore" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
