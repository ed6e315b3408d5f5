"""MetaTrainer on the toy model: learning, logging, save/load, exact resume, bad input."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from test_meta_toy import ToyTTS, toy_collator, toy_dataset, toy_model

from hf_metatts.meta import (
    CheckpointMismatchError,
    InvalidMetaConfigError,
    MetaTrainer,
    MetaTrainingArguments,
    SecondOrderUnsupportedError,
    TaskSplitTooSmallError,
    UnknownAdaptedParameterError,
    adapt_parameters,
    load_meta_learner,
)

TRAIN = dict(num_speakers=8, per_speaker=10, seed=0)
VAL = dict(num_speakers=4, per_speaker=10, seed=1)


def targs(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), method="maml", max_steps=6, inner_steps=2, inner_lr=0.3,
                shots=3, query_shots=3, tasks_per_step=2, learning_rate=0.05, logging_steps=2, save_steps=3,
                save_strategy="steps", seed=3, use_cpu=True, disable_tqdm=True, eval_num_tasks=4,
                lr_scheduler_type="linear", warmup_steps=1)
    base.update(kw)
    return MetaTrainingArguments(**base)


def trainer(tmp_path, model=None, train=None, val=None, meta_learner=None, **kw):
    return MetaTrainer(model if model is not None else toy_model(dropout=0.1), targs(tmp_path, **kw),
                       train_dataset=train if train is not None else toy_dataset(**TRAIN),
                       eval_dataset=val if val is not None else toy_dataset(**VAL), data_collator=toy_collator,
                       meta_learner=meta_learner)


def params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.slow
def test_meta_training_lowers_the_validation_query_loss_after_adaptation(tmp_path):
    t = trainer(tmp_path, max_steps=40, first_order=True, save_strategy="no", model=toy_model(),
                inner_steps=3, learning_rate=0.03)
    before = t.evaluate()
    t.train()
    after = t.evaluate()
    assert before["eval_query_loss_step_3"] < before["eval_query_loss_step_0"]  # adaptation helps at all
    assert after["eval_query_loss_after"] < 0.8 * before["eval_query_loss_after"], (before, after)
    logged = [h for h in t.state.log_history if "query_loss_after" in h]
    assert logged and all(h["query_loss_after"] < h["query_loss_before"] + 1e-6 for h in logged[-2:])
    assert logged[-1]["skipped_tasks_total"] == 0


def test_saved_model_loads_with_from_pretrained_and_the_meta_learner_round_trips(tmp_path):
    t = trainer(tmp_path, method="metasgd", max_steps=2, save_strategy="no")
    t.train()
    out = tmp_path / "final"
    t.save_model(str(out))
    files = set(os.listdir(out))
    assert {"model.safetensors", "config.json", "meta_learner.safetensors", "meta_learner_config.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    loaded = ToyTTS.from_pretrained(str(out))
    for n, p in t.model.model.named_parameters():
        assert torch.equal(p, dict(loaded.named_parameters())[n]), n
    head = load_meta_learner(str(out))
    assert head.config.method == "metasgd" and head.config.adapted_parameter_names == list(ToyTTS.ADAPTED)
    for k, v in t.model.head.state_dict().items():
        assert torch.equal(v, head.state_dict()[k])
    assert load_meta_learner(str(tmp_path)) is None
    voice = adapt_parameters(loaded, toy_collator([toy_dataset(**VAL)[i] for i in range(3)]), method="metasgd",
                             meta_learner=head, steps=2)
    assert set(voice) == set(ToyTTS.ADAPTED)


@pytest.mark.slow
@pytest.mark.parametrize("method,first_order", [("maml", False), ("meta_lstm", True)])
def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path, method, first_order):
    full = trainer(tmp_path / "a", method=method, first_order=first_order)
    full.train()
    # same run, stopped at step 3 (a checkpoint) and resumed in a fresh trainer
    part = trainer(tmp_path / "b", method=method, first_order=first_order)
    part.train()
    ckpt = tmp_path / "b" / "out" / "checkpoint-3"
    assert json.loads((ckpt / "episode_state.json").read_text())["next_episode"] == 3
    resumed = trainer(tmp_path / "c", method=method, first_order=first_order)
    resumed.train(resume_from_checkpoint=str(ckpt))
    a, c = params(full.model), params(resumed.model)
    for n in a:
        torch.testing.assert_close(c[n], a[n], rtol=0, atol=1e-6, msg=n)
    # the checkpoint itself holds the step-3 model, not the final one
    mid = load_file(str(ckpt / "model.safetensors"))
    assert not torch.equal(mid["proj.weight"], a["model.proj.weight"])


def test_resume_from_a_checkpoint_of_another_config_is_refused(tmp_path):
    t = trainer(tmp_path, max_steps=3, save_steps=3)
    t.train()
    ckpt = str(tmp_path / "out" / "checkpoint-3")
    other = trainer(tmp_path / "x", max_steps=6, inner_steps=3)
    with pytest.raises(CheckpointMismatchError, match="inner_steps: checkpoint 2 vs now 3"):
        other.train(resume_from_checkpoint=ckpt)


def test_pretrain_baseline_trains_speaker_embeddings_and_needs_enough_speakers(tmp_path):
    with pytest.raises(InvalidMetaConfigError, match="num_speakers"):
        trainer(tmp_path, method="pretrain", model=toy_model(num_speakers=2))
    t = trainer(tmp_path, method="pretrain", model=toy_model(num_speakers=8), max_steps=3, save_strategy="no")
    before = params(t.model.model)["speakers.weight"]
    t.train()
    assert not torch.equal(before, t.model.model.speakers.weight.detach())
    metrics = t.evaluate()  # the baseline's curve is plain fine-tuning of the same adapted set
    assert metrics["eval_query_loss_step_2"] < metrics["eval_query_loss_step_0"]


def test_zero_shot_start_meta_trains_the_support_encoder(tmp_path):
    t = trainer(tmp_path, model=toy_model(use_voice_encoder=True), zero_shot_start=True, max_steps=2,
                save_strategy="no", first_order=True, meta_learner_learning_rate=0.2)
    before = params(t.model.model)["voice_encoder.weight"]
    t.train()
    assert not torch.equal(before, t.model.model.voice_encoder.weight.detach())
    # the support encoder is the meta-learner's too: it trains at meta_learner_learning_rate
    encoder_ids = {id(p) for p in t.model.model.voice_encoder.parameters()}
    groups = [g for g in t.optimizer.param_groups if any(id(p) in encoder_ids for p in g["params"])]
    assert groups and all(g["initial_lr"] == 0.2 for g in groups)
    with pytest.raises(InvalidMetaConfigError, match="use_voice_encoder"):
        trainer(tmp_path, model=toy_model(), zero_shot_start=True)


def test_meta_learner_parameters_get_their_own_learning_rate(tmp_path):
    t = trainer(tmp_path, method="metasgd", max_steps=3, save_strategy="no", learning_rate=0.01,
                meta_learner_learning_rate=0.2, model=toy_model())
    rates_before = params(t.model.head)
    t.train()
    head_ids = {id(p) for p in t.model.head.parameters()}
    groups = t.optimizer.param_groups
    head_groups = [g for g in groups if g["params"] and all(id(p) in head_ids for p in g["params"])]
    assert head_groups and sum(len(g["params"]) for g in head_groups) == len(head_ids)
    assert all(g["initial_lr"] == 0.2 for g in head_groups)
    assert all(g["initial_lr"] == 0.01 for g in groups if g["params"] and g not in head_groups)
    moved = max((p.detach() - rates_before[n]).abs().max().item() for n, p in t.model.head.named_parameters())
    assert moved > 0.1  # at learning_rate 0.01 alone they move about 0.015 in these 3 steps
    with pytest.raises(InvalidMetaConfigError, match="meta_learner_learning_rate"):
        targs(tmp_path, meta_learner_learning_rate=0.0)


def test_learning_rate_zero_learns_the_rates_of_a_fixed_start(tmp_path):
    t = trainer(tmp_path, method="metasgd", max_steps=3, save_strategy="no", learning_rate=0.0,
                meta_learner_learning_rate=0.2, model=toy_model())
    weights_before, rates_before = params(t.model.model), params(t.model.head)
    t.train()
    assert all(torch.equal(p.detach(), weights_before[n]) for n, p in t.model.model.named_parameters())
    moved = max((p.detach() - rates_before[n]).abs().max().item() for n, p in t.model.head.named_parameters())
    assert moved > 0.1


def test_bad_input_is_refused_before_training(tmp_path):
    small = toy_dataset(num_speakers=3, per_speaker=4)
    with pytest.raises(TaskSplitTooSmallError, match="spk0"):
        trainer(tmp_path, train=small)
    with pytest.raises(UnknownAdaptedParameterError, match="decoder"):
        trainer(tmp_path, adapted_parameters=["decoder.*"])
    with pytest.raises(SecondOrderUnsupportedError, match="checkpointing"):
        targs(tmp_path, activation_checkpointing=True)
    targs(tmp_path, activation_checkpointing=True, first_order=True)  # fine first order
    with pytest.raises(InvalidMetaConfigError, match="max_steps"):
        targs(tmp_path, max_steps=-1)
    with pytest.raises(InvalidMetaConfigError, match="method"):
        targs(tmp_path, method="reptile")
    with pytest.raises(InvalidMetaConfigError, match="inner_optimizer='rmsprop' is unknown: choose one of sgd, adam"):
        targs(tmp_path, method="metasgd", inner_optimizer="rmsprop")
    with pytest.raises(InvalidMetaConfigError, match="the Meta-LSTM is the inner optimizer"):
        targs(tmp_path, method="meta_lstm", inner_optimizer="adam")
    assert targs(tmp_path, method="metasgd", inner_optimizer="adam").inner_optimizer == "adam"


def test_a_run_from_a_meta_trained_model_continues_its_meta_learner(tmp_path):
    from types import SimpleNamespace

    from hf_metatts.meta.cli import _trained_meta_learner

    first = trainer(tmp_path / "a", method="metasgd", max_steps=3, save_strategy="no",
                    meta_learner_learning_rate=0.2, model=toy_model())
    first.train()
    saved = tmp_path / "saved"
    first.save_model(str(saved))
    trained = load_meta_learner(str(saved))
    rates = torch.cat([p.flatten() for p in trained.parameters()])
    assert (rates - 0.3).abs().max() > 0.05  # the rates did move away from inner_lr
    model_args = SimpleNamespace(model_name_or_path=str(saved))
    found = _trained_meta_learner(model_args, targs(tmp_path, method="metasgd"))
    assert found is not None
    continued = trainer(tmp_path / "b", method="metasgd", model=toy_model(), meta_learner=found)
    for key, value in trained.state_dict().items():
        assert torch.equal(continued.model.head.state_dict()[key], value), key
    fresh = trainer(tmp_path / "c", method="metasgd", model=toy_model())
    assert all(torch.all(p == 0.3) for p in fresh.model.head.parameters())
    # another method, or continue_meta_learner=false: the meta-learner starts fresh
    assert _trained_meta_learner(model_args, targs(tmp_path, method="meta_lstm")) is None
    assert _trained_meta_learner(model_args, targs(tmp_path, method="metasgd", continue_meta_learner=False)) is None
    with pytest.raises(CheckpointMismatchError, match="method and the adapted parameter set must match"):
        trainer(tmp_path / "d", method="meta_lstm", model=toy_model(), meta_learner=found)
    assert all(torch.equal(p, q) for p, q in zip(found.parameters(), trained.parameters()))  # left unchanged
    # rates of SGD steps do not carry over to Adam steps: the CLI starts fresh, the trainer refuses them
    assert _trained_meta_learner(model_args, targs(tmp_path, method="metasgd", inner_optimizer="adam")) is None
    with pytest.raises(CheckpointMismatchError, match="'sgd' inner steps in a run with inner_optimizer='adam'"):
        trainer(tmp_path / "e", method="metasgd", inner_optimizer="adam", model=toy_model(), meta_learner=found)
    assert all(torch.equal(p, q) for p, q in zip(found.parameters(), trained.parameters()))


def test_zero_shot_refines_with_the_learned_rule_and_learned_methods_start_where_they_trained(tmp_path):
    from hf_metatts.meta.learner import encode_support

    t = trainer(tmp_path, method="metasgd", model=toy_model(use_voice_encoder=True), zero_shot_start=True,
                max_steps=3, save_strategy="no", first_order=True, meta_learner_learning_rate=0.2)
    t.train()
    model, head = t.model.model.eval(), t.model.head
    support = toy_collator([toy_dataset(**VAL)[i] for i in range(3)])
    own = {n: p.detach() for n, p in model.named_parameters() if n in head.config.adapted_parameter_names}
    start = {n: v.detach() for n, v in encode_support(model, [support], own).items()}
    assert any(not torch.equal(start[n], own[n]) for n in start)  # the trained encoder moves the start
    expected = adapt_parameters(model, support, method="metasgd", meta_learner=head, steps=2, init=start)
    zero_shot = adapt_parameters(model, support, method="zero_shot", meta_learner=head, steps=2)
    metasgd = adapt_parameters(model, support, method="metasgd", meta_learner=head, steps=2)
    plain_sgd = adapt_parameters(model, support, method="zero_shot", meta_learner=head, steps=2, lr=0.3)
    for name in expected:
        torch.testing.assert_close(zero_shot[name], expected[name], rtol=0, atol=1e-6)
        torch.testing.assert_close(metasgd[name], expected[name], rtol=0, atol=1e-6)
    assert any(not torch.allclose(plain_sgd[n], expected[n]) for n in expected)


def test_zero_shot_loss_weight_adds_the_query_loss_at_the_encoder_voice_to_the_objective(tmp_path):
    from hf_metatts.meta.maml import make_loss_fn, with_fixed_alignment

    losses = {}
    for weight in (0.0, 0.5):
        t = trainer(tmp_path / str(weight), method="metasgd", model=toy_model(use_voice_encoder=True),
                    zero_shot_start=True, zero_shot_loss_weight=weight, save_strategy="no", first_order=True)
        learner = t.model
        with torch.no_grad():  # a trained-looking encoder, so its voice is not the init
            learner.model.voice_encoder.weight.normal_(0, 0.5)
        episode = t.episode_sampler.collate(t.episode_sampler.episode(0), toy_collator)
        torch.manual_seed(0)
        out = learner(episode["support"], episode["query"])
        stats = learner.last_stats
        start = []
        with torch.no_grad():
            for support, query in zip(episode["support"], episode["query"]):
                params = learner.initial_params(with_fixed_alignment(learner.model, support))
                start.append(float(make_loss_fn(learner.model)(params, query)))
        assert stats["query_loss_before"] == pytest.approx(sum(start) / len(start), rel=1e-5)
        expected = stats["query_loss_after"] + weight * stats["query_loss_before"]
        assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)
        out.loss.backward()
        losses[weight] = (float(out.loss.detach()), learner.model.voice_encoder.weight.grad.clone())
    assert losses[0.5][0] > losses[0.0][0]
    assert not torch.allclose(losses[0.5][1], losses[0.0][1])  # the start term reaches the encoder
    with pytest.raises(InvalidMetaConfigError, match="method='pretrain' has none"):
        targs(tmp_path, method="pretrain", zero_shot_loss_weight=1.0)
    with pytest.raises(InvalidMetaConfigError, match="zero_shot_loss_weight=-1"):
        targs(tmp_path, zero_shot_start=True, zero_shot_loss_weight=-1.0)


def test_zero_shot_loss_weight_anchors_a_plain_start_the_same_way(tmp_path):
    """Without the support encoder the weighed start is the model's own adapted set: the term adds the query loss
    there, and its gradient on the start is the query loss's gradient at the start on top of the first-order one."""
    from hf_metatts.meta.maml import make_loss_fn, with_fixed_alignment

    results = {}
    for weight in (0.0, 1.0):
        t = trainer(tmp_path / str(weight), model=toy_model(dropout=0.0), method="maml", inner_lr=0.05,
                    zero_shot_loss_weight=weight, save_strategy="no", first_order=True)
        learner = t.model
        episode = t.episode_sampler.collate(t.episode_sampler.episode(0), toy_collator)
        torch.manual_seed(0)
        out = learner(episode["support"], episode["query"])
        stats = learner.last_stats
        names = learner.meta_config.adapted_parameter_names
        own = dict(learner.model.named_parameters())
        start_grads = {n: torch.zeros_like(own[n]) for n in names}
        start_losses = []
        for support, query in zip(episode["support"], episode["query"]):
            params = learner.initial_params(with_fixed_alignment(learner.model, support))
            loss = make_loss_fn(learner.model)(params, query)
            start_losses.append(float(loss.detach()))
            for n, g in zip(names, torch.autograd.grad(loss, [params[n] for n in names])):
                start_grads[n] += g / len(episode["support"])
        learner.zero_grad()
        assert stats["query_loss_before"] == pytest.approx(sum(start_losses) / len(start_losses), rel=1e-5)
        expected = stats["query_loss_after"] + weight * stats["query_loss_before"]
        assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)
        out.loss.backward()
        results[weight] = {n: own[n].grad.clone() for n in names}, start_grads
    (plain, _), (anchored, start_grads) = results[0.0], results[1.0]
    for n in plain:
        torch.testing.assert_close(anchored[n], plain[n] + start_grads[n], rtol=1e-4, atol=1e-6)
    assert any(start_grads[n].abs().max() > 0 for n in plain)


