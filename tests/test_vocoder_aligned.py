"""Ground-truth-aligned vocoder fine-tuning (`hf_metatts.training.vocoder_aligned`, ``train-vocoder
--aligned-model``): the pairs are the adapted model's teacher-forced log-mels next to the recordings' own samples,
segments stay aligned, and a run starts from the given vocoder, learns, and refuses bad inputs before writing."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_fixtures import aligned_corpora, speaker_row_order, speaker_split
from datasets import Audio, DatasetDict, load_from_disk

from hf_metatts import MetaTTSForTextToSpeech
from hf_metatts.data import decode_audio
from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.training.vocoder import (
    SUMMARY_NAME,
    VocoderLoss,
    VocoderTrainingArguments,
    VocoderTrainingError,
    load_trained_vocoder,
    train_vocoder,
)
from hf_metatts.training.vocoder_aligned import (
    AlignedClip,
    AlignedCorpusError,
    AlignedSegmentSampler,
    aligned_clips,
    aligned_validation_losses,
    default_adaptation,
    teacher_forced_mels,
)
from hf_metatts.voice_adapt import resolve_adaptation

torch.set_num_threads(1)
SR, HOP = 16000, 256


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A corpus (train: 2 speakers x 4 clips; validation: 2 x 3), its prepared copy, and a tiny checkpoint."""
    return aligned_corpora(tmp_path_factory.mktemp("aligned"), 4, 3)


def load_model(folder):
    return MetaTTSForTextToSpeech.from_pretrained(folder).eval()


def test_resolve_adaptation_follows_model_adapt_defaults():
    metasgd = SimpleNamespace(config=SimpleNamespace(method="metasgd", inner_steps=3))
    maml = SimpleNamespace(config=SimpleNamespace(method="maml", inner_steps=7))
    assert resolve_adaptation("maml", metasgd, None) == ("metasgd", 3)
    assert resolve_adaptation("maml", maml, None) == ("maml", 7)
    assert resolve_adaptation("maml", None, None) == ("maml", 5)
    assert resolve_adaptation("zero_shot", maml, None) == ("zero_shot", 0)
    assert resolve_adaptation("finetune", None, 100) == ("finetune", 100)


def test_aligned_pairs_are_the_adapted_models_teacher_forced_mels_next_to_the_recordings(corpora):
    model = load_model(corpora.model)
    pairs = aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2, clips_per_speaker=5)
    prepared = load_from_disk(corpora.prepared)["train"]
    raw = load_from_disk(corpora.corpus)["train"].cast_column("audio", Audio(decode=False))
    assert sorted({p.speaker for p in pairs}) == ["speaker0", "speaker1"]
    assert [p.speaker for p in pairs].count("speaker0") == 2  # 4 clips: 2 support, the other 2 read
    index_of = {row_id: index for index, row_id in enumerate(prepared["id"])}
    collate = MetaTTSDataCollator()
    for pair in pairs:
        index = index_of[pair.id]
        assert prepared[index]["speaker_id"] == pair.speaker
        assert pair.mel.dtype == np.float32 and pair.mel.shape == (len(prepared[index]["labels"]), 80)
        assert pair.audio.shape == (len(pair.mel) * HOP,)
        recording = decode_audio(raw[index]["audio"], SR)
        usable = min(len(recording), len(pair.audio))
        np.testing.assert_allclose(pair.audio[:usable], recording[:usable], atol=1e-6)
        assert not np.any(pair.audio[usable:])  # only padding after the recording's last sample
        real = np.asarray(prepared[index]["labels"], dtype=np.float32)
        assert np.abs(pair.mel - real).mean() > 0.05  # the model's prediction, not the recording's own mel
    # Each pair is what the model adapted to its speaker's other rows predicts on the row's own durations, and no
    # support row is read.
    for speaker_number, speaker in enumerate(["speaker0", "speaker1"]):
        order = speaker_row_order(prepared["speaker_id"], speaker, speaker_number)
        read = [index_of[p.id] for p in pairs if p.speaker == speaker]
        assert read == order[2:4] and not set(read) & set(order[:2])
        params = default_adaptation(model, None, collate([prepared[i] for i in order[:2]]))
        expected = teacher_forced_mels(model, params, collate([prepared[i] for i in read]))
        for pair, mel in zip([p for p in pairs if p.speaker == speaker], expected):
            np.testing.assert_allclose(pair.mel, mel, atol=1e-5)


