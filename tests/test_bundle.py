"""`hf-metatts bundle` and the bundled checkpoint (`hf_metatts.DEFAULT_CHECKPOINT`)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from bar_fixtures import harness_result
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead
from hf_metatts.model_cards import CardResultsError
from hf_metatts.modeling_vocoder import ISTFTVocoder
from hf_metatts.training.bundle import BundleConfigError, BundleTooLargeError, bundle_checkpoint, folder_bytes
from hf_metatts.training.vocoder import VocoderTrainingArguments, save_vocoder, vocoder_config


@pytest.fixture
def trained_parts(tmp_path):
    """A tiny meta-trained model folder (with a Meta-SGD meta-learner and a run summary) and a vocoder folder."""
    model_dir, vocoder_dir = tmp_path / "model", tmp_path / "vocoder"
    model = save_tiny_checkpoint(model_dir)
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    head = MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_lr=0.25, adapted_parameter_names=names), shapes)
    head.save_pretrained(str(model_dir))
    (model_dir / "training_summary.json").write_text(json.dumps(
        {"method": "metasgd", "steps": 7, "wall_seconds": 90.0, "processes": 1,
         "hardware": {"cpu": "Test CPU", "torch_threads": 1, "gpu": None}, "train_metrics": {"train_loss": 1.25},
         "eval_metrics": {"eval_query_loss_before": 0.9, "eval_query_loss_after": 0.4}, "inner_steps": 5}))
    args = VocoderTrainingArguments(hidden_size=8, intermediate_size=16, layers=1)
    torch.manual_seed(0)
    vocoder = ISTFTVocoder(vocoder_config(args))
    save_vocoder(vocoder, vocoder.config, str(vocoder_dir))
    (vocoder_dir / "training_summary.json").write_text(json.dumps(
        {"steps": 3, "wall_seconds": 30.0, "hardware": {"cpu": "Test CPU", "torch_threads": 2},
         "validation": {"mel_l1": 0.31}}))
    return model_dir, vocoder_dir, vocoder


def test_bundle_writes_a_complete_checkpoint_with_its_vocoder_meta_learner_and_card(trained_parts, tmp_path):
    model_dir, vocoder_dir, vocoder = trained_parts
    out = tmp_path / "bundle"
    results = [{"dataset_name": "held-out speakers", "dataset_type": "voices", "metric_type": "wer",
                "metric_value": 0.5}]
    info = bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), runs=[str(model_dir), str(vocoder_dir)],
                             results=results, datasets=["hf-metatts/voices-default"])
    for name in ("model.safetensors", "config.json", "meta_learner.safetensors", "meta_learner_config.json",
                 "tokenizer_config.json", "modeling_metatts.py", "training_runs.json", "README.md"):
        assert (out / name).is_file(), name
    assert info["bytes"] == folder_bytes(str(out)) and not (tmp_path / "bundle.partial").exists()
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    assert model.config.vocoder_type == "istft" and model.config.vocoder_hidden_size == 8
    mel = torch.randn(1, 12, 80)
    with torch.no_grad():
        assert torch.equal(model.vocoder(mel), vocoder.eval()(mel))
    runs = json.loads((out / "training_runs.json").read_text())
    assert [run["run"] for run in runs] == ["model", "vocoder"] and runs[0]["steps"] == 7
    card = (out / "README.md").read_text()
    assert ("| model | metasgd | 7 | 1.5 | Test CPU (1 thread) | 1 | 1.250 | query loss 0.900 -> 0.400 after 5 steps "
            "|") in card
    assert "| vocoder | vocoder | 3 | 0.5 | Test CPU (2 threads) | 1 | - | mel L1 0.310 |" in card
    assert "## Requirements" not in card  # no bars were given
    assert "metasgd" in card and "0.5" in card and "hf-metatts/voices-default" in card
    assert "support encoder" not in card  # this meta-learner starts from the model's own voice
    assert "Adam-normalised" not in card  # and takes plain gradient steps
    assert "neural vocoder adapts" not in card  # voice_vocoder_steps 0: adaptation leaves the vocoder alone
    from hf_metatts.meta import load_meta_learner

    head = load_meta_learner(str(out))
    assert head.config.method == "metasgd"
    assert all(torch.allclose(rate, torch.full_like(rate, 0.25)) for rate in head.learning_rates().values())


def test_the_card_names_a_reptile_run_in_its_training_table(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    summary = json.loads((model_dir / "training_summary.json").read_text())
    (model_dir / "training_summary.json").write_text(json.dumps({**summary, "method": "maml",
                                                                 "outer_update": "reptile"}))
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"), runs=[str(model_dir)])
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert "| model | maml (Reptile) | 7 |" in card


def test_the_card_of_a_zero_shot_start_meta_learner_says_where_adaptation_starts(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    config = json.loads((model_dir / "meta_learner_config.json").read_text())
    (model_dir / "meta_learner_config.json").write_text(json.dumps({**config, "zero_shot_start": True,
                                                                    "inner_optimizer": "adam"}))
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"))
    card = " ".join((tmp_path / "bundle" / "README.md").read_text().split())
    assert "meta-learned with `metasgd` (learned rates of Adam-normalised steps)" in card
    assert "its support encoder reads from the clips" in card


@pytest.mark.parametrize("inner_optimizer, phrase", [
    ("adam", "meta-learned with `metasgd` (learned rates, one per inner step, of Adam-normalised steps)"),
    ("sgd", "meta-learned with `metasgd` (learned rates, one per inner step) so that")])
def test_the_card_says_when_the_learned_rates_are_one_per_inner_step(trained_parts, tmp_path, inner_optimizer,
                                                                      phrase):
    model_dir, vocoder_dir, _ = trained_parts
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(model_dir))
    names = model.adapted_parameter_names()
    MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_lr=0.02, inner_steps=3, per_step_rates=True,
                                      inner_optimizer=inner_optimizer, adapted_parameter_names=names),
                    {n: model.get_parameter(n).shape for n in names}).save_pretrained(str(model_dir))
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"))
    card = " ".join((tmp_path / "bundle" / "README.md").read_text().split())
    assert phrase in card


def test_a_maml_meta_learner_ships_with_the_step_size_given_to_the_bundle(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(model_dir))
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    MetaLearnerHead(MetaLearnerConfig(method="maml", inner_lr=0.03, inner_optimizer="adam", zero_shot_start=True,
                                      adapted_parameter_names=names), shapes).save_pretrained(str(model_dir))
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"), inner_lr=0.02)
    from hf_metatts.meta import load_meta_learner

    assert load_meta_learner(str(tmp_path / "bundle")).config.inner_lr == 0.02
    assert json.loads((model_dir / "meta_learner_config.json").read_text())["inner_lr"] == 0.03  # source kept
    card = " ".join((tmp_path / "bundle" / "README.md").read_text().split())
    assert "meta-learned with `maml` (Adam-normalised steps of 0.02)" in card
    assert "then takes its fixed-size steps" in card


def assert_refused_leaving_the_bundle_as_it_was(model_dir, vocoder_dir, tmp_path, match, **settings):
    """``bundle_checkpoint`` with ``settings`` raises ``BundleConfigError`` matching ``match`` into a folder that holds
    a previous bundle, and that folder keeps exactly what it had; no staging folder is left behind."""
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("previous bundle")
    with pytest.raises(BundleConfigError, match=match):
        bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), **settings)
    assert sorted(os.listdir(out)) == ["keep.txt"] and not (tmp_path / "bundle.partial").exists()


@pytest.mark.parametrize("inner_lr", [0.02, -0.1])
def test_a_step_size_for_a_meta_learner_without_one_rate_is_refused_before_anything_is_written(
        trained_parts, tmp_path, inner_lr):
    model_dir, vocoder_dir, _ = trained_parts
    if inner_lr < 0:  # a maml meta-learner, but a step size that is not positive
        config = json.loads((model_dir / "meta_learner_config.json").read_text())
        (model_dir / "meta_learner_config.json").write_text(json.dumps({**config, "method": "maml"}))
    assert_refused_leaving_the_bundle_as_it_was(model_dir, vocoder_dir, tmp_path,
                                                "metasgd" if inner_lr > 0 else "positive", inner_lr=inner_lr)


def test_the_global_variance_weight_given_to_the_bundle_is_the_one_adaptation_uses(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    source = json.loads((model_dir / "meta_learner_config.json").read_text())
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"), global_variance_weight=0.5)
    from hf_metatts.meta import load_meta_learner

    shipped = load_meta_learner(str(tmp_path / "bundle")).config
    assert shipped.global_variance_weight == 0.5 and shipped.inner_lr == source["inner_lr"]
    assert json.loads((model_dir / "meta_learner_config.json").read_text()) == source  # source kept
    card = " ".join((tmp_path / "bundle" / "README.md").read_text().split())
    assert "a global-variance term of weight 0.5" in card


@pytest.mark.parametrize("weight, without_meta_learner, message", [
    (-1.0, False, "finite number >= 0"),
    (float("nan"), False, "finite number >= 0"),
    (0.5, True, "has no meta_learner_config.json"),
])
def test_a_bad_global_variance_weight_is_refused_before_anything_is_written(trained_parts, tmp_path, weight,
                                                                          without_meta_learner, message):
    model_dir, vocoder_dir, _ = trained_parts
    if without_meta_learner:
        bare = tmp_path / "bare"
        shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns("meta_learner*"))
        model_dir = bare
    assert_refused_leaving_the_bundle_as_it_was(model_dir, vocoder_dir, tmp_path, message,
                                                global_variance_weight=weight)


def adapt_to_noise(folder):
    """The voice ``model.adapt`` gives the bundle in ``folder`` for two clips of noise (its default adaptation)."""
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(folder)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(24000).astype(np.float32), "A short test sentence.") for _ in range(2)]
    return model.adapt(clips, method="zero_shot", sampling_rate=16000, progress=False)


def vocoder_names(voice) -> list[str]:
    return sorted(name for name in voice.adapted_parameters if name.startswith("vocoder."))


def test_the_vocoder_adaptation_given_to_the_bundle_is_what_adapt_does_by_default(trained_parts, tmp_path, capsys):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(out),
                 "--voice-vocoder-steps", "2", "--voice-vocoder-lr", "1e-3", "--voice-vocoder-segment-frames", "16",
                 "--voice-vocoder-parameters", "head.*"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["voice_vocoder_steps"], config["voice_vocoder_learning_rate"]) == (2, 1e-3)
    assert (config["voice_vocoder_segment_frames"], config["voice_vocoder_parameters"]) == (16, ["head.*"])
    assert config["voice_vocoder_batch_size"] == 8  # not given: the default
    card = " ".join((out / "README.md").read_text().split())
    assert "its neural vocoder adapts to the same clips too: 2 Adam steps of 0.001 on its parameters `head.*`" in card
    voice = adapt_to_noise(out)
    assert voice.config.vocoder_steps == 2
    assert vocoder_names(voice) == ["vocoder.head.bias", "vocoder.head.weight"]
    assert config["voice_vocoder_adapt_phase"] is True and "phase rows" not in card


def test_the_bundle_can_keep_the_phase_of_the_vocoder_s_output_layer(trained_parts, tmp_path):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(out),
                 "--voice-vocoder-steps", "2", "--voice-vocoder-keep-phase"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["voice_vocoder_adapt_phase"] is False and config["voice_vocoder_steps"] == 2
    card = " ".join((out / "README.md").read_text().split())
    assert "(the phase rows of its output layer kept as trained: the steps change each frequency's magnitude" in card
    again = tmp_path / "again"  # bundled again without the option: the setting stays; with its opposite it goes
    assert main(["bundle", "--model", str(out), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["voice_vocoder_adapt_phase"] is False
    assert main(["bundle", "--model", str(out), "--out", str(tmp_path / "both"), "--voice-vocoder-adapt-phase"]) == 0
    assert json.loads((tmp_path / "both" / "config.json").read_text())["voice_vocoder_adapt_phase"] is True


def test_the_bundle_can_let_the_aligner_leave_marks_spaces_and_punctuation_without_frames(trained_parts, tmp_path):
    from hf_metatts.cli import main
    from hf_metatts.data.durations import skippable_token_ids

    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(out),
                 "--aligner-skip-marks"]) == 0
    ids = json.loads((out / "config.json").read_text())["aligner_skippable_token_ids"]
    assert ids == skippable_token_ids(hf_metatts.MetaTTSProcessor.from_pretrained(str(out)).tokenizer) and ids
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out))
    assert model.config.aligner_skippable_token_ids == ids
    again = tmp_path / "again"  # bundled again without the option: the setting stays; with its opposite it goes
    assert main(["bundle", "--model", str(out), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["aligner_skippable_token_ids"] == ids
    assert main(["bundle", "--model", str(out), "--out", str(tmp_path / "off"), "--aligner-every-token"]) == 0
    assert json.loads((tmp_path / "off" / "config.json").read_text())["aligner_skippable_token_ids"] is None
    plain = tmp_path / "plain"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(plain)]) == 0
    assert json.loads((plain / "config.json").read_text()).get("aligner_skippable_token_ids") is None


def test_the_bundle_sets_the_duration_weight_of_the_search_that_reads_a_user_s_clips(trained_parts, tmp_path):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(out),
                 "--aligner-duration-weight", "30"]) == 0
    assert json.loads((out / "config.json").read_text())["aligner_duration_weight"] == 30.0
    assert hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).config.aligner_duration_weight == 30.0
    again = tmp_path / "again"  # bundled again without the option: the setting stays; 0 turns it off
    assert main(["bundle", "--model", str(out), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["aligner_duration_weight"] == 30.0
    assert main(["bundle", "--model", str(out), "--out", str(tmp_path / "off"), "--aligner-duration-weight", "0"]) == 0
    assert json.loads((tmp_path / "off" / "config.json").read_text())["aligner_duration_weight"] == 0.0


@pytest.mark.parametrize("weight", [-1.0, 5000.0])
def test_a_duration_weight_out_of_range_is_refused_before_anything_is_written(trained_parts, tmp_path, weight):
    model_dir, vocoder_dir, _ = trained_parts
    assert_refused_leaving_the_bundle_as_it_was(model_dir, vocoder_dir, tmp_path, "aligner_duration_weight",
                                                aligner_duration_weight=weight)


def test_the_bundle_can_adapt_the_output_layer_on_whole_clip_hidden_states(trained_parts, tmp_path):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--out", str(out),
                 "--voice-vocoder-steps", "2", "--voice-vocoder-parameters", "head.*", "final_norm.*",
                 "--voice-vocoder-clip-context"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["voice_vocoder_clip_context"] is True and config["voice_vocoder_steps"] == 2
    card = " ".join((out / "README.md").read_text().split())
    assert "(the layers below the output layer read each whole clip once, and the steps train the output" in card
    assert vocoder_names(adapt_to_noise(out)) == [
        "vocoder.final_norm.bias", "vocoder.final_norm.weight", "vocoder.head.bias", "vocoder.head.weight"]
    again = tmp_path / "again"  # bundled again without the option: the setting stays; with its opposite it goes
    assert main(["bundle", "--model", str(out), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["voice_vocoder_clip_context"] is True
    assert main(["bundle", "--model", str(out), "--out", str(tmp_path / "segments"),
                 "--voice-vocoder-segment-context"]) == 0
    segments = tmp_path / "segments"
    assert json.loads((segments / "config.json").read_text())["voice_vocoder_clip_context"] is False
    assert "whole clip once" not in (segments / "README.md").read_text()


@pytest.mark.parametrize("settings, message", [
    ({"steps": -1}, r"voice_vocoder_steps=-1 is out of range"),
    ({"learning_rate": 2.0}, r"voice_vocoder_learning_rate=2.0 is out of range"),
    ({"parameters": []}, r"voice_vocoder_parameters must be a list"),
    ({"rate": 0.1}, r"Unknown vocoder adaptation settings \['rate'\]"),
    ({"adapt_phase": "no"}, r"voice_vocoder_adapt_phase must be True or False"),
    ({"clip_context": "yes"}, r"voice_vocoder_clip_context must be True or False"),
    ({"clip_context": True}, r"clip_context adapts the output layer alone .* patterns \['\*'\] reach beyond it"),
])
def test_bad_vocoder_adaptation_settings_are_refused_before_anything_is_written(trained_parts, tmp_path, settings,
                                                                                message):
    model_dir, vocoder_dir, _ = trained_parts
    assert_refused_leaving_the_bundle_as_it_was(model_dir, vocoder_dir, tmp_path, message, voice_vocoder=settings)


def test_the_card_lists_the_bars_the_checkpoint_was_checked_against(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    result = harness_result()
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), results=result["model_index"], evaluation=result)
    card = (out / "README.md").read_text()
    assert "## Requirements" in card and "1 of 3 bars pass" in card
    assert "on Test CPU (2 cores, 2 threads)" in card and "Every method was heard through Griffin-Lim." in card
    assert "`python benchmarks/default_checkpoint.py --out results.json`" in card
    assert ("| adaptation_maml | similarity of metasgd after 5 steps >= finetune after 100 steps | metasgd_5_steps "
            "0.6731, finetune_100_steps 0.6878, difference_ci95 [-0.028, -0.0022], tasks_above_zero 8/21 | "
            "**FAIL** |") in card
    assert "| rtf | real-time factor <= 0.05 | rtf 0.01044 | **pass** |" in card  # the source file is left out
    assert "| identification | identification >= 0.90 | - | not measured: identification was not measured |" in card
    assert "0.41" in card  # the model-index entry
    # a result from before the harness recorded how the support clips were read: the corpus's phone timings
    assert "The support clips were read on the corpus's phone timings; `model.adapt` gives a user's clips" in card


def test_the_card_says_how_the_support_clips_were_read():
    from hf_metatts.model_cards import support_clips_text

    assert support_clips_text({}) == support_clips_text({"support_durations": "timings", "aligner_search": "own"})
    assert "phone timings" in support_clips_text({})
    assert support_clips_text({"support_durations": "aligner", "aligner_search": "skip_marks"}) == (
        "The support clips were read by each model's own aligner, with stress and length marks, spaces and "
        "punctuation free to take no frame, as `model.adapt` reads a user's clips.")
    assert support_clips_text({"support_durations": "aligner", "aligner_search": "own"}) == (
        "The support clips were read by each model's own aligner, as `model.adapt` reads a user's clips.")
    assert support_clips_text({"support_durations": "aligner", "aligner_search": "skip_marks",
                               "aligner_duration_weight": 30.0}) == (
        "The support clips were read by each model's own aligner, with stress and length marks, spaces and "
        "punctuation free to take no frame, each token's log-duration held to the duration predictor's with weight "
        "30, as `model.adapt` reads a user's clips.")


def test_a_bundle_saves_what_its_card_was_written_from_and_a_new_bundling_keeps_only_the_datasets(
        trained_parts, tmp_path, caplog):
    model_dir, vocoder_dir, _ = trained_parts
    out, again = tmp_path / "bundle", tmp_path / "again"
    result = harness_result()
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), results=result["model_index"], evaluation=result,
                      datasets=["hf-metatts/voices-default"])
    inputs = json.loads((out / "card_inputs.json").read_text())
    assert inputs["results"] == result["model_index"] and inputs["datasets"] == ["hf-metatts/voices-default"]
    assert inputs["evaluation"]["bars"] == result["bars"] and inputs["evaluation"]["command"] == result["command"]
    assert inputs["evaluation"]["methods"]["finetune"] == {"status": "ok", "vocoder": "griffin_lim"}
    assert inputs["evaluation"]["settings"] == {}  # the fixture's result records no settings
    with caplog.at_level("WARNING"):
        bundle_checkpoint(str(out), None, str(again), inner_lr=None)  # e.g. bundled again with another step size
    card = (again / "README.md").read_text()
    assert "hf-metatts/voices-default" in card  # the training data still holds
    assert "## Requirements" not in card and "value: 0.41" not in card  # measured on the checkpoint before
    assert "had results and evaluation" in caplog.text and "give --results again" in caplog.text
    assert json.loads((again / "card_inputs.json").read_text())["results"] is None


def test_the_card_names_the_vocoder_of_each_method_and_those_not_recorded():
    from hf_metatts.model_cards import heard_through_text

    assert heard_through_text(harness_result(("griffin_lim", "istft"))["methods"]) == (
        "Heard through: finetune Griffin-Lim, metasgd the trained iSTFT vocoder.")
    assert heard_through_text(harness_result(("istft", None))["methods"]) == (
        "Heard through: finetune the trained iSTFT vocoder (not recorded for metasgd).")
    assert heard_through_text(harness_result((None, None))["methods"]) is None  # results from before it was kept


def test_bundle_command_puts_the_bars_of_a_harness_result_in_the_card(trained_parts, tmp_path):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    results = tmp_path / "default_checkpoint.json"
    results.write_text(json.dumps(harness_result()))
    out = tmp_path / "bundle"
    assert main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--results", str(results),
                 "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "1 of 3 bars pass" in card and "value: 0.41" in card


@pytest.mark.parametrize("broken", [
    {"bars": {}},  # no bars
    {"bars": {"rtf": {"requirement": "real-time factor <= 0.05", "measured": {"rtf": 0.01}}}},  # no status
    {"bars": ["rtf"]},
])
def test_results_with_broken_bars_are_refused_before_anything_is_written(trained_parts, tmp_path, broken):
    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out))
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    result = {**harness_result(), **broken}
    with pytest.raises(CardResultsError, match="bars|lacks"):
        bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), results=result["model_index"],
                          evaluation=result)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert not (tmp_path / "bundle.partial").exists()


def test_a_results_file_without_model_index_entries_is_refused_before_anything_is_written(trained_parts, tmp_path):
    from hf_metatts.cli import main

    model_dir, vocoder_dir, _ = trained_parts
    results = tmp_path / "not_results.json"
    results.write_text(json.dumps({"bars": harness_result()["bars"]}))
    out = tmp_path / "bundle"
    with pytest.raises(CardResultsError, match="model_index"):
        main(["bundle", "--model", str(model_dir), "--vocoder", str(vocoder_dir), "--results", str(results),
              "--out", str(out)])
    assert not out.exists() and not (tmp_path / "bundle.partial").exists()


def test_a_bundle_over_the_size_bound_is_refused_and_leaves_the_old_one(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("previous bundle")
    with pytest.raises(BundleTooLargeError, match="MiB bound"):
        bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), max_bytes=1024)
    assert (out / "keep.txt").read_text() == "previous bundle"
    assert not (tmp_path / "bundle.partial").exists()


def test_a_run_without_a_summary_is_refused_before_anything_is_written(trained_parts, tmp_path):
    model_dir, vocoder_dir, _ = trained_parts
    with pytest.raises(FileNotFoundError, match="training_summary.json"):
        bundle_checkpoint(str(model_dir), str(vocoder_dir), str(tmp_path / "bundle"), runs=[str(tmp_path)])
    assert not (tmp_path / "bundle").exists()


def test_a_bundle_is_bundled_again_with_its_own_vocoder_and_runs(trained_parts, tmp_path):
    """Re-bundling (no vocoder folder, no runs) keeps the vocoder, the training records and the rates; here in place,
    with a new step size and new results for the card."""
    model_dir, vocoder_dir, vocoder = trained_parts
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(model_dir))
    names = model.adapted_parameter_names()
    MetaLearnerHead(MetaLearnerConfig(method="maml", inner_lr=0.03, inner_optimizer="adam",
                                      adapted_parameter_names=names),
                    {n: model.get_parameter(n).shape for n in names}).save_pretrained(str(model_dir))
    out = tmp_path / "bundle"
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), runs=[str(model_dir), str(vocoder_dir)],
                      inner_lr=0.02)
    runs_before = (out / "training_runs.json").read_text()
    results = [{"dataset_name": "held-out speakers", "dataset_type": "voices", "metric_type": "similarity",
                "metric_value": 0.777}]
    bundle_checkpoint(str(out), None, str(out), inner_lr=0.01, results=results)
    assert (out / "training_runs.json").read_text() == runs_before
    again = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    mel = torch.randn(1, 12, 80)
    with torch.no_grad():
        assert torch.equal(again.vocoder(mel), vocoder.eval()(mel))
    from hf_metatts.meta import load_meta_learner

    assert load_meta_learner(str(out)).config.inner_lr == 0.01
    card = " ".join((out / "README.md").read_text().split())
    assert "0.777" in card and "Adam-normalised steps of 0.01" in card and "| model | metasgd | 7 |" in card
    assert not (tmp_path / "bundle.partial").exists()


def test_a_bundle_takes_a_new_vocoder_and_keeps_its_runs_with_the_new_one_after_them(trained_parts, tmp_path):
    """``keep_runs``: re-bundling with a fine-tuned vocoder keeps the earlier records, the global-variance weight and
    the acoustic weights, and adds the vocoder's run (once, however often it is bundled)."""
    model_dir, vocoder_dir, _ = trained_parts
    out = tmp_path / "bundle"
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), runs=[str(model_dir), str(vocoder_dir)],
                      global_variance_weight=0.3)
    tuned_dir = tmp_path / "vocoder_tuned"
    torch.manual_seed(1)
    tuned = ISTFTVocoder(vocoder_config(VocoderTrainingArguments(hidden_size=8, intermediate_size=16, layers=1)))
    save_vocoder(tuned, tuned.config, str(tuned_dir))
    (tuned_dir / "training_summary.json").write_text(json.dumps({"steps": 2, "wall_seconds": 5.0}))
    before = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).state_dict()
    for _ in range(2):
        bundle_checkpoint(str(out), str(tuned_dir), str(out), runs=[str(tuned_dir)], keep_runs=True)
    runs = json.loads((out / "training_runs.json").read_text())
    assert [run["run"] for run in runs] == ["model", "vocoder", "vocoder_tuned"]
    again = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    mel = torch.randn(1, 12, 80)
    with torch.no_grad():
        assert torch.equal(again.vocoder(mel), tuned.eval()(mel))
    assert all(torch.equal(tensor, before[name]) for name, tensor in again.state_dict().items()
               if not name.startswith("vocoder."))
    from hf_metatts.meta import load_meta_learner

    assert load_meta_learner(str(out)).config.global_variance_weight == 0.3


