"""Prosody matching (`hf_metatts.voice_prosody`, ``model.adapt(..., match_prosody=True)``): the refit lands where its
definition says, stays in its bounds, travels with the voice, and bad inputs fail before anything changes."""

import math

import numpy as np
import pytest
import torch
from test_voice_adapt import assert_same_weights, make_clips, speechlike, synth, weights
from tiny_models import tiny_model

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache
from hf_metatts.voice_prosody import (
    DURATION_BIAS,
    PITCH_BIAS,
    PITCH_WEIGHT,
    ProsodyLimits,
    ProsodyMatchError,
    match_prosody,
    predictor_outputs,
)

PROSODY_NAMES = {DURATION_BIAS, PITCH_WEIGHT, PITCH_BIAS}


@pytest.fixture(autouse=True)
def _fresh_bases():
    clear_base_cache()
    yield
    clear_base_cache()


def support_batch(model, frames_per_token: int = 5, semitone_range: float = 4.0, seed: int = 0) -> dict:
    """Two clips of 12 tokens, ``frames_per_token`` frames each; voiced frames move by ``semitone_range`` around
    150 Hz from token to token, every fourth token unvoiced."""
    generator = torch.Generator().manual_seed(seed)
    tokens, frames = 12, 12 * frames_per_token
    durations = torch.full((2, tokens), frames_per_token, dtype=torch.long)
    offsets = torch.linspace(-0.5, 0.5, tokens).repeat(2, 1) * semitone_range
    token_log_f0 = math.log(150.0) + offsets / (12.0 / math.log(2.0))
    pitch = token_log_f0.repeat_interleave(frames_per_token, dim=1)
    unvoiced = (torch.arange(tokens) % 4 == 3).repeat_interleave(frames_per_token)
    pitch[:, unvoiced] = 0.0
    return {"input_ids": torch.randint(1, 20, (2, tokens), generator=generator),
            "attention_mask": torch.ones(2, tokens, dtype=torch.long),
            "labels": torch.randn(2, frames, model.config.num_mel_bins, generator=generator) - 4.0,
            "labels_attention_mask": torch.ones(2, frames, dtype=torch.long),
            "pitch": pitch, "durations": durations}


def voice_of(model) -> dict:
    return {name: model.get_parameter(name).detach().clone() for name in model.adapted_parameter_names()}