def test_start_fraction_reads_the_first_clips_with_the_voice_before_the_steps(corpora):
    model = load_model(corpora.model)
    pairs = aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2, clips_per_speaker=2,
                          start_fraction=0.5)
    prepared = load_from_disk(corpora.prepared)["train"]
    index_of = {row_id: index for index, row_id in enumerate(prepared["id"])}
    collate = MetaTTSDataCollator()
    for speaker_number, speaker in enumerate(["speaker0", "speaker1"]):
        order = speaker_row_order(prepared["speaker_id"], speaker, speaker_number)
        support = collate([prepared[i] for i in order[:2]])
        first, second = [p for p in pairs if p.speaker == speaker]
        assert [index_of[first.id], index_of[second.id]] == order[2:4]
        start = default_adaptation(model, None, support, steps=0)
        adapted = default_adaptation(model, None, support)
        assert any(not torch.equal(start[name], adapted[name]) for name in start)
        np.testing.assert_allclose(first.mel, teacher_forced_mels(model, start, collate([prepared[order[2]]]))[0],
                                   atol=1e-5)
        np.testing.assert_allclose(second.mel, teacher_forced_mels(model, adapted, collate([prepared[order[3]]]))[0],
                                   atol=1e-5)
    with pytest.raises(AlignedCorpusError, match="start_fraction=1.5"):
        aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2, start_fraction=1.5)