def test_train_tasks_patterns_keep_the_matching_tasks_and_an_unmatched_pattern_is_a_clear_error():
    from datasets import Dataset

    from hf_metatts.meta.cli import select_train_tasks

    names = ["espeak:en-us+m1", "espeak:de+f2", "festival:kal_diphone", "flite:kal16", "flite:kal16~p0.80_f0.92"]
    train = Dataset.from_dict({"speaker_id": [n for n in names for _ in range(3)], "row": list(range(15))})
    kept = select_train_tasks(train, "speaker_id", ["festival:*", "flite:*"], None)
    assert sorted(set(kept["speaker_id"])) == ["festival:kal_diphone", "flite:kal16", "flite:kal16~p0.80_f0.92"]
    assert kept.num_rows == 9
    assert set(select_train_tasks(train, "speaker_id", ["flite:*"], 1)["speaker_id"]) == {"flite:kal16"}
    assert select_train_tasks(train, "speaker_id", None, None) is train  # nothing asked, nothing filtered
    with pytest.raises(InvalidMetaConfigError, match=r"train_tasks patterns \['vits:\*'\] match no speaker_id"):
        select_train_tasks(train, "speaker_id", ["flite:*", "vits:*"], None)
    assert train.num_rows == 15 and len(set(train["speaker_id"])) == 5  # the split itself is untouched
