"""benchmarks/pitch_level.py: the pitch-level gaps it shifts by, and its identification of misses by voice family."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import tiny_model

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")



@pytest.fixture(scope="module")
def pitch_level():
    return load_benchmark_script("pitch_level")


def _support(model, pitch_hz: float) -> dict:
    generator = torch.Generator().manual_seed(0)
    pitch = torch.full((2, 24), math.log(pitch_hz))
    pitch[:, ::4] = 0.0  # unvoiced frames
    return {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
            "attention_mask": torch.ones(2, 6, dtype=torch.long),
            "labels": torch.randn(2, 24, model.config.num_mel_bins, generator=generator) - 4.0,
            "labels_attention_mask": torch.ones(2, 24, dtype=torch.long), "pitch": pitch}


def test_the_predicted_gap_moves_by_exactly_the_recordings_pitch_change(pitch_level):
    model = tiny_model().eval()
    params = {name: parameter.detach() for name, parameter in model.named_parameters()}
    low = pitch_level.predicted_pitch_gap(model, params, _support(model, 100.0))
    high = pitch_level.predicted_pitch_gap(model, params, _support(model, 200.0))
    assert high - low == pytest.approx(math.log(2.0), abs=1e-4)  # one octave up, whatever the predictor says
    assert pitch_level.shift_of(high) - pitch_level.shift_of(low) == pytest.approx(12.0, abs=1e-3)


def test_a_support_set_without_voiced_frames_gives_no_gap(pitch_level):
    model = tiny_model().eval()
    support = _support(model, 150.0)
    support["pitch"].zero_()
    params = {name: parameter.detach() for name, parameter in model.named_parameters()}
    assert pitch_level.predicted_pitch_gap(model, params, support) == 0.0


def test_a_gap_becomes_semitones_within_the_models_range(pitch_level):
    assert pitch_level.shift_of(math.log(2.0)) == pytest.approx(12.0)
    assert pitch_level.shift_of(float("nan")) == 0.0
    assert pitch_level.shift_of(10.0) == pitch_level.MAX_SHIFT
    assert pitch_level.shift_of(-10.0) == -pitch_level.MAX_SHIFT


def test_misses_say_whether_they_stay_within_a_voice_family(pitch_level):
    def unit(*values):
        vector = np.array(values, dtype=np.float32)
        return vector / np.linalg.norm(vector)

    audios = {"flite:awb": SimpleNamespace(pool_emb=np.stack([unit(1, 0, 0)])),
              "flite:awb~p1.15_f1.00": SimpleNamespace(pool_emb=np.stack([unit(0, 1, 0)])),
              "espeak:en-us+f1": SimpleNamespace(pool_emb=np.stack([unit(0, 0, 1)]))}
    trials = {"flite:awb": np.stack([unit(1, 0.1, 0), unit(0.1, 1, 0)]),  # right, then taken for its shift
              "espeak:en-us+f1": np.stack([unit(0.9, 0, 0.1)])}  # taken for another family
    accuracy, misses = pitch_level.identification(trials, audios)
    assert accuracy == pytest.approx(1 / 3)
    assert [(m["task"], m["taken_for"], m["same_family"]) for m in misses] == [
        ("flite:awb", "flite:awb~p1.15_f1.00", True), ("espeak:en-us+f1", "flite:awb", False)]
    assert all(m["score_taken"] > m["score_target"] for m in misses)


def test_variants_are_summarised_with_the_misses_of_the_plain_voice_only(pitch_level):
    audios = {"flite:awb": SimpleNamespace(pool_emb=np.array([[1.0, 0.0]], dtype=np.float32)),
              "flite:awb~p1.15_f1.00": SimpleNamespace(pool_emb=np.array([[0.0, 1.0]], dtype=np.float32))}
    embeddings = {"plain": {"flite:awb": np.array([[0.0, 1.0]], dtype=np.float32)},
                  "shifted": {"flite:awb": np.array([[1.0, 0.0]], dtype=np.float32)}}
    similarity = {"plain": {"flite:awb": 0.2}, "shifted": {"flite:awb": 0.6}}
    results = pitch_level.summarise_variants(embeddings, similarity, audios)
    assert results["plain"]["identification"] == 0.0 and results["shifted"]["identification"] == 1.0
    assert results["plain"]["misidentified_same_family"] == 1 and len(results["plain"]["misses"]) == 1
    assert "misses" not in results["shifted"] and results["shifted"]["similarity"] == pytest.approx(0.6)
