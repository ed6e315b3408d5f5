"""The content term in the meta-objective: it adds the aligner's reading of the predicted query mels to the query
loss, changes the meta-gradient of the adapted start, never teaches the aligner (a fixed critic), leaves the inner
loop alone, and bad settings are refused."""

import math

import pytest
import torch
from test_meta_identity import _args
from test_meta_metatts import mel_corpus, tiny_model

from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.meta import EpisodeSampler, InvalidMetaConfigError, MetaTrainer
from hf_metatts.meta.content import frame_token_nll


def _episode_gradients(tmp_path, weight):
    train = mel_corpus()
    sampler = EpisodeSampler(train, "speaker_id", 3, 3, 2, seed=0)
    episode = sampler.collate(sampler.episode(0), MetaTTSDataCollator())
    torch.manual_seed(0)
    trainer = MetaTrainer(tiny_model(), _args(tmp_path / str(weight), content_loss_weight=weight), train_dataset=train,
                          data_collator=MetaTTSDataCollator())
    learner = trainer.model
    learner.train()
    out = learner(episode["support"], episode["query"])
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None}
    adapted = learner.run_task(episode["support"][0], episode["query"][0], 2, True, False)[0].params
    return float(out.loss.detach()), dict(learner.last_stats), grads, adapted


def test_the_content_term_adds_to_the_query_loss_and_teaches_the_voice_not_the_aligner(tmp_path):
    plain_loss, plain_stats, plain_grads, plain_adapted = _episode_gradients(tmp_path, 0.0)
    loss, stats, grads, adapted = _episode_gradients(tmp_path, 0.5)
    assert "content_loss_after" not in plain_stats
    assert math.isfinite(stats["content_loss_after"]) and stats["content_loss_after"] > 0
    assert loss == pytest.approx(plain_loss + 0.5 * stats["content_loss_after"], rel=1e-4)
    aligner = [n for n in grads if n.startswith("aligner.")]
    assert aligner, "the query loss's alignment losses train the aligner"
    # the critic is fixed: the aligner gets exactly the gradient it gets without the term (the token table is also
    # the encoder's input, so the term reaches it through the voice; the reader's own use is checked below)
    for name in aligner:
        assert torch.allclose(grads[name], plain_grads[name], atol=1e-7), name
    # the voice does learn from it: the decoder's conditioning moves differently
    decoder = [n for n in grads if n.startswith("decoder.")]
    assert any(not torch.allclose(grads[n], plain_grads[n]) for n in decoder)
    # the inner loop keeps its own loss: the same adapted voice with and without the term
    assert all(torch.allclose(adapted[n], plain_adapted[n]) for n in adapted)


def test_the_reading_gives_no_gradient_to_the_aligner():
    model = tiny_model().eval()
    ids = torch.randint(1, model.config.vocab_size, (1, 4))
    mels = torch.randn(1, 8, model.config.num_mel_bins, requires_grad=True)
    loss = frame_token_nll(model, mels, ids, torch.ones(1, 4, dtype=torch.bool), torch.full((1, 4), 2),
                           torch.ones(1, 8, dtype=torch.bool))
    loss.backward()
    assert mels.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.aligner.parameters()) and model.embed_tokens.weight.grad is None


@pytest.mark.parametrize("kw, message", [
    (dict(content_loss_weight=-0.1), "content_loss_weight=-0.1 must be a finite number >= 0"),
    (dict(content_loss_weight=float("nan")), "content_loss_weight=nan must be a finite number >= 0"),
    (dict(content_loss_weight=0.1, method="pretrain"), "not to method='pretrain'"),
])
def test_bad_content_settings_are_refused(tmp_path, kw, message):
    with pytest.raises(InvalidMetaConfigError, match=message):
        _args(tmp_path, **kw)
    assert not (tmp_path / "out").exists()


def test_the_content_term_can_leave_the_encoders_voice_alone(tmp_path):
    """``content_loss_at_start=False``: the query loss at the support encoder's voice keeps the model's loss, the
    voice after the steps is still charged."""
    train = mel_corpus()
    sampler = EpisodeSampler(train, "speaker_id", 3, 3, 2, seed=0)
    episode = sampler.collate(sampler.episode(0), MetaTTSDataCollator())
    results = {}
    for at_start in (True, False):
        torch.manual_seed(0)
        trainer = MetaTrainer(tiny_model(), _args(tmp_path / str(at_start), zero_shot_start=True,
                                                  zero_shot_loss_weight=1.0, content_loss_weight=0.5,
                                                  content_loss_at_start=at_start),
                              train_dataset=train, data_collator=MetaTTSDataCollator())
        learner = trainer.model
        learner.train()
        torch.manual_seed(0)
        out = learner(episode["support"], episode["query"])
        results[at_start] = (float(out.loss.detach()), dict(learner.last_stats))
    (with_start, stats), (without_start, stats_without) = results[True], results[False]
    assert stats["content_loss_after"] == pytest.approx(stats_without["content_loss_after"], rel=1e-5)
    assert stats["query_loss_after"] == pytest.approx(stats_without["query_loss_after"], rel=1e-5)
    # the start's query loss (logged as query_loss_before) carries the term only when asked to
    assert stats["query_loss_before"] > stats_without["query_loss_before"]
    assert with_start - without_start == pytest.approx(stats["query_loss_before"] - stats_without["query_loss_before"],
                                                       rel=1e-4)
