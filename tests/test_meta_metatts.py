"""The meta-learning machinery on the real (tiny) MetaTTS model with synthetic speaker-dependent mels."""

import os

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_metatts import MetaTTSConfig, MetaTTSForTextToSpeech
from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.meta import (
    EpisodeSampler,
    MetaLearner,
    MetaLearnerConfig,
    MetaTrainer,
    MetaTrainingArguments,
    adapt_parameters,
    load_meta_learner,
)

TINY = dict(hidden_size=32, encoder_layers=1, decoder_layers=1, num_attention_heads=2, ffn_dim=64,
            variance_hidden_size=32, aligner_hidden_size=32, speaker_dim=16, voice_encoder_hidden_size=32,
            vocab_size=40, dropout=0.0, attention_dropout=0.0, variance_dropout=0.0)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return MetaTTSForTextToSpeech(MetaTTSConfig(**{**TINY, **kw}))


def mel_corpus(num_speakers=6, per_speaker=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = {"speaker_id": [], "input_ids": [], "labels": [], "pitch": []}
    for s in range(num_speakers):
        mean = rng.normal(-2, 1, size=80)
        for _ in range(per_speaker):
            n = int(rng.integers(4, 9))
            t = int(n * rng.integers(2, 4))
            rows["speaker_id"].append(f"s{s}")
            rows["input_ids"].append(rng.integers(1, 40, size=n).tolist())
            rows["labels"].append((mean + 0.3 * rng.normal(size=(t, 80))).astype(np.float32).tolist())
            rows["pitch"].append((5 + 0.1 * rng.normal(size=t)).astype(np.float32).tolist())
    return Dataset.from_dict(rows)


@pytest.fixture(scope="module")
def episode():
    s = EpisodeSampler(mel_corpus(), "speaker_id", 3, 3, 2, seed=0)
    return s.collate(s.episode(0), MetaTTSDataCollator())


def test_every_method_adapts_only_the_adapted_set_and_leaves_the_model_bit_identical(episode):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = model.adapted_parameter_names()
    support = episode["support"][0]
    for method, learner_method in [("maml", None), ("finetune", None), ("zero_shot", None),
                                   ("metasgd", "metasgd"), ("meta_lstm", "meta_lstm")]:
        head = None
        if learner_method:
            cfg = MetaLearnerConfig(method=learner_method, inner_lr=0.01, adapted_parameter_names=names)
            head = MetaLearner(model, cfg).head
        voice = adapt_parameters(model, support, method=method, steps=2, lr=0.01, meta_learner=head)
        assert list(voice) == names, method
        assert any(not torch.equal(voice[n], before[n]) for n in names), method
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None, n


def test_meta_gradients_reach_the_initial_voice_second_order_differs(episode):
    grads = {}
    for first_order in (True, False):
        model = tiny_model()
        cfg = MetaLearnerConfig(method="maml", first_order=first_order, inner_steps=2, inner_lr=0.05,
                                adapted_parameter_names=model.adapted_parameter_names())
        MetaLearner(model, cfg)(**episode).loss.backward()
        assert model.voice.speaker_vector.grad.abs().sum() > 0
        grads[first_order] = model.voice.speaker_vector.grad.clone()
    assert (grads[True] - grads[False]).abs().max() > 1e-7


def test_zero_shot_start_trains_the_voice_encoder(episode):
    model = tiny_model()
    cfg = MetaLearnerConfig(method="maml", first_order=True, inner_steps=1, inner_lr=0.01, zero_shot_start=True,
                            adapted_parameter_names=model.adapted_parameter_names())
    MetaLearner(model, cfg)(**episode).loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in model.voice_encoder.parameters() if p.grad is not None) > 0


@pytest.mark.slow
def test_short_meta_training_lowers_validation_query_loss_and_saves_a_loadable_model(tmp_path):
    args = MetaTrainingArguments(
        output_dir=str(tmp_path / "out"), method="maml", first_order=True, max_steps=5, inner_steps=2,
        inner_lr=0.05, shots=2, query_shots=2, tasks_per_step=2, learning_rate=5e-3, save_strategy="no",
        seed=0, use_cpu=True, disable_tqdm=True, eval_num_tasks=2, logging_steps=5, log_query_loss_before=False,
    )
    trainer = MetaTrainer(tiny_model(), args, train_dataset=mel_corpus(), eval_dataset=mel_corpus(3, seed=1),
                          data_collator=MetaTTSDataCollator())
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_query_loss_after"] < before["eval_query_loss_after"], (before, after)
    trainer.save_model(str(tmp_path / "final"))
    loaded = MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "final"))
    for n, p in trainer.model.model.named_parameters():
        assert torch.equal(p, loaded.get_parameter(n)), n
    head = load_meta_learner(str(tmp_path / "final"))
    assert head.config.adapted_parameter_names == loaded.adapted_parameter_names()


