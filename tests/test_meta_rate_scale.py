"""A factor on a meta-learner's step sizes (``MetaLearnerHead.scaled``): the numbers it writes, the copies it leaves
alone, the rules it refuses, and where the benchmarks take it (``scaled:S`` rules, ``--rate-scale``)."""

import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import tiny_model

from hf_metatts.evaluation.benchmark import BenchmarkConfigError, BenchmarkSettings, run_benchmark
from hf_metatts.meta import InvalidMetaConfigError, adapt_parameters
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead


def _head(method="metasgd", **kw):
    model = tiny_model().eval()
    names = model.adapted_parameter_names()
    shapes = {n: model.get_parameter(n).shape for n in names}
    head = MetaLearnerHead(MetaLearnerConfig(method=method, inner_lr=0.03, inner_optimizer="adam",
                                             adapted_parameter_names=names, **kw), shapes)
    if method == "metasgd":
        with torch.no_grad():  # rates as meta-training leaves them: one per element, all different
            for rate in head.inner_lrs.values():
                rate.copy_(0.01 + 0.04 * torch.rand(rate.shape))
    return model, head


def test_every_learned_rate_is_multiplied_and_the_original_is_left_alone():
    _, head = _head()
    before = {n: t.detach().clone() for n, t in head.learning_rates().items()}
    scaled = head.scaled(1.5)
    assert set(scaled.learning_rates()) == set(before)
    for name, rate in scaled.learning_rates().items():
        assert torch.allclose(rate, before[name] * 1.5)
        assert torch.equal(head.learning_rates()[name], before[name])
    assert scaled.config.inner_lr == pytest.approx(0.045) and head.config.inner_lr == 0.03
    assert scaled.config.method == "metasgd" and scaled.config.inner_optimizer == "adam"


def test_a_fixed_rate_is_multiplied_too():
    _, head = _head("maml")
    assert head.scaled(0.5).learning_rates() == pytest.approx(0.015)
    assert head.learning_rates() == 0.03


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_factors_are_refused(factor):
    _, head = _head()
    with pytest.raises(InvalidMetaConfigError, match="finite number > 0"):
        head.scaled(factor)


def test_a_meta_lstm_has_no_rate_to_scale():
    _, head = _head("meta_lstm")
    with pytest.raises(InvalidMetaConfigError, match="Meta-LSTM"):
        head.scaled(2.0)


def test_larger_steps_move_the_voice_further():
    model, head = _head()
    generator = torch.Generator().manual_seed(0)
    support = {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
               "attention_mask": torch.ones(2, 6, dtype=torch.long),
               "labels": torch.randn(2, 24, model.config.num_mel_bins, generator=generator) - 4.0,
               "labels_attention_mask": torch.ones(2, 24, dtype=torch.long),
               "durations": torch.full((2, 6), 4, dtype=torch.long)}
    start = {n: p.detach().clone() for n, p in model.named_parameters() if n in head.config.adapted_parameter_names}

    def moved(meta_learner):
        params = adapt_parameters(model, support, method="metasgd", steps=3, meta_learner=meta_learner)
        return float(torch.sqrt(sum(((params[n] - start[n]) ** 2).sum() for n in start)))

    one, two = moved(head), moved(head.scaled(2.0))
    assert one > 0 and two == pytest.approx(2 * one, rel=0.3)


def test_the_scaled_rule_parses_and_bad_factors_are_refused():
    rules = load_benchmark_script("adaptation_rules")
    assert rules.parse_rule("scaled:1.5", 5) == rules.Rule("scaled:1.5", "learned", scale=1.5)
    assert rules.parse_rule("scaled:2+gv0.3", 5) == rules.Rule("scaled:2+gv0.3", "learned", scale=2.0,
                                                                 global_variance_weight=0.3)
    for text in ("scaled:0", "scaled:-1", "scaled:x", "scaled:", "scaled:inf"):
        with pytest.raises(SystemExit, match="'scaled:S' with a factor S > 0"):
            rules.parse_rule(text, 5)


def test_the_harness_refuses_bad_factors_before_it_runs(tmp_path):
    for factor in (0.0, -2.0, float("nan")):
        with pytest.raises(BenchmarkConfigError, match="rate_scales"):
            BenchmarkSettings(corpus="x", checkpoints={"metasgd": "x"}, rate_scales={"metasgd": factor}).validate()
    harness = load_benchmark_script("default_checkpoint")
    out = tmp_path / "never.json"
    with pytest.raises(SystemExit):
        harness.main(["--checkpoints", "metasgd=x", "--rate-scale", "metasgd=0", "--out", str(out)])
    assert not out.exists()


def test_the_harness_scales_and_records_the_factor(tmp_path):
    from tiny_models import save_tiny_checkpoint

    from hf_metatts.data import build_corpus

    corpus = tmp_path / "voices"
    build_corpus(corpus, "tiny", num_workers=2)
    model = save_tiny_checkpoint(tmp_path / "model")
    names = model.adapted_parameter_names()
    MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_lr=0.05, adapted_parameter_names=names),
                    {n: model.get_parameter(n).shape for n in names}).save_pretrained(str(tmp_path / "model"))
    results = {}
    for scale in (None, 3.0):
        settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"metasgd": str(tmp_path / "model")},
                                     shots=[1], steps=[2], max_tasks=2, eval_metrics=["similarity"],
                                     rate_scales={} if scale is None else {"metasgd": scale})
        results[scale] = run_benchmark(settings)["methods"]["metasgd"]
    assert results[None]["rate_scale"] is None and results[3.0]["rate_scale"] == 3.0
    losses = [[v["support_loss"] for v in results[s]["results"]["1"]["2"]["per_task"].values()] for s in results]
    assert losses[0] != losses[1]
    with pytest.raises(BenchmarkConfigError, match="no meta-learner"):
        run_benchmark(BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(tmp_path / "model")},
                                        shots=[1], steps=[0], max_tasks=1, eval_metrics=["similarity"],
                                        rate_scales={"finetune": 2.0}))
