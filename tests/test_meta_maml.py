"""MAML / Meta-SGD inner loop: meta-gradients, first vs second order, purity, NaN handling."""

import math

import pytest
import torch
from test_meta_toy import toy_batch, toy_model
from torch import nn

from hf_metatts.meta import (
    MetaLearner,
    MetaLearnerConfig,
    SGDRule,
    UnknownAdaptedParameterError,
    adapt_parameters,
    inner_loop,
    make_loss_fn,
    multi_step_loss_weights,
    resolve_adapted_names,
)


def learner(method="maml", first_order=False, steps=2, model=None, **kw):
    model = model if model is not None else toy_model()
    names = resolve_adapted_names(model, kw.pop("patterns", None))
    cfg = MetaLearnerConfig(method=method, first_order=first_order, inner_steps=steps, inner_lr=0.1,
                            adapted_parameter_names=names, **kw)
    return MetaLearner(model, cfg)


def episode(tasks=(0, 1)):
    return {"support": [[toy_batch(s, 4, seed=0)] for s in tasks],
            "query": [[toy_batch(s, 4, seed=0) | {}] for s in tasks]}


def test_meta_gradients_reach_the_initialisation_and_the_backbone():
    ml = learner()
    ml(**episode()).loss.backward()
    grads = {n: p.grad for n, p in ml.model.named_parameters()}
    assert grads["voice.speaker"].abs().sum() > 1e-6
    assert grads["cond_norm.bias"].abs().sum() > 1e-6
    assert grads["proj.weight"].abs().sum() > 1e-6  # backbone gets the outer gradient too


