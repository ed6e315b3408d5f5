"""The support encoder on a frozen speaker encoder (``voice_encoder_type="speaker_embedding"``): attaching,
training only its head, saving and reloading (with and without the package), and the settings it refuses."""

import argparse
import json
import os

import pytest
import torch
from datasets import DatasetDict
from test_meta_metatts import TINY, mel_corpus, tiny_model

from hf_metatts import MetaTTSConfig, MetaTTSForTextToSpeech
from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.meta import EpisodeSampler, InvalidMetaConfigError, MetaLearner, MetaLearnerConfig
from hf_metatts.meta.identity import IdentityEncoderConfig, SpeakerIdentityEncoder, save_identity_encoder
from hf_metatts.modeling_blocks import VoiceEncoder
from hf_metatts.modeling_speaker_encoder import SpeakerEmbeddingVoiceEncoder

SMALL = IdentityEncoderConfig(channels=16, kernel_sizes=(3, 3), dilations=(1, 2), embedding_dim=8)


def speaker_encoder(seed=0):
    """A frozen encoder with non-trivial weights and batch-norm statistics (as a trained one has)."""
    torch.manual_seed(seed)
    encoder = SpeakerIdentityEncoder(SMALL)
    for norm in encoder.norms:
        norm.running_mean.normal_(0, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return encoder.requires_grad_(False).eval()


def attached_model(seed=0):
    model = tiny_model(seed)
    model.use_speaker_embedding_voice_encoder(speaker_encoder())
    return model


def support_mels(seed=0, clips=3, frames=24):
    generator = torch.Generator().manual_seed(seed)
    mels = torch.randn(clips, frames, 80, generator=generator) - 2.0
    mask = torch.ones(clips, frames, dtype=torch.bool)
    mask[-1, frames // 2:] = False
    return mels, mask


def test_a_fresh_head_starts_at_the_models_own_voice_and_only_the_head_trains():
    model = attached_model()
    assert model.config.voice_encoder_type == "speaker_embedding"
    assert model.config.speaker_encoder_config["channels"] == SMALL.channels
    assert isinstance(model.voice_encoder, SpeakerEmbeddingVoiceEncoder)
    mels, mask = support_mels()
    voice = model.encode_voice(mels, mask)
    assert set(voice) == set(model.adapted_parameter_names())
    assert all(torch.equal(voice[n], model.get_parameter(n)) for n in voice)  # zero head: the model's own voice
    trainable = {n for n, p in model.voice_encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    model.train()
    assert model.voice_encoder.head.training and not model.voice_encoder.speaker_encoder.training
    # the adapted set never includes the support encoder
    assert not any(n.startswith("voice_encoder.") for n in model.adapted_parameter_names())


def test_the_zero_shot_meta_gradient_reaches_the_head_but_not_the_speaker_encoder():
    model = attached_model()
    frozen = {k: v.clone() for k, v in model.voice_encoder.speaker_encoder.state_dict().items()}
    sampler = EpisodeSampler(mel_corpus(), "speaker_id", 3, 3, 2, seed=0)
    episode = sampler.collate(sampler.episode(0), MetaTTSDataCollator())
    cfg = MetaLearnerConfig(method="maml", first_order=True, inner_steps=1, inner_lr=0.01, zero_shot_start=True,
                            adapted_parameter_names=model.adapted_parameter_names())
    learner = MetaLearner(model, cfg)
    learner.train()
    learner(**episode).loss.backward()
    head = model.voice_encoder.head
    assert float(head[-1].weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.voice_encoder.speaker_encoder.parameters())
    # a training-mode forward leaves the batch-norm statistics alone
    assert all(torch.equal(v, model.voice_encoder.speaker_encoder.state_dict()[k]) for k, v in frozen.items())


def test_the_voice_of_unseen_clips_depends_on_the_speaker_embedding_once_the_head_is_trained():
    model = attached_model()
    with torch.no_grad():
        model.voice_encoder.head[-1].weight.normal_(0, 0.1)
    first = model.encode_voice(*support_mels(0))
    second = model.encode_voice(*support_mels(1))
    name = "voice.speaker_vector"
    assert not torch.allclose(first[name], second[name])
    # padded frames do not count: changing them keeps the voice
    mels, mask = support_mels(0)
    mels[-1, ~mask[-1]] = 50.0
    assert torch.allclose(model.encode_voice(mels, mask)[name], first[name], atol=1e-6)


def test_save_and_reload_keep_the_encoder_frozen_and_the_voices_identical(tmp_path):
    model = attached_model()
    with torch.no_grad():
        model.voice_encoder.head[-1].bias.normal_(0, 0.1)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_speaker_encoder.py").is_file()  # remote code travels with the checkpoint
    loaded = MetaTTSForTextToSpeech.from_pretrained(tmp_path)
    assert isinstance(loaded.voice_encoder, SpeakerEmbeddingVoiceEncoder)
    assert not any(p.requires_grad for p in loaded.voice_encoder.speaker_encoder.parameters())
    mels, mask = support_mels()
    model.eval()
    loaded.eval()
    expected, got = model.encode_voice(mels, mask), loaded.encode_voice(mels, mask)
    assert all(torch.equal(expected[n], got[n]) for n in expected)


def test_the_remote_code_alone_loads_it(tmp_path):
    from transformers import AutoConfig, AutoModelForTextToWaveform

    model = attached_model()
    model.config.register_for_auto_class()
    model.register_for_auto_class("AutoModelForTextToWaveform")
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path, trust_remote_code=True)
    loaded = AutoModelForTextToWaveform.from_pretrained(tmp_path, trust_remote_code=True)
    assert config.voice_encoder_type == "speaker_embedding"
    assert type(loaded.voice_encoder).__name__ == "SpeakerEmbeddingVoiceEncoder"
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


@pytest.mark.parametrize("overrides, message", [
    (dict(voice_encoder_type="lstm"), "voice_encoder_type='lstm' is not allowed"),
    (dict(voice_encoder_type="speaker_embedding"), "needs speaker_encoder_config"),
])
def test_bad_voice_encoder_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        MetaTTSConfig(**{**TINY, **overrides})


def test_a_speaker_encoder_for_other_mel_bins_is_refused_and_the_model_keeps_its_encoder():
    model = tiny_model()
    before = model.voice_encoder
    with pytest.raises(ValueError, match="num_mel_bins=40 differs"):
        model.use_speaker_embedding_voice_encoder(SpeakerIdentityEncoder(IdentityEncoderConfig(num_mel_bins=40)))
    assert model.voice_encoder is before and isinstance(before, VoiceEncoder)
    assert model.config.voice_encoder_type == "convolution" and model.config.speaker_encoder_config is None


def _meta_train(tmp_path, **overrides):
    from hf_metatts.meta.cli import register

    DatasetDict({"train": mel_corpus(4, 6), "validation": mel_corpus(2, 6, seed=1)}).save_to_disk(tmp_path / "data")
    config = json.load(open("examples/configs/tiny_maml.json"))
    config.update(dataset_path=str(tmp_path / "data"), output_dir=str(tmp_path / "out"), max_steps=3,
                  eval_strategy="no", save_strategy="no", use_cpu=True, disable_tqdm=True, zero_shot_start=True,
                  learning_rate=0.01, warmup_steps=0)
    config.update(overrides)
    (tmp_path / "c.json").write_text(json.dumps(config))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["meta-train", "--config", str(tmp_path / "c.json")])
    return args.func(args)


@pytest.mark.slow
def test_meta_train_attaches_the_encoder_and_trains_its_head(tmp_path):
    encoder = speaker_encoder()
    save_identity_encoder(encoder, str(tmp_path / "encoder"))
    assert _meta_train(tmp_path, speaker_embedding_voice_encoder=str(tmp_path / "encoder")) == 0
    trained = MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "out"))
    assert trained.config.voice_encoder_type == "speaker_embedding"
    assert float(trained.voice_encoder.head[-1].weight.detach().abs().sum()) > 0  # the head learned
    for name, value in encoder.state_dict().items():  # the speaker encoder did not
        assert torch.equal(value, trained.voice_encoder.speaker_encoder.state_dict()[name]), name


