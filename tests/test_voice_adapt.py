"""model.adapt -> MetaTTSVoice -> save/load: same audio, base untouched, small files, every method."""

import json
import os

import numpy as np
import pytest
import soundfile
import torch
from tiny_models import tiny_config, tiny_model

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import base_fingerprint, clear_base_cache

SR = 16000
TEXTS = ["Hello there, this is a test.", "A second sentence for the voice.", "Meta learning adapts fast.",
         "Speech from a few short clips.", "The last clip of the support set."]


def speechlike(seconds: float, pitch: float = 160.0, seed: int = 0, rate: int = SR) -> np.ndarray:
    """An amplitude-modulated harmonic tone with a little noise: ``(samples,)`` float32, peak < 0.6."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
    return (0.2 * wave * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_clips(count: int = 3, pitch: float = 160.0) -> list[tuple[np.ndarray, str]]:
    return [(speechlike(1.6 + 0.2 * i, pitch + 7 * i, seed=i), TEXTS[i]) for i in range(count)]


def weights(model) -> dict:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_same_weights(model, before) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def synth(model, text="Short test.", voice=None, processor=None):
    processor = processor or hf_metatts.MetaTTSProcessor(
        hf_metatts.MetaTTSFeatureExtractor.from_model_config(model.config), hf_metatts.MetaTTSTokenizer())
    inputs = processor(text=text, return_tensors="pt")
    return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], voice=voice).waveform[0]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model's tensors are too small for two threads to help; on a busy machine they slow it 20x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fresh_bases():
    clear_base_cache()
    yield
    clear_base_cache()


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    """The session's tiny checkpoint folder (never written to: voices and copies go to each test's own folder)."""
    return tiny_checkpoint


@pytest.fixture
def model(checkpoint):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(checkpoint))


def test_adapt_save_load_reproduces_the_audio_and_leaves_the_base_alone(model, tmp_path):
    before = weights(model)
    voice = model.adapt(make_clips(), sampling_rate=SR, steps=3, lr=0.5, progress=False)
    assert_same_weights(model, before)
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(voice, MetaTTSVoice) and set(voice.adapted_parameters) == set(model.adapted_parameter_names())
    changed = [n for n, v in voice.adapted_parameters.items() if not torch.equal(v, before[n])]
    assert changed, "adaptation changed nothing"
    voice.save_pretrained(tmp_path / "voice")
    loaded = MetaTTSVoice.from_pretrained(tmp_path / "voice")
    for name, value in voice.adapted_parameters.items():
        assert torch.equal(loaded.adapted_parameters[name], value)
    adapted_audio = synth(model, voice=voice)
    np.testing.assert_array_equal(synth(model, voice=loaded).numpy(), adapted_audio.numpy())
    assert not torch.allclose(synth(model), adapted_audio)  # the voice is audible
    assert_same_weights(model, before)
    config = json.loads((tmp_path / "voice" / "voice_config.json").read_text())
    assert config["base_model"] == os.path.abspath(model.name_or_path)
    assert config["base_fingerprint"] == base_fingerprint(model)
    assert (config["method"], config["steps"], config["shots"], config["language"]) == ("maml", 3, 3, "en-us")
    assert config["sampling_rate"] == SR and config["library_version"] == hf_metatts.__version__
    assert config["support_seconds"] == pytest.approx(1.6 + 1.8 + 2.0, abs=1e-3)


def test_voiced_model_from_pretrained_equals_the_voice_argument(model, tmp_path):
    voice = model.adapt(make_clips(2), sampling_rate=SR, steps=2, lr=0.5, progress=False)
    voice.save_pretrained(tmp_path / "voice")
    voiced = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "voice"))
    assert isinstance(voiced, hf_metatts.MetaTTSForTextToSpeech) and voiced.metatts_voice is not None
    np.testing.assert_array_equal(synth(voiced).numpy(), synth(model, voice=voice).numpy())


def test_clips_as_files_and_datasets(model, tmp_path):
    from datasets import Audio, Dataset

    paths = []
    for index, (audio, _) in enumerate(make_clips(2)):
        resampled = np.interp(np.arange(int(len(audio) * 22050 / SR)) * SR / 22050, np.arange(len(audio)), audio)
        paths.append(str(tmp_path / f"clip{index}.wav"))
        soundfile.write(paths[-1], resampled.astype(np.float32), 22050)
    by_path = model.adapt(list(zip(paths, TEXTS)), steps=1, progress=False)
    table = Dataset.from_dict({"audio": paths, "text": TEXTS[:2]}).cast_column("audio", Audio(decode=False))
    by_dataset = model.adapt(table, steps=1, progress=False)
    for name, value in by_path.adapted_parameters.items():
        assert torch.equal(by_dataset.adapted_parameters[name], value)
    assert by_path.config.shots == 2 and by_path.config.sampling_rate == SR


@pytest.mark.parametrize("method", ["zero_shot", "finetune"])
def test_other_methods(model, method):
    with torch.no_grad():  # a trained support encoder (its head starts at zero)
        model.voice_encoder.head.weight.normal_(std=0.05)
    before = weights(model)
    voice = model.adapt(make_clips(2), sampling_rate=SR, method=method, progress=False)
    assert voice.config.method == method
    assert voice.config.steps == (0 if method == "zero_shot" else 5)
    assert any(not torch.equal(v, before[n]) for n, v in voice.adapted_parameters.items())
    other = model.adapt(make_clips(2, pitch=300.0), sampling_rate=SR, method=method, progress=False)
    assert any(not torch.equal(v, other.adapted_parameters[n]) for n, v in voice.adapted_parameters.items())
    assert_same_weights(model, before)


def test_maml_uses_learned_learning_rates_and_meta_lstm_needs_its_learner(model, tmp_path):
    from hf_metatts.meta import InvalidMetaConfigError, MetaLearnerConfig, MetaLearnerHead

    names = model.adapted_parameter_names()
    shapes = {n: model.get_parameter(n).shape for n in names}
    head = MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_steps=2, adapted_parameter_names=names), shapes)
    voice = model.adapt(make_clips(2), sampling_rate=SR, meta_learner=head, progress=False)
    assert (voice.config.method, voice.config.steps) == ("metasgd", 2)
    with pytest.raises(InvalidMetaConfigError, match="meta_lstm"):
        model.adapt(make_clips(1), sampling_rate=SR, method="meta_lstm", progress=False)
    lstm = MetaLearnerHead(MetaLearnerConfig(method="meta_lstm", inner_steps=2, adapted_parameter_names=names), shapes)
    assert model.adapt(make_clips(1), sampling_rate=SR, method="meta_lstm", meta_learner=lstm,
                       progress=False).config.method == "meta_lstm"


def test_progress_bar_shows_the_steps(model, capsys):
    model.adapt(make_clips(1), sampling_rate=SR, steps=2, progress=True)
    err = capsys.readouterr().err
    assert "Adapting voice (maml)" in err and "2/2" in err


def test_voice_file_is_small_at_the_base_config(tmp_path):
    base = hf_metatts.MetaTTSForTextToSpeech(hf_metatts.MetaTTSConfig(dropout=0.0)).eval()
    voice = base.adapt(make_clips(1), sampling_rate=SR, method="zero_shot", progress=False)
    voice.save_pretrained(tmp_path / "voice")
    size = os.path.getsize(tmp_path / "voice" / "voice.safetensors")
    assert voice.num_parameters == 64 + (4 * 4 + 2) * 192
    assert size <= 64 * 1024, size


def test_a_voiced_view_shares_the_base_weights(model):
    voice = model.adapt(make_clips(1), sampling_rate=SR, steps=1, lr=0.5, progress=False)
    view = voice.apply_to(model)
    adapted = set(voice.adapted_parameters)
    own = dict(model.named_parameters())
    for name, value in view.named_parameters():
        if name in adapted:
            assert value.data_ptr() != own[name].data_ptr()
            assert torch.equal(value, voice.adapted_parameters[name])
        else:
            assert value.data_ptr() == own[name].data_ptr(), name
    assert base_fingerprint(view) == base_fingerprint(model)


def test_tiny_config_in_memory_voice_has_no_base_id(tmp_path):
    model = tiny_model()
    voice = model.adapt(make_clips(1), sampling_rate=SR, steps=1, progress=False)
    assert voice.config.base_model is None
    voice.save_pretrained(tmp_path / "voice")
    with pytest.raises(hf_metatts.CheckpointError, match="unsaved model"):
        hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "voice"))
    assert tiny_config().speaker_dim == 8


def test_a_model_on_a_frozen_speaker_encoder_adapts_and_its_voices_keep_the_base_fingerprint(model, tmp_path):
    """The speaker encoder's 0-dim batch-norm counters are part of the base fingerprint (they used to break it)."""
    from test_speaker_embedding_voice_encoder import speaker_encoder

    model.use_speaker_embedding_voice_encoder(speaker_encoder())
    counters = [name for name, value in model.state_dict().items() if value.dim() == 0]
    assert counters, "the speaker encoder should bring 0-dim buffers (num_batches_tracked)"
    fingerprint = base_fingerprint(model)
    voice = model.adapt(make_clips(2), sampling_rate=SR, steps=2, progress=False)
    voice.save_pretrained(tmp_path / "voice")
    assert json.loads((tmp_path / "voice" / "voice_config.json").read_text())["base_fingerprint"] == fingerprint
    model.get_buffer(counters[0]).add_(1)  # a different base: the counter is in the fingerprint
    clear_base_cache()
    assert base_fingerprint(model) != fingerprint