def test_the_sampler_keeps_mel_frames_and_samples_aligned():
    frames, mels = 40, 80
    mel = np.repeat(np.arange(frames, dtype=np.float32)[:, None], mels, axis=1)  # frame t reads t
    audio = (np.arange(frames * HOP) // HOP).astype(np.float32)  # sample n belongs to frame n // hop
    clips = [AlignedClip("a", "s", mel, audio), AlignedClip("b", "short", mel[:3], audio[:3 * HOP])]
    sampler = AlignedSegmentSampler(clips, segment_frames=8, hop_length=HOP, seed=0)
    assert [c.speaker for c in sampler.clips] == ["s"]  # too short for a segment: left out
    segments, waves = sampler.sample(16)
    assert segments.shape == (16, 8, mels) and waves.shape == (16, 8 * HOP)
    for segment, wave in zip(segments, waves):
        starts = segment[:, 0]
        assert torch.equal(starts, starts[0] + torch.arange(8, dtype=torch.float32))
        assert torch.equal(wave.reshape(8, HOP)[:, 0], starts)
    with pytest.raises(AlignedCorpusError, match="segment_frames"):
        AlignedSegmentSampler([AlignedClip("b", "short", mel[:3], audio[:3 * HOP])], 8, HOP, 0)


def tiny_aligned_args(corpora, output_dir, **overrides) -> VocoderTrainingArguments:
    values = dict(dataset_path=corpora.corpus, output_dir=str(output_dir), aligned_model=corpora.model,
                  init_from=corpora.model, aligned_shots=2, aligned_clips_per_speaker=2,
                  aligned_validation_clips_per_speaker=1, segment_frames=8, batch_size=4, max_steps=30,
                  learning_rate=3e-3, warmup_steps=3, threads=1, logging_steps=10, eval_steps=30, save_steps=30)
    values.update(overrides)
    return VocoderTrainingArguments(**values)


def test_aligned_training_starts_from_the_given_vocoder_and_lowers_the_aligned_loss(corpora, tmp_path):
    start = load_trained_vocoder(corpora.model)
    args = tiny_aligned_args(corpora, tmp_path / "vocoder")
    model = load_model(corpora.model)
    valid = aligned_clips(model, None, corpora.prepared, corpora.corpus, "validation", shots=2, clips_per_speaker=1)
    before = aligned_validation_losses(start, VocoderLoss(start.config, args), valid)
    summary = train_vocoder(args)
    assert summary["steps"] == 30
    assert summary["parameters"] == sum(p.numel() for p in start.parameters())  # the given vocoder's sizes
    after = summary["validation"]["aligned"]
    assert after["mel_l1"] < before["mel_l1"]
    assert set(summary["validation"]) == {"mel_l1", "stft", "aligned"}
    trained = load_trained_vocoder(str(tmp_path / "vocoder"))
    assert trained.config.vocoder_hidden_size == start.config.vocoder_hidden_size
    assert os.path.isfile(tmp_path / "vocoder" / SUMMARY_NAME)

    # With a vanishing learning rate the run ends where it started: the weights come from init_from.
    still = train_vocoder(tiny_aligned_args(corpora, tmp_path / "still", learning_rate=1e-12, max_steps=2,
                                            eval_steps=2, save_steps=2))
    assert still["steps"] == 2
    kept = load_trained_vocoder(str(tmp_path / "still")).state_dict()
    for name, tensor in start.state_dict().items():
        torch.testing.assert_close(kept[name], tensor, atol=1e-8, rtol=0)


def test_a_run_from_a_trained_vocoder_takes_its_sizes_and_says_which_given_ones_it_does_not_use(caplog):
    from hf_metatts.training.vocoder import sized_like, vocoder_config

    trained = vocoder_config(VocoderTrainingArguments(hidden_size=8, intermediate_size=16, layers=1))
    given = VocoderTrainingArguments(hidden_size=8, intermediate_size=32)
    with caplog.at_level("WARNING"):
        sized = sized_like(given, trained, "outputs/vocoder")
    assert (sized.hidden_size, sized.intermediate_size, sized.layers) == (8, 16, 1)
    assert (given.intermediate_size, given.layers) == (32, 6)  # the arguments given are not changed
    assert "init_from=outputs/vocoder" in caplog.text and "'intermediate_size': 32, 'layers': 6" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        sized_like(sized, trained, "outputs/vocoder")
    assert caplog.text == ""  # sizes that agree need no word


@pytest.mark.parametrize("overrides, error, match", [
    ({"aligned_model": "no/such/checkpoint"}, VocoderTrainingError, "aligned_model=no/such/checkpoint"),
    ({"init_from": "no/such/vocoder"}, VocoderTrainingError, "init_from=no/such/vocoder"),
    ({"aligned_shots": 0}, VocoderTrainingError, "aligned_shots=0"),
    ({"aligned_start_fraction": -0.1}, VocoderTrainingError, "aligned_start_fraction=-0.1"),
    ({"prepared_dataset_path": "no/such/prepared"}, AlignedCorpusError, "prepare-corpus"),
    ({"aligned_shots": 4}, AlignedCorpusError, "more than shots=4"),
])
def test_bad_aligned_inputs_raise_a_clear_error_and_write_nothing(corpora, tmp_path, overrides, error, match):
    out = tmp_path / "vocoder"
    prepared_before = sorted(os.listdir(corpora.prepared))
    with pytest.raises(error, match=match):
        train_vocoder(tiny_aligned_args(corpora, out, **overrides))
    assert not out.exists()
    assert sorted(os.listdir(corpora.prepared)) == prepared_before


def test_a_corpus_without_the_prepared_rows_audio_is_refused(corpora, tmp_path):
    other = tmp_path / "other"
    DatasetDict(train=speaker_split(2, 4, 500), validation=speaker_split(2, 3, 600)).save_to_disk(str(other))
    with pytest.raises(AlignedCorpusError, match="have no audio"):
        aligned_clips(load_model(corpora.model), None, corpora.prepared, str(other), "train", shots=2)


def test_the_train_vocoder_command_runs_the_aligned_fine_tuning(corpora, tmp_path):
    from hf_metatts.cli import main as cli_main

    out = tmp_path / "vocoder"
    argv = ["train-vocoder", "--dataset", corpora.corpus, "--out", str(out), "--aligned-model", corpora.model,
            "--init-from", corpora.model, "--aligned-shots", "2", "--aligned-clips-per-speaker", "2",
            "--aligned-validation-clips-per-speaker", "1", "--aligned-start-fraction", "0.5", "--segment-frames", "8",
            "--batch-size", "2", "--max-steps", "3", "--warmup-steps", "1", "--eval-steps", "3", "--save-steps", "3",
            "--threads", "1"]
    assert cli_main(argv) == 0
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["steps"] == 3 and summary["data_seconds"] >= 0
    assert summary["arguments"]["aligned_start_fraction"] == 0.5
    assert summary["arguments"]["prepared_dataset_path"] is None  # read from "<dataset>-prepared"
    assert set(summary["validation"]["aligned"]) == {"mel_l1", "stft"}
    sizes = load_model(corpora.model).config.vocoder_hidden_size
    assert load_trained_vocoder(str(out)).config.vocoder_hidden_size == sizes
