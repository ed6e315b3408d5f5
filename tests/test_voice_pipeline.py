"""Voices in the text-to-speech pipeline: by folder, switching voices, one shared base."""

import numpy as np
import pytest
import torch
from test_voice_adapt import SR, assert_same_weights, make_clips, one_thread, weights
from tiny_models import save_tiny_checkpoint
from transformers import pipeline

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache

TEXT = "Two voices, one base."


__all__ = ["one_thread"]  # module-wide fixture


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """A base checkpoint and two voice folders adapted on it (low and high pitch clips)."""
    clear_base_cache()
    root = tmp_path_factory.mktemp("voices")
    save_tiny_checkpoint(root / "base")
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(root / "base"))
    for name, pitch in (("low", 110.0), ("high", 260.0)):
        base.adapt(make_clips(2, pitch=pitch), sampling_rate=SR, steps=2, lr=0.5, progress=False).save_pretrained(
            root / name)
    clear_base_cache()
    return root


def direct(voices, voice_name, text=TEXT):
    """The reference audio: the base model called with the voice argument."""
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(voices / "base"))
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(str(voices / "base"))
    inputs = processor(text=text, return_tensors="pt")
    voice = MetaTTSVoice.from_pretrained(voices / voice_name) if voice_name else None
    return base(**inputs, voice=voice).waveform[0].numpy()


def test_pipeline_by_voice_folder(voices):
    clear_base_cache()
    tts = pipeline("text-to-speech", model=str(voices / "low"))
    out = tts(TEXT)
    assert out["sampling_rate"] == SR
    np.testing.assert_array_equal(out["audio"], direct(voices, "low"))
    assert not np.allclose(out["audio"], direct(voices, None))
    batched = tts([TEXT, "Another line."], batch_size=2)
    np.testing.assert_allclose(batched[0]["audio"], out["audio"], atol=1e-4)


def test_switching_voices_on_one_loaded_base(voices):
    clear_base_cache()
    tts = pipeline("text-to-speech", model=str(voices / "base"))
    before = weights(tts.model)
    high = MetaTTSVoice.from_pretrained(voices / "high")
    low = MetaTTSVoice.from_pretrained(voices / "low")
    audio_high = tts(TEXT, forward_params={"voice": high})["audio"]
    audio_low = tts(TEXT, forward_params={"voice": low})["audio"]
    np.testing.assert_array_equal(audio_high, direct(voices, "high"))
    np.testing.assert_array_equal(audio_low, direct(voices, "low"))
    assert not np.allclose(audio_high, audio_low)
    np.testing.assert_array_equal(tts(TEXT)["audio"], direct(voices, None))
    assert_same_weights(tts.model, before)
    # a pipeline loaded by one voice can speak with another
    by_folder = pipeline("text-to-speech", model=str(voices / "low"))
    np.testing.assert_array_equal(by_folder(TEXT, forward_params={"voice": high})["audio"], audio_high)


def test_several_voices_share_one_base(voices):
    clear_base_cache()
    low = pipeline("text-to-speech", model=str(voices / "low")).model
    high = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(voices / "high"))
    adapted = set(low.metatts_voice.adapted_parameters)
    low_params, high_params = dict(low.named_parameters()), dict(high.named_parameters())
    shared = [name for name in low_params if name not in adapted]
    assert len(shared) > 50
    for name in shared:
        assert low_params[name].data_ptr() == high_params[name].data_ptr(), name
    for name in adapted:
        assert low_params[name].data_ptr() != high_params[name].data_ptr()
    assert any(not torch.equal(low_params[n], high_params[n]) for n in adapted)
    assert low.metatts_voice.config.base_fingerprint == high.metatts_voice.config.base_fingerprint