def test_meta_train_refuses_the_encoder_without_a_zero_shot_start_or_a_trained_folder(tmp_path):
    save_identity_encoder(speaker_encoder(), str(tmp_path / "encoder"))
    with pytest.raises(InvalidMetaConfigError, match="set zero_shot_start=true"):
        _meta_train(tmp_path, speaker_embedding_voice_encoder=str(tmp_path / "encoder"), zero_shot_start=False)
    with pytest.raises(InvalidMetaConfigError, match="train-identity-encoder"):
        _meta_train(tmp_path, speaker_embedding_voice_encoder=str(tmp_path / "missing"))
    assert not os.path.exists(tmp_path / "out" / "model.safetensors")  # nothing was trained or saved


def test_a_checkpoint_with_a_speaker_encoder_serves_as_the_identity_encoder(tmp_path):
    from hf_metatts.meta.identity import load_identity_encoder

    model = attached_model()
    model.save_pretrained(tmp_path / "model")
    encoder = load_identity_encoder(str(tmp_path / "model"))
    assert isinstance(encoder, SpeakerIdentityEncoder) and encoder is not model.voice_encoder.speaker_encoder
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    mels, mask = support_mels()
    with torch.no_grad():
        assert torch.equal(encoder(mels, mask), model.voice_encoder.speaker_encoder(mels, mask))


def test_the_bundled_checkpoint_lends_its_speaker_encoder():
    import hf_metatts
    from hf_metatts.meta.identity import load_identity_encoder

    encoder = load_identity_encoder(hf_metatts.DEFAULT_CHECKPOINT)
    bundled = MetaTTSForTextToSpeech.from_pretrained(hf_metatts.DEFAULT_CHECKPOINT).voice_encoder.speaker_encoder
    assert encoder.config == bundled.config
    mels, mask = support_mels(clips=2, frames=40)
    with torch.no_grad():
        embeddings = encoder(mels, mask)
        assert torch.equal(embeddings, bundled(mels, mask))
    assert embeddings.shape == (2, encoder.config.embedding_dim)


def test_a_checkpoint_without_a_speaker_encoder_is_refused_and_left_as_it_was(tmp_path):
    from hf_metatts.meta.identity import load_identity_encoder

    tiny_model().save_pretrained(tmp_path / "plain")
    before = {p.name: p.read_bytes() for p in (tmp_path / "plain").iterdir()}
    with pytest.raises(InvalidMetaConfigError, match="has no speaker encoder.*train-identity-encoder"):
        load_identity_encoder(str(tmp_path / "plain"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "plain").iterdir()} == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InvalidMetaConfigError, match="is no MetaTTS checkpoint"):
        load_identity_encoder(str(tmp_path / "other"))


@pytest.mark.slow
def test_meta_train_takes_its_identity_critic_from_a_checkpoint(tmp_path, caplog):
    critic = attached_model(seed=3)
    critic.save_pretrained(tmp_path / "critic")
    with caplog.at_level("INFO"):
        assert _meta_train(tmp_path, identity_loss_weight=1.0, identity_encoder=str(tmp_path / "critic")) == 0
    assert f"identity term (encoder {tmp_path / 'critic'})" in caplog.text
    trained = MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "out"))
    assert trained.config.voice_encoder_type == "convolution"  # the critic scores the run; it is not saved with it
