"""benchmarks/prosody_source.py: replaying the start voice's variance predictions under the adapted voice."""

import math

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import tiny_model, tiny_processor


@pytest.fixture(scope="module")
def prosody_source():
    return load_benchmark_script("prosody_source")


def _voices(model) -> tuple[dict, dict]:
    """Two voices that differ in the speaker vector, which moves the predicted durations of a tiny model."""
    with torch.no_grad():
        model.duration_predictor.head.weight.normal_(0.0, 0.5)
    start = {"voice.speaker_vector": torch.zeros_like(model.voice.speaker_vector)}
    adapted = {"voice.speaker_vector": torch.full_like(model.voice.speaker_vector, 3.0)}
    return start, adapted


def _read(model, ids, voice):
    with torch.no_grad():
        return model(input_ids=ids, voice=voice)


def test_replayed_durations_are_the_start_voices_and_the_spectra_stay_adapted(prosody_source):
    torch.manual_seed(0)
    model = tiny_model()
    start, adapted = _voices(model)
    ids = tiny_processor().tokenizer("A short test sentence.", return_tensors="pt")["input_ids"]
    store = {name: [] for name in prosody_source.PROSODY}
    with prosody_source.recorded(model, tuple(store), store):
        heard_start = _read(model, ids, start)
    plain_adapted = _read(model, ids, adapted)
    assert not torch.equal(plain_adapted.durations, heard_start.durations)  # the voices differ in rhythm
    with prosody_source.replayed(model, ("duration_predictor",), store):
        replayed = _read(model, ids, adapted)
    assert torch.equal(replayed.durations, heard_start.durations)
    assert replayed.spectrogram.shape == heard_start.spectrogram.shape
    assert not torch.allclose(replayed.spectrogram, heard_start.spectrogram)  # the decoder is still the adapted one
    assert len(store["duration_predictor"]) == 1  # replaying does not consume what was recorded
    after = _read(model, ids, adapted)  # the hooks are gone after the block
    assert torch.equal(after.durations, plain_adapted.durations)


def test_a_replayed_contour_keeps_the_running_voices_level(prosody_source):
    torch.manual_seed(0)
    model = tiny_model()
    with torch.no_grad():
        model.pitch_predictor.head.weight.normal_(0.0, 0.5)
    start, adapted = _voices(model)
    ids = tiny_processor().tokenizer("Another short sentence, with a comma.", return_tensors="pt")["input_ids"]
    start_pitch, adapted_pitch, heard = {"pitch_predictor": []}, {"pitch_predictor": []}, {"pitch_predictor": []}
    with prosody_source.recorded(model, ("pitch_predictor",), start_pitch):
        _read(model, ids, start)
    with prosody_source.recorded(model, ("pitch_predictor",), adapted_pitch):
        _read(model, ids, adapted)
    with prosody_source.replayed(model, ("pitch_predictor",), start_pitch, contour_only=True):
        with prosody_source.recorded(model, ("pitch_predictor",), heard):  # sees the replaced output
            _read(model, ids, adapted)
    start_values, adapted_values, heard_values = (store["pitch_predictor"][0] for store in
                                                  (start_pitch, adapted_pitch, heard))
    assert abs(float(start_values.mean() - adapted_values.mean())) > 0.01  # the two voices differ in level
    assert float(heard_values.mean()) == pytest.approx(float(adapted_values.mean()), abs=1e-5)
    torch.testing.assert_close(heard_values - heard_values.mean(), start_values - start_values.mean())
    spread = prosody_source.pitch_spread([start_values], model.config)
    assert spread == pytest.approx(float(start_values.std()) * model.config.pitch_std * 12 / math.log(2), rel=1e-6)


def test_replaying_another_text_is_refused(prosody_source):
    model = tiny_model()
    tokenizer = tiny_processor().tokenizer
    store = {"duration_predictor": []}
    with prosody_source.recorded(model, ("duration_predictor",), store):
        _read(model, tokenizer("Short.", return_tensors="pt")["input_ids"], None)
    with pytest.raises(RuntimeError, match="replay the same texts"):
        with prosody_source.replayed(model, ("duration_predictor",), store):
            _read(model, tokenizer("A much longer sentence than that.", return_tensors="pt")["input_ids"], None)
    assert not model.duration_predictor._forward_hooks  # no hook is left behind after the error


def test_the_heard_pitch_spread_is_zero_for_a_steady_tone_and_an_octave_glide_spreads_it(prosody_source):
    extractor = tiny_processor().feature_extractor
    rate = extractor.sampling_rate
    time = np.arange(int(1.5 * rate)) / rate
    steady = 0.3 * np.sin(2 * np.pi * 150.0 * time)
    semitones = 12.0 * time / time[-1]  # 150 Hz up to 300 Hz, evenly in semitones
    glide = 0.3 * np.sin(2 * np.pi * np.cumsum(150.0 * 2 ** (semitones / 12.0)) / rate)
    assert prosody_source.f0_spread([steady], extractor) < 0.2
    assert prosody_source.f0_spread([glide], extractor) == pytest.approx(12.0 / math.sqrt(12.0), rel=0.1)
    assert math.isnan(prosody_source.f0_spread([np.zeros(rate)], extractor))  # silence: no voiced frame
