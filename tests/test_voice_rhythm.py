"""Rhythm matching (`hf_metatts.voice_prosody.match_rhythm`, ``model.adapt(..., match_rhythm=True)``): the duration
predictor's output layer refitted by ridge to the clips' token durations lands where its definition says, moves
towards the clips' rhythm, travels with the voice, and bad inputs fail before anything changes."""

import pytest
import torch
from test_voice_adapt import assert_same_weights, make_clips, synth, weights
from test_voice_prosody import support_batch, voice_of
from tiny_models import tiny_model

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache
from hf_metatts.voice_prosody import (
    DURATION_BIAS,
    DURATION_WEIGHT,
    RHYTHM_RIDGE,
    ProsodyMatchError,
    duration_features,
    match_rhythm,
    predictor_outputs,
    ridge_towards,
)

RHYTHM_NAMES = {DURATION_WEIGHT, DURATION_BIAS}


@pytest.fixture(autouse=True)
def _fresh_bases():
    clear_base_cache()
    yield
    clear_base_cache()


def uneven_batch(model, seed: int = 0) -> dict:
    """``support_batch`` with each token's frames drawn from 1 to 5 (a rhythm of its own), the last token taking
    the rest of each clip's 60 frames."""
    batch = support_batch(model, frames_per_token=5, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    durations = torch.randint(1, 6, batch["durations"].shape, generator=generator)
    durations[:, -1] = 60 - durations[:, :-1].sum(1)
    batch["durations"] = durations
    return batch


def test_the_ridge_solution_is_the_penalised_least_squares_minimum():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    targets = torch.randn(40, generator=generator, dtype=torch.float64)
    anchor = torch.randn(6, generator=generator, dtype=torch.float64)
    weight, bias = ridge_towards(features, targets, anchor, ridge=0.3)

    def objective(w, b):
        return float(((features @ w + b - targets) ** 2).sum() + 0.3 * 40 * ((w - anchor) ** 2).sum())

    best = objective(weight, bias)
    for _ in range(20):  # any nearby point is worse
        assert objective(weight + 1e-3 * torch.randn(6, dtype=torch.float64), bias) > best
        assert objective(weight, bias + 1e-3 * float(torch.randn(1))) > best
    strong, _ = ridge_towards(features, targets, anchor, ridge=1e9)
    assert torch.allclose(strong, anchor, atol=1e-6), "a huge ridge keeps the voice's weight"
    exact_targets = features @ anchor * 0.5 + 1.25
    loose, loose_bias = ridge_towards(features, exact_targets, anchor, ridge=1e-12)
    assert torch.allclose(loose, anchor * 0.5, atol=1e-6) and abs(float(loose_bias) - 1.25) < 1e-6


def test_the_refit_lowers_the_support_error_and_reads_what_the_layer_reads():
    model = tiny_model()
    batch = uneven_batch(model)
    voice = voice_of(model)
    fitted, match = match_rhythm(model, voice, [batch])
    assert set(fitted) == set(voice) | RHYTHM_NAMES
    assert match.tokens == 24 and match.ridge == RHYTHM_RIDGE
    assert match.support_error_after < match.support_error_before
    features, targets = duration_features(model, fitted, batch)
    predicted = predictor_outputs(model, fitted, batch)["duration_predictor"][batch["attention_mask"].bool()]
    weight, bias = fitted[DURATION_WEIGHT].double()[0], fitted[DURATION_BIAS].double()[0]
    assert torch.allclose(predicted.double(), features @ weight + bias, atol=1e-5)
    assert float(((predicted.double() - targets) ** 2).mean()) == pytest.approx(match.support_error_after, rel=1e-4)
    for name in voice:  # only the duration predictor's output layer changes
        if name not in RHYTHM_NAMES:
            assert torch.equal(fitted[name], voice[name]), name


def test_longer_tokens_in_the_clips_give_longer_predicted_tokens():
    model = tiny_model()
    batch = uneven_batch(model)
    long_first = batch["durations"].clone()
    long_first[:, :6], long_first[:, 6:] = 9, 1
    short_first = batch["durations"].clone()
    short_first[:, :6], short_first[:, 6:] = 1, 9
    readings = {}
    for name, durations in (("long_first", long_first), ("short_first", short_first)):
        fitted, _ = match_rhythm(model, voice_of(model), [{**batch, "durations": durations}], ridge=1e-4)
        predicted = predictor_outputs(model, fitted, batch)["duration_predictor"]
        readings[name] = float(predicted[:, :6].mean() - predicted[:, 6:].mean())
    assert readings["long_first"] > 0 > readings["short_first"]


def test_the_base_and_the_given_voice_are_unchanged():
    model = tiny_model()
    before = weights(model)
    voice = voice_of(model)
    kept = {name: value.clone() for name, value in voice.items()}
    match_rhythm(model, voice, [uneven_batch(model)])
    assert_same_weights(model, before)
    assert all(torch.equal(voice[name], kept[name]) for name in kept)


@pytest.mark.parametrize("ridge", [0, -1.0, float("nan"), True, "0.01"])
def test_a_ridge_that_is_not_a_positive_number_is_refused(ridge):
    model = tiny_model()
    with pytest.raises(ProsodyMatchError, match="ridge"):
        match_rhythm(model, voice_of(model), [uneven_batch(model)], ridge=ridge)


def test_batches_without_durations_are_refused():
    model = tiny_model()
    batch = uneven_batch(model)
    del batch["durations"]
    with pytest.raises(ProsodyMatchError, match="with_fixed_alignment"):
        match_rhythm(model, voice_of(model), [batch])


# ---- through model.adapt -------------------------------------------------------------------------------
@pytest.fixture
def model(tiny_checkpoint):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tiny_checkpoint))


