import math

import pytest
import torch
from tiny_models import tiny_config, tiny_model, tiny_processor

from hf_metatts import MetaTTSForTextToSpeech
from hf_metatts.modeling_alignment import monotonic_alignment_search


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def synthetic_batch(processor, texts=("Hello world.", "This is a longer sentence to align."), frames=(40, 70)):
    encoded = processor.tokenizer(list(texts), padding=True, return_tensors="pt")
    generator = torch.Generator().manual_seed(0)
    labels = torch.randn(len(texts), max(frames), 80, generator=generator) - 4.0
    mask = torch.zeros(len(texts), max(frames), dtype=torch.long)
    for row, count in enumerate(frames):
        mask[row, :count] = 1
    pitch = torch.full((len(texts), max(frames)), math.log(140.0))
    pitch[:, ::5] = 0.0  # some unvoiced frames
    return {**encoded, "labels": labels, "labels_attention_mask": mask, "pitch": pitch}


def test_training_forward_returns_all_losses_and_learned_alignment(processor):
    model = tiny_model().train()
    batch = synthetic_batch(processor)
    output = model(**batch)
    assert set(output.losses) == {"alignment", "bin", "pitch", "mel", "duration", "energy"}
    assert torch.isfinite(output.loss)
    # the aligner's hard durations cover every frame of every clip exactly once
    assert output.durations.sum(1).tolist() == [40, 70]
    text_lengths = batch["attention_mask"].sum(1)
    assert ((output.durations > 0).sum(1) == text_lengths).all()  # no token skipped
    output.loss.backward()
    for name in model.adapted_parameter_names():
        assert model.get_parameter(name).grad is not None, name
    assert model.aligner.key_proj[0].weight.grad.abs().sum() > 0