def test_bundling_a_model_without_a_trained_vocoder_needs_the_vocoder_folder(trained_parts, tmp_path):
    model_dir, _, _ = trained_parts
    with pytest.raises(BundleConfigError, match="owns no trained neural vocoder"):
        bundle_checkpoint(str(model_dir), None, str(tmp_path / "bundle"))
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "bundle.partial").exists()


def test_a_run_takes_the_vocoder_that_another_checkpoint_owns(trained_parts, tmp_path):
    """`--vocoder` may name a bundle: another run is then heard through the vocoder that bundle ships."""
    model_dir, vocoder_dir, vocoder = trained_parts
    donor = tmp_path / "donor"
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(donor))
    other_run = tmp_path / "other_run"
    shutil.copytree(model_dir, other_run)
    out = tmp_path / "bundle"
    bundle_checkpoint(str(other_run), str(donor), str(out))
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    mel = torch.randn(1, 12, 80)
    with torch.no_grad():
        assert torch.equal(model.vocoder(mel), vocoder.eval()(mel))
    acoustic = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(other_run)).state_dict()
    assert all(torch.equal(tensor, acoustic[name]) for name, tensor in model.state_dict().items()
               if not name.startswith("vocoder."))


def test_a_vocoder_folder_that_holds_no_trained_vocoder_is_refused_before_anything_is_written(trained_parts,
                                                                                               tmp_path):
    from hf_metatts.training.vocoder import VocoderTrainingError

    model_dir, _, _ = trained_parts
    with pytest.raises(VocoderTrainingError, match="neither vocoder.safetensors nor a model checkpoint"):
        bundle_checkpoint(str(model_dir), str(model_dir), str(tmp_path / "bundle"))  # Griffin-Lim run folder
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "bundle.partial").exists()


