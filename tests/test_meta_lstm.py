"""Meta-LSTM optimiser: preprocessing, SGD-like start, gradients, adaptation."""

import math

import torch
from test_meta_toy import toy_batch, toy_model

from hf_metatts.meta import MetaLearner, MetaLearnerConfig, MetaLSTMOptimizer, adapt_parameters, preprocess
from hf_metatts.meta.head import MetaLearnerHead


def lstm_learner(first_order=True, steps=2):
    model = toy_model()
    cfg = MetaLearnerConfig(method="meta_lstm", inner_lr=0.1, inner_steps=steps, first_order=first_order,
                            adapted_parameter_names=model.adapted_parameter_names())
    return MetaLearner(model, cfg)


def test_preprocess_matches_the_log_sign_formula():
    x = torch.tensor([1.0, -0.5, 1e-6, 0.0], dtype=torch.float64)
    out = preprocess(x, p=10.0)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out[1], torch.tensor([math.log(0.5) / 10, -1.0], dtype=torch.float64))
    torch.testing.assert_close(out[2], torch.tensor([-1.0, math.exp(10) * 1e-6], dtype=torch.float64))
    torch.testing.assert_close(out[3], torch.tensor([-1.0, 0.0], dtype=torch.float64))


def test_first_update_at_initialisation_is_close_to_an_sgd_step():
    torch.manual_seed(0)
    opt = MetaLSTMOptimizer(hidden_size=20, inner_lr=0.05)
    theta = torch.randn(500)
    grad = torch.randn(500)
    new, state = opt.update(opt.init_state(500), theta, grad, torch.tensor(1.3))
    sgd = theta - 0.05 * grad
    step, sgd_step = new - theta, sgd - theta
    rel = (step - sgd_step).norm() / sgd_step.norm()
    assert rel < 0.02, float(rel)
    assert state.i.shape == (500, 1) and state.h.shape == (500, 20)


def test_meta_lstm_receives_gradients_from_the_query_loss():
    for first_order in (True, False):
        ml = lstm_learner(first_order=first_order)
        ep = {"support": [[toy_batch(0)], [toy_batch(1)]], "query": [[toy_batch(0, seed=1)], [toy_batch(1, seed=1)]]}
        ml(**ep).loss.backward()
        lstm = ml.head.meta_lstm
        for name in ("w_i", "w_f", "b_i", "b_f", "cell.weight_ih", "h0", "i0"):
            grad = lstm.get_parameter(name).grad
            assert grad is not None and grad.abs().sum() > 0, (first_order, name)
        assert ml.model.voice.speaker.grad.abs().sum() > 0  # the learned initial cell state


def test_meta_lstm_adaptation_lowers_the_support_loss_and_round_trips(tmp_path):
    ml = lstm_learner()
    ml.head.save_pretrained(tmp_path)
    head = MetaLearnerHead.from_pretrained(str(tmp_path))
    for (n, a), b in zip(ml.head.state_dict().items(), head.state_dict().values()):
        assert torch.equal(a, b), n
    model, batch = ml.model, toy_batch(3)
    start = float(model(**batch).loss.detach())
    adapted = adapt_parameters(model, batch, method="meta_lstm", steps=10, meta_learner=head)
    after = float(torch.func.functional_call(model, adapted, args=(), kwargs=batch).loss.detach())
    assert after < 0.8 * start
