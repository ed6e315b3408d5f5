"""benchmarks/adaptation_rules.py: rule parsing (bad rules are refused with the format), and one run on the tiny
corpus with a tiny Meta-SGD checkpoint: every rule starts from the same voice and the JSON says what each did."""

import json
import shlex

import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint, tiny_model

from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")



@pytest.fixture(scope="module")
def rules():
    return load_benchmark_script("adaptation_rules")


def test_rules_parse_with_default_and_explicit_steps(rules):
    assert rules.parse_rule("learned", 5) == rules.Rule("learned", "learned")
    assert rules.parse_rule("start", 5) == rules.Rule("start", "start", steps=0)
    assert rules.parse_rule("adam:0.03", 5) == rules.Rule("adam:0.03", "adam", 0.03, 5)
    assert rules.parse_rule("sgd:0.3:20", 5) == rules.Rule("sgd:0.3:20", "sgd", 0.3, 20)
    assert rules.parse_rule("learned+gv0.5", 5) == rules.Rule("learned+gv0.5", "learned", global_variance_weight=0.5)
    assert rules.parse_rule("adam:0.02+gv2", 5) == rules.Rule("adam:0.02+gv2", "adam", 0.02, 5, 2.0)
    assert rules.parse_rule("learned+gv0.3+ct0.1", 5) == rules.Rule("learned+gv0.3+ct0.1", "learned",
                                                                     global_variance_weight=0.3, content_weight=0.1)
    assert rules.parse_rule("adam:0.02+ct1", 5) == rules.Rule("adam:0.02+ct1", "adam", 0.02, 5, content_weight=1.0)
    assert rules.parse_rule("learned+pm", 5) == rules.Rule("learned+pm", "learned", match_prosody=True)
    assert rules.parse_rule("start+pm", 5) == rules.Rule("start+pm", "start", steps=0, match_prosody=True)
    assert rules.parse_rule("learned+gv0.3+pm", 5) == rules.Rule("learned+gv0.3+pm", "learned",
                                                                  global_variance_weight=0.3, match_prosody=True)


def test_prosody_matching_is_asked_for_once(rules):
    with pytest.raises(SystemExit, match="'\\+pm' at most once"):
        rules.parse_rule("learned+pm+pm", 5)


@pytest.mark.parametrize("text", ["learned+gv", "learned+gv-1", "learned+gv0", "adam:0.1+id0.5", "learned+gvinf",
                                  "learned+ct", "learned+ct0", "learned+gv1+gv2", "learned+gv1+"])
def test_a_bad_suffix_is_refused_with_its_format(rules, text):
    with pytest.raises(SystemExit, match=r"'\+gvW' and '\+ctW', each at most once, with a weight W > 0"):
        rules.parse_rule(text, 5)


@pytest.mark.parametrize("text", ["start+gv0.3", "start+ct0.1"])
def test_the_start_rule_takes_no_term(rules, text):
    with pytest.raises(SystemExit, match="'start' takes no step"):
        rules.parse_rule(text, 5)


@pytest.mark.parametrize("text", ["adam", "start:0.1", "adagrad:0.1", "adam:fast", "adam:-0.1", "sgd:0.1:0",
                                  "adam:0.1:2:3"])
def test_a_bad_rule_is_refused_with_the_format(rules, text):
    with pytest.raises(SystemExit, match="adam:LR\\[:STEPS\\]"):
        rules.parse_rule(text, 5)


def test_a_rule_limited_to_some_parameters_leaves_the_others_at_their_start(rules):
    model = tiny_model().eval()
    names = model.adapted_parameter_names()
    own = dict(model.named_parameters())
    start = {name: own[name].detach().clone() + 0.01 for name in names}
    generator = torch.Generator().manual_seed(0)
    support = {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
               "attention_mask": torch.ones(2, 6, dtype=torch.long),
               "labels": torch.randn(2, 24, model.config.num_mel_bins, generator=generator) - 4.0,
               "labels_attention_mask": torch.ones(2, 24, dtype=torch.long)}
    updated = ["voice.speaker_vector"]
    assert "voice.speaker_vector" in names and len(names) > 1
    params = rules.adapt_with(rules.Rule("adam:0.05", "adam", 0.05, 2), model, None, support, start, 2, updated)
    assert set(params) == set(names)
    assert not torch.equal(params["voice.speaker_vector"], start["voice.speaker_vector"])
    assert all(torch.equal(params[name], start[name]) for name in names if name not in updated)
    assert all(torch.equal(own[name], start[name] - 0.01) for name in names)  # the model itself is untouched