class Quad(nn.Module):
    """loss = mean_i (x_i . w - y_i)^2: gradient 2/n X^T (Xw - y), Hessian 2/n X^T X."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x, y):
        return {"loss": ((x @ self.w - y) ** 2).mean()}


def quad_grad(x, y, w):
    return 2.0 / x.shape[0] * x.T @ (x @ w - y)


@pytest.mark.parametrize("first_order", [True, False])
def test_one_step_meta_gradient_equals_hand_computed_reference(first_order):
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    xq, yq = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    w0 = torch.randn(3, generator=g, dtype=torch.float64)
    alpha = 0.1
    model = Quad(w0)
    loss_fn = make_loss_fn(model)
    res = inner_loop(loss_fn, {"w": model.w}, [{"x": xs, "y": ys}], 1, SGDRule(alpha), first_order)
    loss_fn(res.params, [{"x": xq, "y": yq}]).backward()
    w1 = w0 - alpha * quad_grad(xs, ys, w0)
    g_query = quad_grad(xq, yq, w1)
    hessian = 2.0 / xs.shape[0] * xs.T @ xs
    expected = g_query if first_order else (torch.eye(3, dtype=torch.float64) - alpha * hessian) @ g_query
    torch.testing.assert_close(res.params["w"].detach(), w1)
    torch.testing.assert_close(model.w.grad, expected, rtol=1e-10, atol=1e-12)


def test_second_order_differs_from_first_order_on_the_toy_tts():
    grads = {}
    for fo in (True, False):
        ml = learner(first_order=fo)
        ml(**episode()).loss.backward()
        grads[fo] = torch.cat([p.grad.flatten() for p in ml.model.parameters() if p.grad is not None])
    assert grads[True].shape == grads[False].shape
    assert (grads[True] - grads[False]).abs().max() > 1e-5


def test_only_the_adapted_subset_changes_and_the_model_is_bit_identical():
    model = toy_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = resolve_adapted_names(model, ["cond_norm.bias"])
    for method in ("maml", "finetune"):
        adapted = adapt_parameters(model, toy_batch(2), method=method, steps=3, lr=0.1, adapted_names=names)
        assert set(adapted) == {"cond_norm.bias"}
        assert not torch.equal(adapted["cond_norm.bias"], before["cond_norm.bias"])
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
        assert p.grad is None, n


def test_inner_loop_never_writes_the_model_parameters_during_meta_training():
    ml = learner(first_order=False, steps=3)
    before = {n: p.detach().clone() for n, p in ml.model.named_parameters()}
    ml(**episode())
    for n, p in ml.model.named_parameters():
        assert torch.equal(p, before[n])


def test_adaptation_lowers_the_support_loss():
    model = toy_model()
    batch = toy_batch(3)
    start = float(model(**batch).loss.detach())
    adapted = adapt_parameters(model, batch, method="maml", steps=10, lr=0.3)
    after = float(torch.func.functional_call(model, adapted, args=(), kwargs=batch).loss.detach())
    assert after < 0.7 * start


def test_meta_sgd_learning_rates_receive_gradients_first_and_second_order():
    for fo in (True, False):
        ml = learner(method="metasgd", first_order=fo)
        ml(**episode()).loss.backward()
        lrs = list(ml.head.inner_lrs.values())
        assert len(lrs) == 3
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lrs)
        assert torch.allclose(lrs[0].detach(), torch.full_like(lrs[0], 0.1))


def test_a_task_with_nan_is_skipped_and_counted():
    ml = learner()
    ep = episode((0, 1, 2))
    ep["support"][1][0]["labels"][0, 0, 0] = float("nan")
    out = ml(**ep)
    assert ml.last_stats["skipped_tasks"] == 1
    assert math.isfinite(float(out.loss.detach()))
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in ml.model.parameters() if p.grad is not None)


def test_all_tasks_diverging_gives_a_zero_finite_loss():
    ml = learner()
    ep = episode((0,))
    ep["support"][0][0]["labels"][:] = float("inf")
    out = ml(**ep)
    assert float(out.loss.detach()) == 0.0 and ml.last_stats["skipped_tasks"] == 1
    out.loss.backward()


def test_multi_step_loss_weights_anneal_to_the_last_step():
    assert multi_step_loss_weights(4, 0.0) == pytest.approx([0.25] * 4)
    late = multi_step_loss_weights(4, 1.0, min_weight=0.03)
    assert late[:3] == pytest.approx([0.0075] * 3) and sum(late) == pytest.approx(1.0)
    ml = learner(steps=3, multi_step_loss=True)
    out = ml(**episode())
    assert math.isfinite(float(out.loss.detach()))


def test_unknown_adapted_pattern_is_a_clear_error():
    with pytest.raises(UnknownAdaptedParameterError, match="nope"):
        resolve_adapted_names(toy_model(), ["voice.*", "nope.*"])


def test_adam_rule_takes_the_steps_of_torch_adam_and_its_rates_are_learnable():
    from hf_metatts.meta.maml import AdamRule

    start = torch.randn(7, generator=torch.Generator().manual_seed(0))
    reference = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([reference], lr=0.05)
    params, rule = {"w": start.clone()}, AdamRule(0.05)
    state = rule.init_state(params)
    for step in range(5):
        params, state = rule.step(state, params, {"w": 2 * params["w"] - 1}, None, step)
        optimizer.zero_grad()
        (reference**2 - reference).sum().backward()
        optimizer.step()
    torch.testing.assert_close(params["w"], reference.detach(), rtol=0, atol=1e-6)
    # per-parameter rates: each coordinate moves by about its own rate in the first step, whatever the gradient
    rates = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    moved, _ = AdamRule({"w": rates}).step(AdamRule(0.0).init_state({"w": torch.zeros(3)}), {"w": torch.zeros(3)},
                                           {"w": torch.tensor([1e-3, -5.0, 40.0])}, None, 0)
    torch.testing.assert_close(moved["w"].detach(), torch.tensor([-0.1, 0.2, -0.3]), rtol=1e-4, atol=1e-6)
    moved["w"].sum().backward()
    torch.testing.assert_close(rates.grad, torch.tensor([-1.0, 1.0, -1.0]), rtol=1e-4, atol=1e-6)


def test_metasgd_over_adam_directions_trains_its_rates_and_adapts_with_them():
    for fo in (True, False):
        ml = learner(method="metasgd", first_order=fo, inner_optimizer="adam")
        ml(**episode()).loss.backward()
        rates = list(ml.head.inner_lrs.values())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in rates)
    model, batch = toy_model(), toy_batch(3)
    ml = learner(method="metasgd", first_order=True, inner_optimizer="adam", model=model)
    with torch.no_grad():
        for rate in ml.head.inner_lrs.values():
            rate.fill_(0.02)
    adapted = adapt_parameters(model, batch, method="metasgd", meta_learner=ml.head, steps=1)
    own = dict(model.named_parameters())
    for name, value in adapted.items():  # one Adam step moves every coordinate with a gradient by its rate
        moved = (value - own[name].detach()).abs()
        assert moved.max() > 0 and torch.all(((moved - 0.02).abs() < 1e-4) | (moved == 0)), name
    plain = adapt_parameters(model, batch, method="maml", meta_learner=ml.head, steps=1, lr=0.02)
    for name in adapted:  # maml with that meta-learner takes the same Adam direction with one rate
        torch.testing.assert_close(plain[name], adapted[name], rtol=0, atol=1e-6)
