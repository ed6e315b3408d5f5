"""The duration-informed alignment search (`duration_informed_search`): the aligner's attention traded against the
duration predictor's expected durations, the config field that turns it on for `compute_durations`, and the
harness setting that chooses it for a reading."""

import math

import pytest
import torch
from duration_vectors import duration_vectors
from test_modeling import synthetic_batch
from tiny_models import tiny_config, tiny_model, tiny_processor

from hf_metatts.data.durations import skippable_token_ids
from hf_metatts.evaluation.benchmark import BenchmarkConfigError, BenchmarkSettings, set_aligner_search
from hf_metatts.modeling_alignment import duration_informed_search, monotonic_alignment_search


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def objective(log_probs, durations, expected, weight):
    """The search's score of one duration vector: log_probs ``(N, T)``, durations and expected ``(N,)``."""
    score, frame = 0.0, 0
    for token, length in enumerate(durations):
        score += float(log_probs[token, frame: frame + length].sum())
        score -= weight * (math.log1p(length) - math.log1p(float(expected[token]))) ** 2
        frame += length
    return score


def best_by_enumeration(log_probs, expected, weight, skippable, frames):
    """The best score over every duration vector summing to ``frames`` (only skippable tokens may take 0)."""
    best = -float("inf")
    for durations in duration_vectors(log_probs.shape[0], frames, skippable):
        best = max(best, objective(log_probs, durations, expected, weight))
    return best


def random_batch(seed, batch=3, tokens=9, frames=30):
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(batch, tokens, frames, generator=generator).mul(3).log_softmax(1)
    text_lengths = torch.tensor([tokens, tokens - 3, tokens - 5][:batch])
    mel_lengths = torch.tensor([frames, frames - 8, frames - 16][:batch])
    expected = torch.rand(batch, tokens, generator=generator) * 5
    skippable = torch.rand(batch, tokens, generator=generator) < 0.3
    return log_probs, text_lengths, mel_lengths, expected, skippable


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weight", [0.0, 0.7, 4.0])
def test_the_search_finds_the_best_duration_vector(seed, weight):
    generator = torch.Generator().manual_seed(seed)
    tokens, frames = 5, 8
    log_probs = torch.randn(1, tokens, frames, generator=generator).mul(2).log_softmax(1)
    expected = torch.rand(1, tokens, generator=generator) * 3
    skippable = torch.rand(1, tokens, generator=generator) < 0.4
    durations = duration_informed_search(log_probs, torch.tensor([tokens]), torch.tensor([frames]), expected, weight,
                                         skippable)
    assert int(durations.sum()) == frames
    assert ((durations[0] > 0) | skippable[0]).all()
    best = best_by_enumeration(log_probs[0], expected[0], weight, skippable[0].tolist(), frames)
    assert objective(log_probs[0], durations[0].tolist(), expected[0], weight) == pytest.approx(best, abs=1e-4)


@pytest.mark.parametrize("with_skippable", [False, True])
def test_weight_zero_is_the_plain_monotonic_search(with_skippable):
    for seed in range(4):
        log_probs, text_lengths, mel_lengths, expected, skippable = random_batch(seed)
        skippable = skippable if with_skippable else None
        path = monotonic_alignment_search(log_probs, text_lengths, mel_lengths, skippable)
        durations = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 0.0, skippable)
        assert torch.equal(durations, path.sum(-1).long())


def test_a_strong_weight_gives_the_expected_durations_when_they_fit_the_clip():
    log_probs, text_lengths, mel_lengths, _, _ = random_batch(0, batch=1)
    expected = torch.tensor([[2, 5, 1, 4, 3, 6, 2, 4, 3]], dtype=torch.float)  # sums to the clip's 30 frames
    durations = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 1000.0)
    assert durations.tolist() == [[2, 5, 1, 4, 3, 6, 2, 4, 3]]
    weak = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 0.0)
    assert not torch.equal(weak, durations)  # the attention alone disagrees