def test_adapt_with_rhythm_records_it_and_the_voice_round_trips(model, tmp_path):
    before = weights(model)
    plain = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000)
    matched = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_rhythm=True)
    assert_same_weights(model, before)
    assert plain.config.rhythm_match is None and not RHYTHM_NAMES & set(plain.adapted_parameters)
    assert RHYTHM_NAMES <= set(matched.adapted_parameters)
    assert set(matched.config.rhythm_match) == {"tokens", "support_error_before", "support_error_after", "ridge"}
    assert matched.config.rhythm_match["support_error_after"] <= matched.config.rhythm_match["support_error_before"]
    for name in plain.adapted_parameters:  # the fit changes only the duration predictor's output layer
        assert torch.equal(plain.adapted_parameters[name], matched.adapted_parameters[name]), name
    matched.save_pretrained(tmp_path / "voice")
    loaded = MetaTTSVoice.from_pretrained(str(tmp_path / "voice"))
    assert loaded.config.rhythm_match == matched.config.rhythm_match
    assert "rhythm matched to the clips" in (tmp_path / "voice" / "README.md").read_text()
    torch.manual_seed(0)
    expected = synth(model, voice=matched)
    torch.manual_seed(0)
    assert torch.equal(synth(model, voice=loaded), expected)


def test_rhythm_then_prosody_both_apply(model):
    both = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_rhythm=True,
                       match_prosody=True)
    rhythm = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_rhythm=True)
    assert both.config.rhythm_match == rhythm.config.rhythm_match and both.config.prosody_match is not None
    assert torch.equal(both.adapted_parameters[DURATION_WEIGHT], rhythm.adapted_parameters[DURATION_WEIGHT])
    # prosody matching's rate shift then moves the refit bias, and only the bias, of the duration layer
    shift = float(both.adapted_parameters[DURATION_BIAS] - rhythm.adapted_parameters[DURATION_BIAS])
    assert (shift != 0.0) == (both.config.prosody_match["duration_factor"] != 1.0)
    assert (shift > 0) == (both.config.prosody_match["duration_factor"] > 1.0)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_match_rhythm_that_is_not_a_bool_is_refused_before_anything_runs(model, value):
    before = weights(model)
    with pytest.raises(ValueError, match="match_rhythm"):
        model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_rhythm=value)
    assert_same_weights(model, before)