def _tiny_head(model, method="maml"):
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    return MetaLearnerHead(MetaLearnerConfig(method=method, inner_lr=0.05, adapted_parameter_names=names), shapes)


def test_a_parameters_pattern_outside_the_adapted_set_is_refused_or_warned_of(rules, caplog):
    """--parameters only chooses within the adapted set: a pattern matching none of it is refused by name (it used
    to be dropped while the others held), and one that also reaches parameters outside it is warned of, pointing
    to --extra-parameters ('decoder.layers.*' there once adapted the set's norm biases alone)."""
    model = tiny_model().eval()
    head = _tiny_head(model)
    names = head.config.adapted_parameter_names
    with caplog.at_level("WARNING", logger="adaptation_rules"):
        assert rules.updated_names(model, head, names, ["decoder.layers.*"], None, []) == [
            n for n in names if n.startswith("decoder.layers.")]
    assert "'decoder.layers.*' also matches" in caplog.text and "--extra-parameters" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="adaptation_rules"):
        rules.updated_names(model, head, names, ["voice.speaker_vector"], None, [])
    assert caplog.text == ""
    assert rules.updated_names(model, head, names, None, None, []) == names
    assert rules.updated_names(model, head, names, ["voice.speaker_vector"], None, []) == ["voice.speaker_vector"]
    with pytest.raises(SystemExit, match=r"\['decoder.layers.\*.linear\*'\] match no name of the adapted set.*"
                                         "--extra-parameters"):
        rules.updated_names(model, head, names, ["voice.speaker_vector", "decoder.layers.*.linear*"], None, [])
    assert head.config.adapted_parameter_names == names


def test_extra_parameters_join_the_adapted_set_for_adam_and_sgd_rules(rules):
    model = tiny_model().eval()
    head = _tiny_head(model)
    names = list(head.config.adapted_parameter_names)
    adam = [rules.parse_rule("adam:0.01", 5)]
    updated = rules.updated_names(model, head, names, None, ["decoder.layers.*"], adam)
    extra = updated[len(names):]
    assert updated[:len(names)] == names and extra and not set(extra) & set(names)
    assert all(name.startswith("decoder.layers.") for name in extra)
    assert rules.updated_names(model, head, names, ["voice.speaker_vector"], ["decoder.layers.*"], adam) == [
        "voice.speaker_vector", *extra]
    for patterns, message in ((["aligner.*"], "the aligner takes no part in the mel loss"),
                              (["nothing.here*"], "nothing.here")):
        with pytest.raises(SystemExit, match=f"--extra-parameters: .*{message}"):
            rules.updated_names(model, head, names, None, patterns, adam)
    with pytest.raises(SystemExit, match=r"adam and sgd rules only; the rules \['learned'\]"):
        rules.updated_names(model, head, names, None, ["decoder.layers.*"], adam + [rules.parse_rule("learned", 5)])
    assert head.config.adapted_parameter_names == names

    own = dict(model.named_parameters())
    before = {name: own[name].detach().clone() for name in updated}
    generator = torch.Generator().manual_seed(0)
    support = {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
               "attention_mask": torch.ones(2, 6, dtype=torch.long),
               "labels": torch.randn(2, 24, model.config.num_mel_bins, generator=generator) - 4.0,
               "labels_attention_mask": torch.ones(2, 24, dtype=torch.long)}
    params = rules.adapt_with(adam[0], model, head, support, dict(before), 2, updated)
    assert set(params) == set(updated)
    assert sum(not torch.equal(params[name], before[name]) for name in extra) > len(extra) // 2
    assert all(torch.equal(own[name], before[name]) for name in updated)  # the model itself is untouched