def test_each_item_of_a_padded_batch_keeps_its_own_lengths_and_padding_gets_no_frame():
    log_probs, text_lengths, mel_lengths, expected, skippable = random_batch(3)
    durations = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 2.0, skippable)
    assert torch.equal(durations.sum(1), mel_lengths)
    for item, tokens in enumerate(text_lengths.tolist()):
        assert (durations[item, tokens:] == 0).all()
        alone = duration_informed_search(log_probs[item:item + 1, :tokens, : int(mel_lengths[item])],
                                         text_lengths[item:item + 1], mel_lengths[item:item + 1],
                                         expected[item:item + 1, :tokens], 2.0, skippable[item:item + 1, :tokens])
        assert torch.equal(durations[item, :tokens], alone[0])


def test_a_cap_too_short_for_a_clip_falls_back_to_the_uncapped_search_for_that_clip_only():
    log_probs, _, mel_lengths, expected, skippable = random_batch(1)
    text_lengths = torch.tensor([9, 6, 3])  # with pieces of at most 4 frames: 36 >= 30, 24 >= 22, but 12 < 14
    uncapped = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 2.0, skippable)
    capped = duration_informed_search(log_probs, text_lengths, mel_lengths, expected, 2.0, skippable,
                                      max_duration=4)
    assert torch.equal(capped.sum(1), mel_lengths)
    assert capped[:2].max() <= 4
    assert torch.equal(capped[2], uncapped[2]) and uncapped[2].max() > 4


@pytest.mark.parametrize("bad", [-1.0, 2000.0])
def test_config_refuses_a_duration_weight_out_of_range(bad):
    with pytest.raises(ValueError, match="aligner_duration_weight"):
        tiny_config(aligner_duration_weight=bad)


def test_model_durations_follow_the_duration_predictor_as_the_weight_grows(processor):
    torch.manual_seed(0)
    model = tiny_model(aligner_skippable_token_ids=skippable_token_ids(processor.tokenizer))
    with torch.no_grad():
        model.duration_predictor.head.weight.normal_(std=0.3)  # uneven durations, unlike the random aligner's
    batch = synthetic_batch(processor)
    text_mask = batch["attention_mask"].bool()
    frames = batch["labels_attention_mask"].sum(1)
    with torch.no_grad():
        plain = model.compute_durations(**batch)
        expected = model.expected_durations(**batch)
        model.config.aligner_duration_weight = 1000.0
        held = model.compute_durations(**batch)
        model.config.aligner_duration_weight = 0.0
        again = model.compute_durations(**batch)
    torch.testing.assert_close(expected.sum(1), frames.float())
    assert (expected[~text_mask] == 0).all()
    assert torch.equal(plain, again)  # weight 0 is the aligner alone
    assert torch.equal(held.sum(1), frames)
    assert (held[~text_mask] == 0).all()
    off_held = (held - expected).abs()[text_mask].mean()
    off_plain = (plain - expected).abs()[text_mask].mean()
    assert off_held < 1.0 < off_plain


def test_expected_durations_read_the_clips_voice_through_the_voice_encoder(processor):
    torch.manual_seed(0)
    model = tiny_model(use_voice_encoder=True)
    batch = synthetic_batch(processor)
    with torch.no_grad():
        model.duration_predictor.head.weight.normal_(std=0.3)  # durations that depend on the voice
        for parameter in model.voice_encoder.parameters():  # a voice encoder that is not (near) zero at the start
            parameter.add_(torch.randn_like(parameter) * 0.3)
        from_clips = model.expected_durations(**batch)
        quieter = model.expected_durations(**{**batch, "labels": batch["labels"] - 3.0})
    assert not torch.allclose(from_clips, quieter)


def test_harness_sets_the_duration_weight_only_when_given(processor):
    model = tiny_model()
    set_aligner_search(model, processor, "own")
    assert model.config.aligner_duration_weight == 0.0
    set_aligner_search(model, processor, "own", 30)
    assert model.config.aligner_duration_weight == 30.0
    set_aligner_search(model, processor, "skip_marks")
    assert model.config.aligner_duration_weight == 30.0


@pytest.mark.parametrize("bad", [-1, 1e6, True, "30"])
def test_harness_refuses_a_bad_duration_weight(bad):
    with pytest.raises(BenchmarkConfigError, match="aligner_duration_weight"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, aligner_duration_weight=bad).validate()
