import json
import shutil

import pytest
import torch
from tiny_models import save_tiny_checkpoint, tiny_model
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForTextToWaveform,
    AutoProcessor,
    AutoTokenizer,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
)

import hf_metatts
from hf_metatts import CheckpointError, MetaTTSForTextToSpeech


def test_strict_round_trip(tmp_path):
    model = tiny_model(num_speakers=2, lora_rank=2)
    model.save_pretrained(tmp_path)
    loaded, info = MetaTTSForTextToSpeech.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)


def test_auto_classes_resolve(tiny_checkpoint):
    assert isinstance(AutoConfig.from_pretrained(tiny_checkpoint), hf_metatts.MetaTTSConfig)
    assert isinstance(AutoModelForTextToWaveform.from_pretrained(tiny_checkpoint), MetaTTSForTextToSpeech)
    assert isinstance(AutoModel.from_pretrained(tiny_checkpoint), MetaTTSForTextToSpeech)
    assert isinstance(AutoTokenizer.from_pretrained(tiny_checkpoint), hf_metatts.MetaTTSTokenizer)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tiny_checkpoint), hf_metatts.MetaTTSFeatureExtractor)
    assert isinstance(AutoProcessor.from_pretrained(tiny_checkpoint), hf_metatts.MetaTTSProcessor)


def test_checkpoint_carries_remote_code_and_auto_map(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTextToWaveform"] == "modeling_metatts.MetaTTSForTextToSpeech"
    assert config["auto_map"]["AutoConfig"] == "configuration_metatts.MetaTTSConfig"
    for name in ("modeling_metatts.py", "modeling_blocks.py", "modeling_alignment.py", "modeling_vocoder.py",
                 "configuration_metatts.py", "tokenization_metatts.py", "feature_extraction_metatts.py", "errors.py"):
        assert (tiny_checkpoint / name).is_file(), name
    tokenizer_config = json.loads((tiny_checkpoint / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization_metatts.MetaTTSTokenizer"


def test_missing_weights_file_is_named(tmp_path, tiny_checkpoint):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"has no model\.safetensors"):
        MetaTTSForTextToSpeech.from_pretrained(broken)


@pytest.mark.parametrize("damage", ["truncate", "garbage_header"])
def test_corrupted_weights_file_is_named(tmp_path, tiny_checkpoint, damage):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\xff" * 16 + data[16:])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupted or truncated"):
        MetaTTSForTextToSpeech.from_pretrained(broken)
    with pytest.raises(CheckpointError):
        AutoModelForTextToWaveform.from_pretrained(broken)
    assert (tiny_checkpoint / "model.safetensors").read_bytes() == data  # the source is untouched


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["lora_rank"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing_keys: decoder.layers.0.lora_a"):
        MetaTTSForTextToSpeech.from_pretrained(tmp_path)


def test_attached_speecht5_hifigan_is_saved_with_the_checkpoint(tmp_path):
    model = tiny_model()
    hifigan = SpeechT5HifiGan(SpeechT5HifiGanConfig(upsample_initial_channel=16, upsample_rates=[8, 8, 2, 2],
                                                    upsample_kernel_sizes=[16, 16, 4, 4],
                                                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]]))
    model.attach_vocoder(hifigan)
    save_dir = tmp_path / "with_hifigan"
    model.save_pretrained(save_dir)
    loaded = MetaTTSForTextToSpeech.from_pretrained(save_dir)
    assert loaded.config.vocoder_type == "speecht5_hifigan"
    mel = torch.randn(1, 20, 80) - 5
    torch.testing.assert_close(loaded.vocoder(mel), hifigan(mel))
    assert loaded.vocoder(mel).shape == (1, 20 * 256)


def test_neural_vocoder_weights_round_trip(tmp_path):
    model = tiny_model(vocoder_type="istft")
    model.save_pretrained(tmp_path)
    loaded = MetaTTSForTextToSpeech.from_pretrained(tmp_path)
    mel = torch.randn(1, 12, 80) - 5
    torch.testing.assert_close(loaded.vocoder(mel), model.vocoder(mel))
    assert any(k.startswith("vocoder.") for k in loaded.state_dict())


def test_griffin_lim_stores_no_weights(tmp_path):
    assert not any(k.startswith("vocoder.") for k in tiny_model().state_dict())


def test_save_pretrained_writes_safetensors_only(tmp_path):
    save_tiny_checkpoint(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
