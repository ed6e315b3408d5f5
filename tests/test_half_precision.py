"""Half precision: a base loaded with dtype=torch.float16 or torch.bfloat16 speaks, takes float32-adapted voices, and
refuses to adapt with a message that says what to do."""

import json

import numpy as np
import pytest
import torch
from test_voice_adapt import make_clips, one_thread
from tiny_models import save_tiny_checkpoint
from transformers import pipeline

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import base_fingerprint, cast_fingerprints, clear_base_cache
from hf_metatts.voice_errors import AdaptationPrecisionError, VoiceMismatchError

__all__ = ["one_thread"]

HALF = [torch.float16, torch.bfloat16]
TEXT = "Hello there, this is a test."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("half_base")
    save_tiny_checkpoint(path, vocoder_type="istft")
    return str(path)


@pytest.fixture(scope="module")
def voice_folder(checkpoint, tmp_path_factory):
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(checkpoint)
    folder = tmp_path_factory.mktemp("half_voice") / "voice"
    model.adapt(make_clips(2), method="finetune", steps=2, progress=False, vocoder_steps=2).save_pretrained(folder)
    return folder


def load(checkpoint, dtype):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(checkpoint, dtype=dtype).eval()


def speak(model, voice=None) -> torch.Tensor:
    ids = hf_metatts.MetaTTSProcessor.from_pretrained(model.name_or_path)(text=TEXT, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=ids["input_ids"], voice=voice).waveform[0]


@pytest.mark.parametrize("dtype", HALF)
def test_the_neural_vocoder_speaks_in_half_precision_as_in_float32(checkpoint, dtype):
    full, half = speak(load(checkpoint, torch.float32)), speak(load(checkpoint, dtype))
    assert half.dtype == torch.float32 and half.shape == full.shape  # audio samples come out as float32
    assert float(torch.corrcoef(torch.stack([full, half]))[0, 1]) > 0.99


@pytest.mark.parametrize("dtype", HALF)
def test_the_cast_fingerprints_are_those_of_the_base_loaded_in_that_precision(checkpoint, dtype):
    full = load(checkpoint, torch.float32)
    name = str(dtype).removeprefix("torch.")
    assert base_fingerprint(load(checkpoint, dtype)) == cast_fingerprints(full)[name] != base_fingerprint(full)
    assert cast_fingerprints(load(checkpoint, dtype)) == {}  # a half-precision model knows only its own


@pytest.mark.parametrize("dtype", HALF)
def test_a_float32_voice_applies_to_the_base_loaded_in_half_precision(checkpoint, voice_folder, dtype):
    voice = MetaTTSVoice.from_pretrained(voice_folder)
    assert set(voice.config.base_fingerprints_by_dtype) == {"float16", "bfloat16"}
    full, half = speak(load(checkpoint, torch.float32), voice), speak(load(checkpoint, dtype), voice)
    assert float(torch.corrcoef(torch.stack([full, half]))[0, 1]) > 0.99
    clear_base_cache()
    tts = pipeline("text-to-speech", model=str(voice_folder), dtype=dtype)
    assert tts.model.dtype == dtype  # no silent fall back to float32
    audio = tts(TEXT)["audio"]
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and audio.shape[-1] == full.shape[-1]


def test_a_voice_of_another_base_is_still_refused_in_half_precision(checkpoint, voice_folder, tmp_path):
    save_tiny_checkpoint(tmp_path / "other", vocoder_type="istft")
    other = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "other", dtype=torch.bfloat16)
    torch.manual_seed(1)
    with torch.no_grad():  # weights that differ from the voice's base
        next(p for n, p in other.named_parameters() if n.startswith("decoder")).add_(1.0)
    with pytest.raises(VoiceMismatchError, match=r"differ from the base's in every precision the voice knows "
                                                 r"\(the adapted model's, bfloat16, float16\)"):
        MetaTTSVoice.from_pretrained(voice_folder).check_compatible(other)


def test_a_voice_written_before_the_cast_fingerprints_still_loads_and_applies_in_float32(checkpoint, voice_folder,
                                                                                          tmp_path):
    import shutil

    old = tmp_path / "old_voice"
    shutil.copytree(voice_folder, old)
    config = json.loads((old / "voice_config.json").read_text())
    del config["base_fingerprints_by_dtype"]
    (old / "voice_config.json").write_text(json.dumps(config))
    voice = MetaTTSVoice.from_pretrained(old)
    assert voice.config.base_fingerprints_by_dtype == {}
    voice.check_compatible(load(checkpoint, torch.float32))
    with pytest.raises(VoiceMismatchError):
        voice.check_compatible(load(checkpoint, torch.bfloat16))


@pytest.mark.parametrize("dtype", HALF)
def test_adapting_a_half_precision_model_is_refused_with_what_to_do_and_changes_nothing(checkpoint, dtype):
    model = load(checkpoint, dtype)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(AdaptationPrecisionError, match=r"model.adapt runs in float32, but this model's weights are "
                                                       rf"{str(dtype).removeprefix('torch.')}: load it in float32"):
        model.adapt(make_clips(2), method="finetune", steps=1, progress=False)
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    assert isinstance(model.float().adapt(make_clips(2), method="finetune", steps=1, progress=False), MetaTTSVoice)
