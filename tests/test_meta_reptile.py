"""Reptile (``outer_update="reptile"``): its outer direction, its update through the Trainer, and its refusals."""

import json
import os
import re

import pytest
import torch
from test_meta_maml import learner
from test_meta_toy import toy_batch, toy_collator, toy_dataset, toy_model
from test_meta_trainer import TRAIN, params, targs, trainer
from torch import nn

from hf_metatts.meta import (
    CheckpointMismatchError,
    InvalidMetaConfigError,
    MetaLearner,
    MetaLearnerConfig,
    adapt_parameters,
    reptile_loss,
    resolve_adapted_names,
)


def held_out_batch(speaker, n=4):
    """Rows 5..5+n of ``speaker`` in the toy corpus that ``toy_batch(speaker, 4, seed=0)`` draws rows 0..3 from."""
    corpus = toy_dataset(seed=0)
    return toy_collator([corpus[i] for i in range(speaker * 10 + 5, speaker * 10 + 5 + n)])


def reptile_learner(model=None, optimizer="sgd", **kw):
    """test_meta_maml's learner (inner rate 0.1), three first-order steps of ``optimizer``, Reptile's outer update."""
    return learner(first_order=True, steps=3, model=model, inner_optimizer=optimizer, outer_update="reptile", **kw)


def test_reptile_loss_has_the_start_minus_the_adapted_parameters_as_its_gradient():
    start = {"a": torch.tensor([1.0, 2.0], requires_grad=True), "b": torch.tensor([[0.5]], requires_grad=True)}
    adapted = {"a": torch.tensor([0.0, 4.0], requires_grad=True), "b": torch.tensor([[1.5]])}
    loss = reptile_loss(start, adapted)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * (1 + 4 + 1))
    torch.testing.assert_close(start["a"].grad, torch.tensor([1.0, -2.0]))
    torch.testing.assert_close(start["b"].grad, torch.tensor([[-1.0]]))
    assert adapted["a"].grad is None  # the target is fixed
    with pytest.raises(ValueError, match="same parameters"):
        reptile_loss(start, {"a": adapted["a"]})
    with pytest.raises(ValueError, match="differ in shape"):
        reptile_loss(start, {"a": adapted["a"], "b": torch.zeros(2)})


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_episode_gives_the_start_the_mean_of_start_minus_adapted_and_the_backbone_nothing(optimizer):
    learner = reptile_learner(optimizer=optimizer)
    model = learner.model
    support = [[toy_batch(speaker, 4, seed=0)] for speaker in (0, 1)]
    query = [[held_out_batch(speaker)] for speaker in (0, 1)]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    learner(support=support, query=query).loss.backward()
    for name in learner.meta_config.adapted_parameter_names:  # the same steps, taken by the adaptation API
        adapted = [adapt_parameters(model, s, method="maml", steps=3, meta_learner=learner.head)[name].detach()
                   for s in support]
        expected = sum(start[name] - a for a in adapted) / len(adapted)
        assert expected.abs().max() > 1e-4
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, expected, rtol=1e-5, atol=1e-7)
    backbone = [n for n, p in model.named_parameters() if n not in learner.meta_config.adapted_parameter_names]
    assert backbone and all(dict(model.named_parameters())[n].grad is None for n in backbone)
    stats = learner.last_stats
    assert stats["reptile_distance"] > 0 and stats["tasks"] == 2 and stats["skipped_tasks"] == 0
    assert stats["query_loss_after"] < stats["query_loss_before"]  # logged: the model's loss, not the distance


def test_one_sgd_step_of_rate_one_moves_the_start_onto_the_adapted_parameters():
    learner = reptile_learner()
    model = learner.model
    support = [[toy_batch(2, 4, seed=0)]]
    names = learner.meta_config.adapted_parameter_names
    target = adapt_parameters(model, support[0], method="maml", steps=3, meta_learner=learner.head)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    learner(support=support, query=[[held_out_batch(2)]]).loss.backward()
    optimizer.step()
    for name in names:
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), target[name].detach())


def test_zero_shot_start_trains_the_support_encoder_toward_the_adapted_voice():
    learner = reptile_learner(model=toy_model(use_voice_encoder=True), zero_shot_start=True)
    support = [[toy_batch(s, 4, seed=0)] for s in (0, 1)]
    learner(support=support, query=[[held_out_batch(s)] for s in (0, 1)]).loss.backward()
    model = learner.model
    assert model.voice_encoder.weight.grad.abs().sum() > 1e-6
    assert model.voice.speaker.grad is None  # the encoder emits the start of voice.speaker
    assert model.cond_norm.bias.grad.abs().sum() > 1e-6  # the model's own start for the rest
    assert model.proj.weight.grad is None