# ------------------------------------------------------------------------------------------------------
# the checkpoint that ships in the package
def test_the_bundled_checkpoint_is_small_and_complete():
    folder = hf_metatts.DEFAULT_CHECKPOINT
    assert os.path.isdir(folder), "hf_metatts/checkpoints/default is missing: run scripts/train_default_checkpoint.sh"
    assert folder_bytes(folder) <= 25 * 1024 * 1024
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert config["vocoder_type"] == "istft" and "auto_map" in config
    runs = json.loads(open(os.path.join(folder, "training_runs.json")).read())
    assert {run.get("method") for run in runs} >= {"pretrain", "metasgd", "meta_lstm"}
    assert all(run["wall_seconds"] > 0 and run["hardware"]["cpu"] for run in runs)


def test_the_bundled_checkpoint_carries_the_package_s_own_remote_code():
    """trust_remote_code users run the .py files inside the checkpoint: they must be the package's, byte for byte
    (after changing one of these files, copy it into hf_metatts/checkpoints/default)."""
    folder = hf_metatts.DEFAULT_CHECKPOINT
    code = sorted(name for name in os.listdir(folder) if name.endswith(".py"))
    assert "modeling_metatts.py" in code and "modeling_vocoder.py" in code
    package = os.path.dirname(hf_metatts.__file__)
    stale = [name for name in code
             if open(os.path.join(folder, name), "rb").read() != open(os.path.join(package, name), "rb").read()]
    assert not stale, f"the bundled checkpoint's copies of {stale} differ from the package's"


def test_the_bundled_checkpoint_speaks_offline_through_the_pipeline():
    from transformers import pipeline

    tts = pipeline("text-to-speech", model=hf_metatts.DEFAULT_CHECKPOINT)
    out = tts("Meta learning makes adaptation fast.")
    audio = np.asarray(out["audio"]).reshape(-1)
    assert out["sampling_rate"] == 16000
    assert 0.8 < len(audio) / 16000 < 8.0 and np.isfinite(audio).all() and np.abs(audio).max() > 0.05