@pytest.mark.slow
def test_rules_run_from_one_start_and_write_json_and_plot(rules, tmp_path, monkeypatch):
    from hf_metatts.data import build_corpus

    corpus = tmp_path / "voices"
    build_corpus(corpus, "tiny", num_workers=2)
    model_dir = tmp_path / "model"
    model = save_tiny_checkpoint(model_dir)
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    torch.manual_seed(0)
    MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_lr=0.05, adapted_parameter_names=names),
                    shapes).save_pretrained(str(model_dir))
    out = tmp_path / "rules.json"
    argv = ["--checkpoint", str(model_dir), "--corpus", str(corpus), "--shots", "2", "--steps", "2",
            "--heldout", "1", "--rules", "start", "learned", "adam:0.01", "sgd:0.05:3", "learned+gv1",
            "learned+pm", "--out", str(out)]
    rules.main(argv)
    result = json.loads(out.read_text())
    assert result["command"] == shlex.join(["python", "benchmarks/adaptation_rules.py", *argv])  # not pytest's argv
    assert out.with_suffix(".png").stat().st_size > 1000
    assert result["start"] == "model" and len(result["tasks"]) >= 2
    assert list(result["results"]) == ["start", "learned", "adam:0.01", "sgd:0.05:3", "learned+gv1", "learned+pm"]
    assert [r["steps"] for r in result["results"].values()] == [0, 2, 2, 3, 2, 2]
    assert [r["global_variance_weight"] for r in result["results"].values()] == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert [r["match_prosody"] for r in result["results"].values()] == [False] * 5 + [True]
    # matching leaves the adapted set where the steps put it and changes what the voice predicts
    matched, plain = result["results"]["learned+pm"]["mean"], result["results"]["learned"]["mean"]
    assert matched["moved"] == pytest.approx(plain["moved"]) and matched["mcd"] != plain["mcd"]
    assert result["results"]["start"]["mean"]["moved"] == 0
    for name, entry in result["results"].items():
        assert set(entry["per_task"]) == set(result["tasks"])
        assert -1 <= entry["mean"]["similarity"] <= 1 and entry["mean"]["mcd"] > 0
        assert (entry["mean"]["moved"] > 0) == (name != "start")
        assert entry["mean"]["support_mel_l1"] > 0 and entry["mean"]["gv_ratio"] > 0
        assert 0 <= entry["identification"] <= 1 and entry["identification_candidates"] == len(result["tasks"])
    assert result["results"]["learned"]["mean"]["moved"] != result["results"]["adam:0.01"]["mean"]["moved"]
    assert result["results"]["learned"]["mean"]["moved"] != result["results"]["learned+gv1"]["mean"]["moved"]
    assert result["updated_by_adam_and_sgd"] == names and result["recordings_wer"] is None
    assert result["extra_parameters"] == []

    with pytest.raises(SystemExit, match="match no name of the adapted set"):
        rules.main(["--checkpoint", str(model_dir), "--corpus", str(corpus), "--parameters", "encoder.*",
                    "--out", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()

    # a caller that scores several checkpoints (checkpoint_soup.py) loads the tasks' real audio once
    argv = ["--checkpoint", str(model_dir), "--corpus", str(corpus), "--shots", "2", "--steps", "2", "--heldout", "1",
            "--rules", "learned"]
    reuse = {}
    first = rules.run(rules.build_parser().parse_args(argv), reuse=reuse)
    built = []
    original = rules.TaskAudio
    monkeypatch.setattr(rules, "TaskAudio", lambda *a, **k: built.append(a[0].name) or original(*a, **k))
    again = rules.run(rules.build_parser().parse_args(argv), reuse=reuse)
    assert built == [] and again["tasks"] == first["tasks"]
    assert again["results"]["learned"]["mean"] == pytest.approx(first["results"]["learned"]["mean"], rel=1e-6)
    other = rules.run(rules.build_parser().parse_args(argv[:-4] + ["--heldout", "2", "--rules", "learned"]),
                      reuse=reuse)
    assert sorted(built) == sorted(other["tasks"]) and len(reuse) == 2  # other held-out sentences: loaded afresh


def test_support_durations_from_the_aligner_replace_the_corpus_timings(rules, tmp_path, monkeypatch):
    from hf_metatts.data import build_corpus

    corpus = tmp_path / "voices"
    build_corpus(corpus, "tiny", num_workers=2)
    model_dir = tmp_path / "model"
    save_tiny_checkpoint(model_dir)
    MetaLearnerHead(MetaLearnerConfig(method="maml", inner_lr=0.05,
                                      adapted_parameter_names=tiny_model().adapted_parameter_names()),
                    {}).save_pretrained(str(model_dir))
    seen = []
    original = rules.with_fixed_alignment
    monkeypatch.setattr(rules, "with_fixed_alignment",
                        lambda model, batches: seen.append([b.get("durations") is not None for b in batches])
                        or original(model, batches))
    argv = ["--checkpoint", str(model_dir), "--corpus", str(corpus), "--shots", "2", "--steps", "1", "--heldout",
            "1", "--rules", "start"]
    timings = rules.run(rules.build_parser().parse_args(argv))
    assert timings["support_durations"] == "timings" and seen and all(flags == [True] for flags in seen)
    seen.clear()
    aligner = rules.run(rules.build_parser().parse_args(argv + ["--support-durations", "aligner"]))
    assert aligner["support_durations"] == "aligner" and seen and all(flags == [False] for flags in seen)
    # the same voice and held-out speech (nothing adapts), read against other support frames
    assert aligner["results"]["start"]["mean"]["similarity"] == pytest.approx(
        timings["results"]["start"]["mean"]["similarity"], abs=1e-6)
    start_l1 = [run["results"]["start"]["mean"]["support_mel_l1"] for run in (aligner, timings)]
    assert start_l1[0] != start_l1[1]
    with pytest.raises(SystemExit):
        rules.build_parser().parse_args(argv + ["--support-durations", "oracle"])
    # the aligner's search: the checkpoint's own (none named here) or the one given
    assert aligner["aligner_skips_marks"] is False
    skipping = rules.run(rules.build_parser().parse_args(argv + ["--support-durations", "aligner", "--aligner-search",
                                                                 "skip_marks"]))
    assert skipping["aligner_skips_marks"] is True
    with pytest.raises(SystemExit):
        rules.build_parser().parse_args(argv + ["--aligner-search", "viterbi"])
    # the aligner's distance from the timings is reported either way, per task
    for run in (timings, aligner):
        errors = run["support_alignment_error"]
        assert set(errors) == set(run["tasks"])
        for error in errors.values():
            assert error["mean_abs_frames"] >= 0 and 0 <= error["tokens_off_by_more_than_2"] <= 1
    assert timings["support_alignment_error"] == aligner["support_alignment_error"]


def test_alignment_error_counts_frames_between_the_aligner_and_the_timings(rules):
    class Aligner:
        def compute_durations(self, input_ids, attention_mask=None, **unused):
            assert "durations" not in unused  # the aligner never sees the timings
            return torch.tensor([[3, 5, 2, 0], [4, 4, 4, 4]])

    support = {"input_ids": torch.zeros(2, 4, dtype=torch.long),
               "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]),
               "durations": torch.tensor([[3, 2, 2, 7], [4, 4, 8, 4]])}
    error = rules.alignment_error(Aligner(), support)
    # valid tokens: |0|,|3|,|0| and |0|,|0|,|4|,|0| -> 7 frames over 7 tokens, 2 of them more than 2 off
    assert error == {"mean_abs_frames": pytest.approx(1.0), "tokens_off_by_more_than_2": pytest.approx(2 / 7)}
    assert rules.alignment_error(Aligner(), {k: v for k, v in support.items() if k != "durations"}) is None