@pytest.mark.slow
def test_meta_train_command_runs_a_json_config(tmp_path):
    import argparse
    import json

    from datasets import DatasetDict

    DatasetDict({"train": mel_corpus(4, 6), "validation": mel_corpus(2, 6, seed=1)}).save_to_disk(tmp_path / "data")
    config = json.load(open("examples/configs/tiny_maml.json"))
    config.update(dataset_path=str(tmp_path / "data"), output_dir=str(tmp_path / "out"), max_steps=2,
                  eval_steps=2, save_steps=2, eval_num_tasks=1, use_cpu=True, disable_tqdm=True)
    (tmp_path / "c.json").write_text(json.dumps(config))
    from hf_metatts.meta.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["meta-train", "--config", str(tmp_path / "c.json")])
    assert args.func(args) == 0
    assert (tmp_path / "out" / "checkpoint-2" / "meta_learner_config.json").is_file()
    assert MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "out")).config.hidden_size == 32


@pytest.mark.slow
def test_meta_train_command_trains_a_metatts_start_by_reptile_and_leaves_every_other_weight(tmp_path):
    import argparse
    import json

    from datasets import DatasetDict
    from tiny_models import save_tiny_checkpoint

    DatasetDict({"train": mel_corpus(4, 6), "validation": mel_corpus(2, 6, seed=1)}).save_to_disk(tmp_path / "data")
    start = save_tiny_checkpoint(tmp_path / "start")
    config = json.load(open("examples/configs/tiny_maml.json"))
    config.pop("config_overrides")
    config.update(model_name_or_path=str(tmp_path / "start"), dataset_path=str(tmp_path / "data"),
                  output_dir=str(tmp_path / "out"), outer_update="reptile", optim="sgd", learning_rate=0.5,
                  max_grad_norm=0.0, warmup_steps=0, max_steps=3, eval_steps=3, save_steps=3, eval_num_tasks=1,
                  use_cpu=True, disable_tqdm=True)
    (tmp_path / "c.json").write_text(json.dumps(config))
    from hf_metatts.meta.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["meta-train", "--config", str(tmp_path / "c.json")])
    assert args.func(args) == 0
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["method"] == "maml" and summary["outer_update"] == "reptile"
    assert load_meta_learner(str(tmp_path / "out")).config.outer_update == "reptile"
    trained = MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "out"))
    adapted = set(start.adapted_parameter_names())
    moved = [n for n, p in start.named_parameters() if not torch.equal(p, trained.get_parameter(n))]
    assert moved and set(moved) <= adapted  # the start moved; the backbone, aligner and vocoder did not


def test_the_config_seed_decides_a_new_models_weights():
    """A run's ``seed`` draws the new model's weights too (before, only its episodes): the same seed gives the same
    model, another seed another draw of the recipe, and the speaker table is sized to the training tasks."""
    import json

    from hf_metatts.meta import MetaModelArguments
    from hf_metatts.meta.cli import build_model

    train = mel_corpus(3, 2)
    model_args = MetaModelArguments(config_overrides=json.dumps(TINY))

    def build(seed, global_seed):
        torch.manual_seed(global_seed)  # whatever the global state was, the config's seed decides
        args = MetaTrainingArguments(output_dir="unused", method="pretrain", seed=seed, max_steps=1, report_to="none")
        return build_model(model_args, args, train).state_dict()

    first, again, other = build(5, global_seed=1), build(5, global_seed=2), build(6, global_seed=1)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)
    assert first["voice.speaker_table.weight"].shape[0] == 3


def test_meta_train_command_overrides_the_seed(tmp_path, monkeypatch):
    import argparse

    import hf_metatts.meta.cli as meta_cli

    seen = {}
    monkeypatch.setattr(meta_cli, "run_meta_training", lambda m, d, t: seen.update(seed=t.seed, out=t.output_dir))
    parser = argparse.ArgumentParser()
    meta_cli.register(parser.add_subparsers())
    for extra, seed in (([], 0), (["--seed", "3"], 3)):
        args = parser.parse_args(["meta-train", "--config", "examples/configs/default_pretrain.json", *extra])
        assert args.func(args) == 0
        assert seen == {"seed": seed, "out": "outputs/default_pretrain"}


def test_meta_train_command_continues_another_run_and_refuses_a_missing_one(tmp_path, monkeypatch):
    import argparse

    import hf_metatts.meta.cli as meta_cli

    seen = {}
    monkeypatch.setattr(meta_cli, "run_meta_training",
                        lambda m, d, t: seen.update(start=m.model_name_or_path, seed=t.seed, out=t.output_dir))
    parser = argparse.ArgumentParser()
    meta_cli.register(parser.add_subparsers())
    config = "examples/configs/default_plain_metasgd_adam_800.json"
    args = parser.parse_args(["meta-train", "--config", config, "--seed", "26", "--model-name-or-path", str(tmp_path),
                              "--output-dir", str(tmp_path / "next")])
    assert args.func(args) == 0
    assert seen == {"start": str(tmp_path), "seed": 26, "out": str(tmp_path / "next")}
    seen.clear()
    args = parser.parse_args(["meta-train", "--config", config, "--model-name-or-path", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        args.func(args)
    assert seen == {} and not os.path.exists(tmp_path / "missing")