def token_pitch(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised token pitch the model trains on, and which tokens are voiced."""
    config = model.config
    per_token = batch["durations"][0, 0].item()
    pitch = batch["pitch"].view(2, -1, per_token)
    voiced = pitch > 0
    normalised = torch.where(voiced, (pitch - config.pitch_mean) / config.pitch_std, torch.zeros_like(pitch))
    counts = voiced.sum(-1)
    return normalised.sum(-1) / counts.clamp(min=1), counts > 0


def median(values: torch.Tensor) -> float:
    ordered = values.flatten().sort().values
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else float(ordered[middle - 1: middle + 1].mean())


def level_and_spread(values: torch.Tensor, voiced: torch.Tensor) -> tuple[float, float]:
    rows = [values[i][voiced[i]] for i in range(len(values))]
    return median(torch.cat(rows)), median(torch.cat([(r - median(r)).abs() for r in rows]))


def test_the_refit_matches_the_clips_rate_level_and_range():
    model = tiny_model(frames_per_token=3.0)
    batch = support_batch(model, frames_per_token=6, semitone_range=6.0)
    params, match = match_prosody(model, voice_of(model), [batch])
    assert PROSODY_NAMES <= set(params)
    # rate: the voice's predicted frames of the sounding tokens add up to the clips'
    after = predictor_outputs(model, params, batch)
    assert float(torch.expm1(after["duration_predictor"]).sum()) == pytest.approx(float(batch["durations"].sum()),
                                                                                 rel=1e-4)
    assert match.duration_factor == pytest.approx(2.0, rel=1e-4)  # 6 frames a token where the voice said 3
    # pitch: the voiced tokens' median and spread around each clip's median are the clips'
    target, voiced = token_pitch(model, batch)
    predicted = after["pitch_predictor"]
    target_level, target_spread = level_and_spread(target, voiced)
    level, spread = level_and_spread(predicted, voiced)
    assert level == pytest.approx(target_level, abs=1e-4)
    assert spread == pytest.approx(target_spread, rel=1e-3)
    assert match.sounding_tokens == 24 and match.voiced_tokens == 18


def test_a_few_octave_slips_of_the_pitch_tracker_do_not_move_the_fit():
    model = tiny_model()
    clean = support_batch(model, semitone_range=4.0)
    slipped = support_batch(model, semitone_range=4.0)
    slipped["pitch"][0, :6] += math.log(2.0)  # the first token of one clip an octave up
    _, clean_match = match_prosody(model, voice_of(model), [clean])
    _, slipped_match = match_prosody(model, voice_of(model), [slipped])
    assert slipped_match.pitch_range_factor == pytest.approx(clean_match.pitch_range_factor, rel=0.15)
    assert slipped_match.pitch_shift_semitones == pytest.approx(clean_match.pitch_shift_semitones, abs=0.5)


def test_the_base_and_the_given_voice_are_unchanged():
    model = tiny_model()
    before = weights(model)
    voice = voice_of(model)
    copies = {name: value.clone() for name, value in voice.items()}
    params, _ = match_prosody(model, voice, [support_batch(model)])
    assert_same_weights(model, before)
    for name, value in copies.items():
        assert torch.equal(voice[name], value) and torch.equal(params[name], value), name


def test_faster_clips_give_shorter_durations_and_the_limits_hold():
    model = tiny_model(frames_per_token=3.0)
    _, slow = match_prosody(model, voice_of(model), [support_batch(model, frames_per_token=4)])
    _, fast = match_prosody(model, voice_of(model), [support_batch(model, frames_per_token=2)])
    assert fast.duration_factor < 1.0 < slow.duration_factor
    limits = ProsodyLimits(max_rate_factor=1.5, max_range_factor=1.2, max_shift_semitones=1.0)
    params, bounded = match_prosody(model, voice_of(model), [support_batch(model, frames_per_token=30,
                                                                             semitone_range=40.0)], limits)
    # the bias moves by log(1.5): the voice's 3 frames a token become (3 + 1) * 1.5 - 1
    assert bounded.duration_factor == pytest.approx(((3 + 1) * 1.5 - 1) / 3)
    assert float(params[DURATION_BIAS] - model.get_parameter(DURATION_BIAS).detach()) == pytest.approx(math.log(1.5))
    assert 1 / 1.2 - 1e-6 <= bounded.pitch_range_factor <= 1.2 + 1e-6
    assert abs(bounded.pitch_shift_semitones) <= 1.0 + 1e-6


def test_a_flat_style_flattens_the_predicted_pitch():
    model = tiny_model()
    wide = ProsodyLimits(max_range_factor=1e4)  # the tiny model's own pitch barely moves
    lively, lively_match = match_prosody(model, voice_of(model), [support_batch(model, semitone_range=8.0)], wide)
    flat, flat_match = match_prosody(model, voice_of(model), [support_batch(model, semitone_range=0.5)], wide)
    batch = support_batch(model)
    spread = {name: float(predictor_outputs(model, p, batch)["pitch_predictor"].std()) for name, p in
              (("lively", lively), ("flat", flat))}
    assert spread["lively"] / spread["flat"] == pytest.approx(16.0, rel=1e-3)
    assert lively_match.pitch_range_factor / flat_match.pitch_range_factor == pytest.approx(16.0, rel=1e-3)
    assert flat_match.pitch_range_factor < 1.0 or lively_match.pitch_range_factor > 1.0


def test_too_few_voiced_tokens_leave_the_pitch_as_predicted():
    model = tiny_model()
    batch = support_batch(model)
    batch["pitch"] = torch.zeros_like(batch["pitch"])
    params, match = match_prosody(model, voice_of(model), [batch])
    assert PITCH_WEIGHT not in params and PITCH_BIAS not in params and DURATION_BIAS in params
    assert match.pitch_range_factor == 1.0 and match.pitch_shift_semitones == 0.0 and match.voiced_tokens == 0


def test_batches_without_durations_are_refused():
    model = tiny_model()
    batch = support_batch(model)
    del batch["durations"]
    with pytest.raises(ProsodyMatchError, match="with_fixed_alignment"):
        match_prosody(model, voice_of(model), [batch])


# ---- through model.adapt -------------------------------------------------------------------------------
@pytest.fixture
def model(tiny_checkpoint):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tiny_checkpoint))


def test_adapt_with_matching_records_it_and_the_voice_round_trips(model, tmp_path):
    before = weights(model)
    plain = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000)
    matched = model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_prosody=True)
    assert_same_weights(model, before)
    assert plain.config.prosody_match is None and not PROSODY_NAMES & set(plain.adapted_parameters)
    assert PROSODY_NAMES <= set(matched.adapted_parameters)
    assert set(matched.config.prosody_match) == {"duration_factor", "pitch_shift_semitones", "pitch_range_factor",
                                                  "sounding_tokens", "voiced_tokens"}
    for name in plain.adapted_parameters:  # matching changes only the predictors' output layers
        assert torch.equal(plain.adapted_parameters[name], matched.adapted_parameters[name]), name
    matched.save_pretrained(tmp_path / "voice")
    loaded = MetaTTSVoice.from_pretrained(str(tmp_path / "voice"))
    assert loaded.config.prosody_match == matched.config.prosody_match
    torch.manual_seed(0)
    expected = synth(model, voice=matched)
    torch.manual_seed(0)
    assert torch.equal(synth(model, voice=loaded), expected)


def test_slower_clips_of_the_same_texts_give_a_slower_voice(model):
    quick = [(speechlike(1.2, 150 + 7 * i, seed=i), text) for i, (_, text) in enumerate(make_clips())]
    slow = [(speechlike(2.4, 150 + 7 * i, seed=i), text) for i, (_, text) in enumerate(make_clips())]
    factors = {name: model.adapt(clips, steps=0, method="zero_shot" if model.voice_encoder is not None else "maml",
                                 progress=False, sampling_rate=16000, match_prosody=True,
                                 vocoder_steps=0).config.prosody_match["duration_factor"]
               for name, clips in (("quick", quick), ("slow", slow))}
    assert factors["slow"] > 1.5 * factors["quick"]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_match_prosody_that_is_not_a_bool_is_refused_before_anything_runs(model, value):
    before = weights(model)
    with pytest.raises(ValueError, match="match_prosody"):
        model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_prosody=value)
    assert_same_weights(model, before)


def test_matching_leaves_the_model_audio_alone(model):
    torch.manual_seed(0)
    before = synth(model)
    model.adapt(make_clips(), steps=1, progress=False, sampling_rate=16000, match_prosody=True)
    torch.manual_seed(0)
    assert torch.equal(synth(model), before)
    assert np.isfinite(before.numpy()).all()