class Targets(nn.Module):
    """Task ``i``'s loss is ``|w - c_i|^2``: from ``w``, ``k`` SGD steps of rate ``a`` land on
    ``c_i + (1 - 2a)^k (w - c_i)``, so Reptile's only fixed point is the mean of the ``c_i``."""

    def __init__(self, dim):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def adapted_parameter_names(self):
        return ["w"]

    def forward(self, target):
        return {"loss": (self.w - target[0]).pow(2).sum()}


def test_reptile_converges_to_the_mean_of_the_task_optima():
    targets = torch.tensor([[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0]], dtype=torch.float64)
    model = Targets(2)
    cfg = MetaLearnerConfig(method="maml", first_order=True, inner_steps=3, inner_lr=0.1, outer_update="reptile",
                            adapted_parameter_names=["w"])
    learner = MetaLearner(model, cfg)
    learner.log_before = False
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    tasks = [[{"target": c[None]}] for c in targets]
    for _ in range(120):  # the distance shrinks by 1 - 0.5 * (1 - 0.8 ** 3) per episode
        optimizer.zero_grad()
        learner(support=tasks, query=tasks).loss.backward()
        optimizer.step()
    torch.testing.assert_close(model.w.detach(), targets.mean(0), rtol=0, atol=1e-9)


@pytest.mark.slow
def test_meta_training_with_reptile_lowers_the_loss_after_adaptation_and_keeps_every_other_weight(tmp_path):
    model = toy_model()
    before = params(model)
    names = resolve_adapted_names(model)
    # Read on the training speakers, the tasks whose loss after the steps Reptile lowers (the toy's 4 validation
    # speakers lie far from the centre of its 8 training speakers)
    t = trainer(tmp_path, model=model, val=toy_dataset(**TRAIN), method="maml", first_order=True,
                outer_update="reptile", optim="sgd", learning_rate=0.3, max_grad_norm=0.0, inner_steps=3,
                max_steps=30, save_strategy="no", lr_scheduler_type="constant", warmup_steps=0)
    evaluated_before = t.evaluate()
    t.train()
    evaluated_after = t.evaluate()
    assert evaluated_after["eval_query_loss_after"] < 0.85 * evaluated_before["eval_query_loss_after"], (
        evaluated_before, evaluated_after)
    after = params(model)
    assert any(not torch.equal(before[n], after[n]) for n in names)
    assert all(torch.equal(before[n], after[n]) for n in before if n not in names)
    logged = [h for h in t.state.log_history if "reptile_distance" in h]
    assert logged and logged[-1]["reptile_distance"] < logged[0]["reptile_distance"]
    t.save_model()
    with open(os.path.join(t.args.output_dir, "meta_learner_config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["outer_update"] == "reptile"


def test_resuming_a_reptile_run_as_maml_is_refused(tmp_path):
    t = trainer(tmp_path, method="maml", first_order=True, outer_update="reptile", max_steps=3, save_steps=3)
    t.train()
    checkpoint = os.path.join(t.args.output_dir, "checkpoint-3")
    maml = trainer(tmp_path, method="maml", first_order=True, max_steps=6, save_steps=3)
    with pytest.raises(CheckpointMismatchError, match="outer_update"):
        maml.train(resume_from_checkpoint=checkpoint)


@pytest.mark.parametrize("settings, message", [
    (dict(method="reptile"), "method='maml' with outer_update='reptile'"),
    (dict(outer_update="averaging"), "outer_update='averaging' is unknown: choose one of query_loss, reptile"),
    (dict(method="metasgd", outer_update="reptile", first_order=True),
     "Set method='maml' or outer_update='query_loss'"),
    (dict(method="meta_lstm", outer_update="reptile", first_order=True),
     "method='meta_lstm' learns from the query loss"),
    (dict(outer_update="reptile", first_order=False), "first order by definition"),
    (dict(outer_update="reptile", first_order=True, zero_shot_loss_weight=1.0), "zero_shot_loss_weight"),
    (dict(outer_update="reptile", first_order=True, multi_step_loss=True), "multi_step_loss"),
    (dict(outer_update="reptile", first_order=True, content_loss_weight=0.1), "content_loss_weight"),
])
def test_settings_reptile_cannot_follow_are_refused_with_what_to_change(tmp_path, settings, message):
    with pytest.raises(InvalidMetaConfigError, match=re.escape(message)):
        targs(tmp_path, **settings)
    assert not os.path.exists(tmp_path / "out")  # refused before anything is written

