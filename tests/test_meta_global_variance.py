"""The global-variance term of the inner loop: its numbers, its bad inputs, and that it changes adaptation in the
direction it should (a flattened prediction is pushed back towards the target's dynamics)."""

import math

import pytest
import torch
from test_meta_identity import _args
from tiny_models import tiny_model

from hf_metatts.meta import adapt_parameters
from hf_metatts.meta.global_variance import global_variance, global_variance_loss, global_variance_term


def test_global_variance_is_the_per_bin_standard_deviation_over_valid_frames():
    mels = torch.tensor([[[0.0, 1.0], [2.0, 1.0], [100.0, -7.0]]])  # (1, 3, 2); the last frame is padding
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(global_variance(mels, mask), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(global_variance(mels[:, :2]), torch.tensor([[1.0, 0.0]]))  # no mask: every frame


def test_the_loss_is_the_mean_absolute_log_ratio_and_reaches_only_the_prediction():
    target = torch.tensor([[[0.0], [2.0]]])                    # sd 1
    predicted = torch.tensor([[[0.5], [1.5]]], requires_grad=True)  # sd 0.5: flatter
    loss = global_variance_loss(predicted, target)
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-6)
    loss.backward()
    # descending the loss spreads the frames apart again (sd grows towards the target's)
    assert predicted.grad[0, 0, 0] > 0 > predicted.grad[0, 1, 0]
    assert global_variance_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("mels, mask, message", [
    (torch.zeros(4, 80), None, r"\(B, T, M\)"),
    (torch.zeros(2, 4, 80), torch.ones(2, 5), r"mask must be \(B, T\)"),
    (torch.zeros(2, 4, 80), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]), "no valid frame"),
])
def test_bad_shapes_and_empty_utterances_are_refused(mels, mask, message):
    with pytest.raises(ValueError, match=message):
        global_variance(mels, mask)


def test_mismatched_shapes_and_bad_weights_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        global_variance_loss(torch.zeros(1, 4, 80), torch.zeros(1, 5, 80))
    for weight in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            global_variance_term(weight)


def test_the_term_changes_adaptation_and_keeps_more_dynamics():
    model = tiny_model().eval()
    generator = torch.Generator().manual_seed(0)
    frames = 24
    wave = torch.sin(torch.linspace(0, 12, frames)).view(1, frames, 1)
    support = {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
               "attention_mask": torch.ones(2, 6, dtype=torch.long),
               "labels": 2.0 * wave.expand(2, frames, model.config.num_mel_bins) - 4.0,
               "labels_attention_mask": torch.ones(2, frames, dtype=torch.long),
               "durations": torch.full((2, 6), frames // 6, dtype=torch.long)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plain = adapt_parameters(model, support, method="maml", steps=3, lr=0.05)
    with_term = adapt_parameters(model, support, method="maml", steps=3, lr=0.05,
                                 loss_term=global_variance_term(5.0))
    assert any(not torch.equal(plain[n], with_term[n]) for n in plain)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # the model itself is untouched

    def gv_loss(params):
        with torch.no_grad():
            out = torch.func.functional_call(model, params, args=(), kwargs=dict(support), strict=False)
        return global_variance_loss(out.spectrogram, support["labels"]).item()

    assert gv_loss(with_term) < gv_loss(plain)


# ------------------------------------------------------------------------------------------------------
# the weight saved with a meta-learner: meta-training's inner loop and adapt_parameters both use it
@pytest.mark.parametrize("kw, message", [
    (dict(global_variance_weight=-1.0), "global_variance_weight=-1.0 must be a finite number"),
    (dict(global_variance_weight=float("nan")), "must be a finite number"),
    (dict(global_variance_weight=1.0, method="pretrain"), "not to method='pretrain'"),
])
def test_bad_global_variance_settings_are_refused(tmp_path, kw, message):
    from hf_metatts.meta import InvalidMetaConfigError

    with pytest.raises(InvalidMetaConfigError, match=message):
        _args(tmp_path, **kw)


def test_meta_training_adds_the_term_to_the_inner_loop_only_and_saves_it(tmp_path):
    from test_meta_metatts import mel_corpus

    from hf_metatts.data_collator import MetaTTSDataCollator
    from hf_metatts.meta import EpisodeSampler, MetaTrainer, load_meta_learner, make_loss_fn

    train = mel_corpus()
    sampler = EpisodeSampler(train, "speaker_id", 3, 3, 2, seed=0)
    episode = sampler.collate(sampler.episode(0), MetaTTSDataCollator())
    adapted, trainers = {}, {}
    for weight in (0.0, 5.0):
        torch.manual_seed(0)
        trainer = MetaTrainer(tiny_model(), _args(tmp_path / str(weight), global_variance_weight=weight),
                              train_dataset=train, data_collator=MetaTTSDataCollator())
        learner = trainer.model
        result, query_loss, _ = learner.run_task(episode["support"][0], episode["query"][0], 2, True, False)
        adapted[weight], trainers[weight] = result.params, trainer
        # the meta-objective stays the model's own query loss, whatever the inner loop added
        plain = make_loss_fn(learner.model)(result.params, episode["query"][0])
        assert float(query_loss.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)
    assert any(not torch.allclose(adapted[0.0][n], adapted[5.0][n]) for n in adapted[0.0])
    trainers[5.0].save_model()
    head = load_meta_learner(str(tmp_path / "5.0" / "out"))
    assert head.config.global_variance_weight == 5.0


def test_adapt_parameters_reads_the_weight_of_the_meta_learner_except_for_fine_tuning():
    from test_meta_metatts import mel_corpus

    from hf_metatts.data_collator import MetaTTSDataCollator
    from hf_metatts.meta import EpisodeSampler
    from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead

    model = tiny_model().eval()
    sampler = EpisodeSampler(mel_corpus(), "speaker_id", 3, 3, 1, seed=0)
    support = sampler.collate(sampler.episode(0), MetaTTSDataCollator())["support"][0]
    names = model.adapted_parameter_names()
    shapes = {n: model.get_parameter(n).shape for n in names}

    def head(weight):
        return MetaLearnerHead(MetaLearnerConfig(method="maml", inner_lr=0.05, adapted_parameter_names=names,
                                                 global_variance_weight=weight), shapes)

    saved = adapt_parameters(model, support, method="maml", steps=2, meta_learner=head(5.0))
    explicit = adapt_parameters(model, support, method="maml", steps=2, meta_learner=head(0.0),
                                loss_term=global_variance_term(5.0))
    plain = adapt_parameters(model, support, method="maml", steps=2, meta_learner=head(0.0))
    assert all(torch.allclose(saved[n], explicit[n]) for n in names)
    assert any(not torch.allclose(saved[n], plain[n]) for n in names)
    tuned = adapt_parameters(model, support, method="finetune", steps=2, meta_learner=head(5.0))
    baseline = adapt_parameters(model, support, method="finetune", steps=2, meta_learner=head(0.0))
    assert all(torch.equal(tuned[n], baseline[n]) for n in names)  # the baseline keeps the model's loss
