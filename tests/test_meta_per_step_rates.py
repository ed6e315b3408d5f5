"""Meta-SGD with one learned rate per inner step and element (``per_step_rates``): the schedule the rule follows,
its meta-gradients, saving and loading, scaling, and the settings it is refused with."""

import pytest
import torch
from test_meta_maml import episode, learner
from test_meta_toy import toy_batch, toy_model

from hf_metatts.meta import MetaTrainingArguments, adapt_parameters, load_meta_learner
from hf_metatts.meta.arguments import validate_meta_arguments
from hf_metatts.meta.errors import InvalidMetaConfigError
from hf_metatts.meta.maml import AdamRule, SGDRule, rate_at


def test_the_rate_of_a_step_is_its_row_and_the_last_row_serves_later_steps():
    rates = {"w": torch.tensor([[0.1, 0.2], [0.3, 0.4]])}
    assert rate_at(0.5, "w", 7, per_step=False) == 0.5
    assert torch.equal(rate_at(rates, "w", 0, per_step=False), rates["w"])  # per element: the whole tensor
    assert torch.equal(rate_at(rates, "w", 0, per_step=True), torch.tensor([0.1, 0.2]))
    assert torch.equal(rate_at(rates, "w", 1, per_step=True), torch.tensor([0.3, 0.4]))
    assert torch.equal(rate_at(rates, "w", 5, per_step=True), torch.tensor([0.3, 0.4]))


@pytest.mark.parametrize("rule_class", [SGDRule, AdamRule])
def test_each_step_moves_by_its_own_rate(rule_class):
    rates = torch.tensor([[0.1, 0.1], [0.0, 0.0], [0.2, 0.2]], requires_grad=True)
    rule = rule_class({"w": rates}, per_step=True)
    params, state = {"w": torch.zeros(2)}, rule.init_state({"w": torch.zeros(2)})
    history = []
    for step in range(3):
        params, state = rule.step(state, params, {"w": torch.tensor([1.0, -1.0])}, None, step)
        history.append(params["w"].detach().clone())
    assert not torch.equal(history[0], torch.zeros(2))
    assert torch.equal(history[1], history[0])  # a zero row: the second step stands still
    assert (history[2] - history[1]).abs().sum() > 0
    params["w"].sum().backward()
    assert rates.grad[0].abs().sum() > 0 and rates.grad[2].abs().sum() > 0  # every row used gets a meta-gradient


def test_meta_training_learns_a_schedule_and_adaptation_follows_it():
    ml = learner(method="metasgd", first_order=True, steps=3, inner_optimizer="adam", per_step_rates=True)
    rates = list(ml.head.inner_lrs.values())
    assert all(rate.shape[0] == 3 for rate in rates)
    ml(**episode()).loss.backward()
    assert all(rate.grad is not None and all(rate.grad[s].abs().sum() > 0 for s in range(3)) for rate in rates)
    with torch.no_grad():
        for rate in rates:
            rate.zero_()
            rate[0].fill_(0.05)  # one step of 0.05, then none
    model, batch = ml.model, toy_batch(3)
    one = adapt_parameters(model, batch, method="metasgd", meta_learner=ml.head, steps=1)
    three = adapt_parameters(model, batch, method="metasgd", meta_learner=ml.head, steps=2)
    assert all(torch.equal(one[name], three[name]) for name in one)
    own = dict(model.named_parameters())
    assert any(not torch.equal(one[name], own[name].detach()) for name in one)


def test_per_step_rates_save_load_and_scale_with_their_step_axis(tmp_path):
    ml = learner(method="metasgd", first_order=True, steps=4, per_step_rates=True)
    with torch.no_grad():
        for rate in ml.head.inner_lrs.values():
            rate.copy_(torch.rand_like(rate))
    ml.head.save_pretrained(str(tmp_path))
    loaded = load_meta_learner(str(tmp_path))
    assert loaded.config.per_step_rates
    for name, rate in ml.head.learning_rates().items():
        assert torch.equal(loaded.learning_rates()[name], rate.detach())
    doubled = loaded.scaled(2.0)
    for name, rate in loaded.learning_rates().items():
        assert doubled.learning_rates()[name].shape == rate.shape == (4, *toy_model().get_parameter(name).shape)
        torch.testing.assert_close(doubled.learning_rates()[name], 2 * rate)


@pytest.mark.parametrize("method", ["maml", "meta_lstm", "pretrain"])
def test_per_step_rates_need_meta_sgd(tmp_path, method):
    with pytest.raises(InvalidMetaConfigError, match="per_step_rates=true learns Meta-SGD rates per step"):
        MetaTrainingArguments(output_dir=str(tmp_path), method=method, per_step_rates=True, report_to="none",
                              max_steps=1)
    args = MetaTrainingArguments(output_dir=str(tmp_path), method="metasgd", per_step_rates=True, report_to="none",
                                 max_steps=1)
    validate_meta_arguments(args)  # Meta-SGD takes it