def test_given_durations_replace_the_aligner(processor):
    model = tiny_model().train()
    batch = synthetic_batch(processor, texts=("Hi there.",), frames=(30,))
    tokens = int(batch["attention_mask"].sum())
    durations = torch.full((1, tokens), 30 // tokens)
    durations[0, -1] += 30 - int(durations.sum())
    output = model(**batch, durations=durations)
    assert "alignment" not in output.losses
    assert torch.equal(output.durations, durations)
    with pytest.raises(ValueError, match="must sum to each clip's number of mel frames"):
        model(**batch, durations=durations + 1)


def test_training_lowers_the_loss(processor):
    torch.manual_seed(0)
    model = tiny_model().train()
    batch = synthetic_batch(processor)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(12):
        loss = model(**batch).loss
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.7 * first


def test_monotonic_alignment_search_is_monotonic_and_complete():
    log_probs = torch.randn(3, 6, 20).log_softmax(1)
    text_lengths, mel_lengths = torch.tensor([6, 4, 1]), torch.tensor([20, 9, 5])
    path = monotonic_alignment_search(log_probs, text_lengths, mel_lengths)
    for item in range(3):
        frames = path[item, :, : mel_lengths[item]]
        assert (frames.sum(0) == 1).all()  # each frame to exactly one token
        tokens = frames.argmax(0)
        assert (tokens.diff() >= 0).all() and (tokens.diff() <= 1).all()  # in order, none skipped
        assert tokens[0] == 0 and tokens[-1] == text_lengths[item] - 1
        assert path[item, :, mel_lengths[item] :].sum() == 0


def test_inference_returns_each_item_at_its_own_length(processor):
    model = tiny_model(frames_per_token=3.0)
    texts = ["Hi.", "A much longer sentence than the first one."]
    batch = processor.tokenizer(texts, padding=True, return_tensors="pt")
    output = model(**batch)
    assert output.waveform.is_nested
    waves = output.waveform.unbind()
    for row, text in enumerate(texts):
        tokens = len(processor.tokenizer(text)["input_ids"])
        assert waves[row].shape[0] == output.waveform_lengths[row] == tokens * 3 * 256
        single = model(**processor.tokenizer(text, return_tensors="pt"))
        assert single.waveform.shape == (1, waves[row].shape[0])
        torch.testing.assert_close(single.waveform[0], waves[row], atol=1e-4, rtol=0)
    assert output.padded_waveform.shape == (2, int(output.waveform_lengths.max()))


def test_long_input_is_split_at_sentences_and_never_truncated(processor):
    model = tiny_model(frames_per_token=2.0, max_chunk_tokens=120, vocoder_type="istft")
    paragraph = " ".join(f"Sentence number {i} talks about the weather in the valley." for i in range(40))
    assert len(paragraph) > 2000
    ids = processor.tokenizer(paragraph, return_tensors="pt")
    output = model(**ids)
    tokens = ids["input_ids"].shape[1]
    chunks = model._split_long_input(ids["input_ids"][0].tolist())
    assert sum(len(c) for c in chunks) == tokens  # nothing dropped
    assert all(len(c) <= 120 for c in chunks) and len(chunks) > 10
    pause = round(model.config.sentence_pause_seconds * model.config.frames_per_second)
    expected_frames = 2 * tokens + pause * (len(chunks) - 1)
    assert output.spectrogram_lengths.item() == expected_frames
    assert output.waveform.shape[1] == expected_frames * 256


def test_speaking_rate_and_pitch_shift(processor):
    model = tiny_model(frames_per_token=4.0)
    ids = processor.tokenizer("Speak slowly please.", return_tensors="pt")
    normal = model(**ids).waveform.shape[1]
    slow = model(**ids, speaking_rate=0.5).waveform.shape[1]
    fast = model(**ids, speaking_rate=2.0).waveform.shape[1]
    assert slow == 2 * normal and fast == normal // 2
    shifted = model(**ids, pitch_shift=5.0).spectrogram
    assert not torch.allclose(shifted, model(**ids).spectrogram)
    with pytest.raises(ValueError, match="speaking_rate must be a positive number"):
        model(**ids, speaking_rate=0.0)
    with pytest.raises(ValueError, match=r"pitch_shift is in semitones and must lie in \[-24, 24\]"):
        model(**ids, pitch_shift=40.0)


def test_language_forward_parameter_explains_where_language_goes(processor):
    model = tiny_model()
    ids = processor.tokenizer("Hello.", return_tensors="pt")
    with pytest.raises(ValueError, match=r"preprocess_params=\{'language': 'de'\}"):
        model(**ids, language="de")


def test_adapted_parameter_set():
    model = tiny_model()
    names = model.adapted_parameter_names()
    assert names[0] == "voice.speaker_vector"
    assert all(n == "voice.speaker_vector" or n.startswith("decoder.") for n in names)
    assert sum(model.get_parameter(n).numel() for n in names) == 8 + (4 + 2) * 32 * 1 + 2 * 32 * 0 + 0
    with_lora = tiny_model(lora_rank=2)
    assert {"decoder.layers.0.lora_a", "decoder.layers.0.lora_b"} <= set(with_lora.adapted_parameter_names())
    assert model.adapted_parameter_names(["voice.speaker_*"]) == ["voice.speaker_vector"]
    with pytest.raises(ValueError, match=r"'decoder\.nothing\.\*' matches no parameter"):
        model.adapted_parameter_names(["decoder.nothing.*"])


def test_a_voice_changes_the_audio_but_never_the_base(processor):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = processor.tokenizer("Whose voice is this?", return_tensors="pt")
    base = model(**ids).spectrogram
    voice = {name: value + 0.5 for name, value in model.adapted_state_dict().items()}
    voiced = model(**ids, voice=voice).spectrogram
    assert not torch.allclose(base, voiced)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    torch.testing.assert_close(model(**ids).spectrogram, base)
    with pytest.raises(ValueError, match="does not have"):
        model(**ids, voice={"no.such.parameter": torch.zeros(3)})
    with pytest.raises(ValueError, match="has shape"):
        model(**ids, voice={"voice.speaker_vector": torch.zeros(3)})


def test_speaker_table_and_embeddings(processor):
    model = tiny_model(num_speakers=3)
    ids = processor.tokenizer("Same text.", return_tensors="pt")
    first = model(**ids, speaker_ids=torch.tensor([0])).spectrogram
    second = model(**ids, speaker_ids=1).spectrogram
    assert not torch.allclose(first, second)
    vector = model.voice.speaker_table.weight[1].detach()
    torch.testing.assert_close(model(**ids, speaker_embeddings=vector).spectrogram, second)
    with pytest.raises(ValueError, match=r"speaker_ids must lie in \[0, 2\]"):
        model(**ids, speaker_ids=7)
    with pytest.raises(ValueError, match="has no speaker table"):
        tiny_model()(**ids, speaker_ids=0)


def test_zero_shot_voice_encoder_starts_at_the_initial_voice():
    model = tiny_model()
    mels = torch.randn(3, 50, 80) - 4
    voice = model.encode_voice(mels)
    assert set(voice) == set(model.adapted_parameter_names())
    for name, value in voice.items():
        torch.testing.assert_close(value, model.get_parameter(name))
    with torch.no_grad():
        model.voice_encoder.head.bias.fill_(0.1)
    assert not torch.allclose(model.encode_voice(mels)["voice.speaker_vector"], model.voice.speaker_vector)
    without = MetaTTSForTextToSpeech(tiny_config(use_voice_encoder=False))
    with pytest.raises(ValueError, match="no voice encoder"):
        without.encode_voice(mels)


@pytest.mark.parametrize("vocoder_type", ["griffin_lim", "istft"])
def test_vocoders_turn_frames_into_hops(vocoder_type):
    model = tiny_model(vocoder_type=vocoder_type)
    mel = torch.randn(1, 37, 80) - 5
    audio = model.vocoder(mel)
    assert audio.shape == (1, 37 * 256)
    assert torch.isfinite(audio).all()
    torch.testing.assert_close(model.vocoder(mel), audio)  # deterministic


def test_griffin_lim_reconstructs_a_tone():
    from hf_metatts import MetaTTSFeatureExtractor

    model = tiny_model(griffin_lim_iters=32)
    t = torch.arange(16000) / 16000
    wave = 0.5 * torch.sin(2 * math.pi * 220 * t)
    extractor = MetaTTSFeatureExtractor()
    mel = torch.from_numpy(extractor(wave.numpy(), sampling_rate=16000)["input_features"])
    rebuilt = model.vocoder(mel)[0]
    spectrum = torch.fft.rfft(rebuilt[2000:14000]).abs()
    peak_hz = spectrum.argmax().item() * 16000 / 12000
    assert abs(peak_hz - 220) < 10
