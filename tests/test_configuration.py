import json

import pytest
from tiny_models import tiny_config

from hf_metatts import MetaTTSConfig


def test_round_trip_keeps_every_field(tmp_path):
    config = tiny_config(num_speakers=3, lora_rank=2, vocoder_type="istft")
    config.save_pretrained(tmp_path)
    loaded = MetaTTSConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "metatts"
    assert saved["num_speakers"] == 3 and saved["lora_rank"] == 2


def test_defaults_are_speecht5_mels():
    config = MetaTTSConfig()
    assert (config.sampling_rate, config.num_mel_bins, config.hop_length, config.win_length) == (16000, 80, 256, 1024)
    assert (config.fmin, config.fmax) == (80.0, 7600.0)
    assert config.frames_per_second == pytest.approx(62.5)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sampling_rate", 100, r"sampling_rate=100 is out of range: allowed \[8000, 48000\]"),
        ("hidden_size", 0, r"hidden_size=0 is out of range"),
        ("fmax", 9000.0, r"fmax=9000.0 is out of range"),
        ("hop_length", 4096, r"hop_length=4096 is out of range"),
        ("dropout", float("nan"), r"dropout must be a finite number"),
        ("dropout", 0.95, r"dropout=0.95 is out of range: allowed \[0.0, 0.9\]"),
        ("num_attention_heads", 5, r"divisible by num_attention_heads=5"),
        ("ffn_kernel_size", 4, r"ffn_kernel_size=4 must be odd"),
        ("vocoder_type", "wavenet", r"vocoder_type='wavenet' is not allowed"),
        ("vocoder_type", "speecht5_hifigan", r"needs hifigan_config"),
        ("adapted_parameters", "voice.*", r"adapted_parameters must be a list"),
        ("voice_vocoder_parameters", [], r"voice_vocoder_parameters must be a list .*\(at least one\)"),
        ("voice_vocoder_steps", -1, r"voice_vocoder_steps=-1 is out of range"),
        ("voice_vocoder_learning_rate", 0.0, r"voice_vocoder_learning_rate=0.0 is out of range"),
        ("voice_vocoder_segment_frames", 4, r"voice_vocoder_segment_frames=4 is out of range"),
        ("num_speakers", -1, r"num_speakers=-1 is out of range"),
        ("encoder_layers", 2.5, r"encoder_layers must be an integer"),
    ],
)
def test_impossible_values_raise_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        MetaTTSConfig(**{field: value})


def test_bad_value_in_saved_config_raises_on_load(tmp_path):
    MetaTTSConfig().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["pitch_std"] = 0.0
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"pitch_std=0.0 is out of range"):
        MetaTTSConfig.from_pretrained(tmp_path)
