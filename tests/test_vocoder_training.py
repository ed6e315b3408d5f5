"""Vocoder training (`hf_metatts.training`): spectral losses, `train_vocoder` (learning, outputs, resume,
bad inputs), `attach_trained_vocoder`, `prepare_corpus` and the ``train-vocoder`` / ``prepare-corpus``
commands, on a corpus of synthetic harmonic clips built in a temporary folder (no speech synthesiser)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from datasets import Audio, Dataset, DatasetDict, load_from_disk
from tiny_models import tiny_model

import hf_metatts
from hf_metatts import MetaTTSConfig, MetaTTSFeatureExtractor
from hf_metatts.cli import build_parser
from hf_metatts.cli import main as cli_main
from hf_metatts.data import decode_audio, encode_audio
from hf_metatts.modeling_vocoder import ISTFTVocoder
from hf_metatts.training import vocoder as vocoder_module
from hf_metatts.training.prepare import prepare_corpus
from hf_metatts.training.stft_losses import batched_log_mel, multi_resolution_stft_loss
from hf_metatts.training.vocoder import (
    CHECKPOINT_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    VOCODER_WEIGHTS_NAME,
    SegmentSampler,
    VocoderLoss,
    VocoderTrainingArguments,
    VocoderTrainingError,
    attach_trained_vocoder,
    load_clips,
    load_trained_vocoder,
    save_vocoder,
    train_vocoder,
    validation_losses,
    vocoder_config,
)

torch.set_num_threads(1)

SR = 16000
HOP = 256
TRAIN_SECONDS = 0.5  # 8,000 samples: 31 frames, longer than an 8-frame segment (2,048 samples)
VALID_SECONDS = 0.4


def harmonic_clip(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A voiced-speech-like tone: 9 harmonics of ``f0``, a 3 Hz amplitude envelope, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 10))
    wave = wave * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.01 * rng.standard_normal(t.size)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def clip_split(count: int, seconds: float, first_seed: int, with_audio: bool = True) -> Dataset:
    rows = []
    for index in range(count):
        row = {"id": f"clip{first_seed + index}", "text": "hello", "phonemes": "həloʊ",
               "speaker_id": f"speaker{index % 2}", "language": "en-us"}
        if with_audio:
            clip = harmonic_clip(seconds, 110.0 + 25.0 * index, first_seed + index)
            row["audio"] = encode_audio(clip, SR, path=f"{row['id']}.flac")
        rows.append(row)
    dataset = Dataset.from_list(rows)
    return dataset.cast_column("audio", Audio(sampling_rate=SR)) if with_audio else dataset


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """A saved DatasetDict: train (6 clips of 0.5 s, 2 speakers) and validation (2 clips of 0.4 s)."""
    path = tmp_path_factory.mktemp("vocoder_corpus") / "corpus"
    DatasetDict(train=clip_split(6, TRAIN_SECONDS, 0), validation=clip_split(2, VALID_SECONDS, 100)).save_to_disk(
        str(path)
    )
    return str(path)


def tiny_args(corpus: str, output_dir, **overrides) -> VocoderTrainingArguments:
    values = dict(dataset_path=corpus, output_dir=str(output_dir), hidden_size=16, intermediate_size=32, layers=1,
                  segment_frames=8, batch_size=4, max_steps=30, learning_rate=3e-3, warmup_steps=3, threads=1,
                  logging_steps=5, eval_steps=10, save_steps=10)
    values.update(overrides)
    return VocoderTrainingArguments(**values)


def read_log(folder) -> list[dict]:
    with open(os.path.join(folder, LOG_NAME)) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A vocoder trained for 30 steps, and the validation losses of the same vocoder before training."""
    out = tmp_path_factory.mktemp("vocoder_trained") / "vocoder"
    args = tiny_args(corpus, out)
    config = vocoder_config(args)
    torch.manual_seed(args.seed)  # train_vocoder initialises its vocoder right after this seed
    untrained = ISTFTVocoder(config)
    clips = load_clips(corpus, "validation", args.validation_utterances, args.seed, SR)
    before = validation_losses(untrained, VocoderLoss(config, args), clips)
    summary = train_vocoder(args)
    return {"folder": str(out), "args": args, "before": before, "summary": summary,
            "untrained_state": {k: v.clone() for k, v in untrained.state_dict().items()}}


# --- spectral losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("win_length", [1024, 800])
def test_batched_log_mel_matches_the_feature_extractor(win_length):
    extractor = MetaTTSFeatureExtractor(win_length=win_length)
    waves = torch.stack([torch.from_numpy(harmonic_clip(0.3, 100.0 + 40.0 * i, i)) for i in range(3)])
    waves[2] *= 0.01  # a quiet row: values far below the loud ones
    batched = batched_log_mel(waves, extractor.mel_filters(), extractor.n_fft, extractor.hop_length, win_length,
                              extractor.mel_floor)
    assert batched.shape == (3, waves.shape[1] // HOP + 1, 80)
    for row in range(3):
        torch.testing.assert_close(batched[row], extractor.log_mel(waves[row]), atol=1e-5, rtol=0)


def test_multi_resolution_stft_loss_is_zero_for_identical_inputs_and_grows_with_the_error():
    torch.manual_seed(0)
    target = torch.from_numpy(np.stack([harmonic_clip(0.3, 120.0, 0), harmonic_clip(0.3, 180.0, 1)]))
    assert float(multi_resolution_stft_loss(target, target.clone())) == 0.0
    noise = torch.randn_like(target)
    small = multi_resolution_stft_loss(target + 0.001 * noise, target)
    large = multi_resolution_stft_loss(target + 0.1 * noise, target)
    assert 0.0 < float(small) < float(large)
    prediction = (target + 0.05 * noise).requires_grad_(True)
    multi_resolution_stft_loss(prediction, target).backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_segment_sampler_draws_segments_of_long_enough_clips():
    clips = [np.arange(100, dtype=np.float32), np.arange(1000, 1030, dtype=np.float32)]  # the second is too short
    sampler = SegmentSampler(clips, segment_samples=40, seed=0)
    assert len(sampler.clips) == 1
    batch = sampler.sample(5)
    assert batch.shape == (5, 40) and batch.dtype == torch.float32
    for row in batch:  # each row is a contiguous slice of the 100-sample ramp
        assert 0 <= row[0] <= 60 and torch.equal(row, row[0] + torch.arange(40, dtype=torch.float32))


def test_learning_rate_warms_up_then_decays_to_the_minimum():
    args = VocoderTrainingArguments(max_steps=100, warmup_steps=10, learning_rate=1e-3, min_learning_rate=1e-5)
    rates = [vocoder_module._learning_rate(args, step) for step in range(101)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3) and rates[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[100] == pytest.approx(1e-5)


# --- training ----------------------------------------------------------------------------------------------


def test_training_lowers_the_validation_loss_and_writes_its_files(trained):
    summary, before, folder = trained["summary"], trained["before"], trained["folder"]
    assert summary["steps"] == 30
    assert summary["validation"]["mel_l1"] < 0.8 * before["mel_l1"]
    assert summary["validation"]["stft"] < before["stft"]
    for name in (VOCODER_WEIGHTS_NAME, "config.json", SUMMARY_NAME, LOG_NAME, CHECKPOINT_NAME):
        assert os.path.isfile(os.path.join(folder, name)), name
    with open(os.path.join(folder, SUMMARY_NAME)) as handle:
        saved = json.load(handle)
    assert saved["steps"] == 30 and saved["validation"] == pytest.approx(summary["validation"])
    assert saved["wall_seconds"] >= 0 and saved["parameters"] > 0
    assert saved["hardware"]["cpu_count"] == os.cpu_count() and saved["hardware"]["torch_threads"] == 1
    assert {"cpu", "gpu", "torch"} <= set(saved["hardware"])
    assert saved["arguments"]["max_steps"] == 30 and saved["arguments"]["hidden_size"] == 16

    log = read_log(folder)
    training = [r for r in log if "loss" in r]
    validation = [r for r in log if "validation" in r]
    assert [r["step"] for r in training] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in validation] == [10, 20, 30]
    assert validation[-1]["validation"] == pytest.approx(summary["validation"])
    assert all(np.isfinite(r["loss"]) for r in training)

    config = MetaTTSConfig.from_json_file(os.path.join(folder, "config.json"))
    assert config.vocoder_type == "istft"
    assert (config.vocoder_hidden_size, config.vocoder_intermediate_size, config.vocoder_layers) == (16, 32, 1)
    assert (config.sampling_rate, config.hop_length, config.num_mel_bins) == (SR, HOP, 80)


def test_the_saved_vocoder_is_the_trained_one(trained):
    folder, args = trained["folder"], trained["args"]
    vocoder = load_trained_vocoder(folder)
    assert not vocoder.training
    changed = [k for k, v in vocoder.state_dict().items() if not torch.equal(v, trained["untrained_state"][k])]
    assert changed  # the weights moved away from their initialisation
    clips = load_clips(args.dataset_path, "validation", args.validation_utterances, args.seed, SR)
    again = validation_losses(vocoder, VocoderLoss(vocoder.config, args), clips)
    assert again == pytest.approx(trained["summary"]["validation"], rel=1e-4)
    mel = torch.randn(1, 12, 80) - 4.0
    assert vocoder(mel).shape == (1, 12 * HOP)


def test_training_resumes_from_its_checkpoint(corpus, tmp_path):
    out = tmp_path / "resumed"
    first = train_vocoder(tiny_args(corpus, out, max_steps=10, save_steps=5, eval_steps=5))
    assert first["steps"] == 10
    weights_at_10 = load_trained_vocoder(str(out)).state_dict()
    second = train_vocoder(tiny_args(corpus, out, max_steps=20, save_steps=5, eval_steps=5))
    assert second["steps"] == 20
    with open(out / SUMMARY_NAME) as handle:
        assert json.load(handle)["steps"] == 20
    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 20
    log = read_log(out)
    training_steps = [r["step"] for r in log if "loss" in r]
    assert training_steps == [5, 10, 15, 20]  # steps 1-10 ran once: the second call went on from step 10
    assert [r["step"] for r in log if "validation" in r] == [5, 10, 15, 20]
    assert max(training_steps) > 10
    resumed = load_trained_vocoder(str(out)).state_dict()
    assert any(not torch.equal(resumed[k], weights_at_10[k]) for k in resumed)


def test_a_finished_run_called_again_keeps_its_summary(trained, tmp_path):
    import shutil

    folder = tmp_path / "finished"
    shutil.copytree(trained["folder"], folder)
    lines_before = len(read_log(folder))
    summary = train_vocoder(tiny_args(trained["args"].dataset_path, folder))
    assert summary["steps"] == 30
    assert summary["validation"] == pytest.approx(trained["summary"]["validation"], rel=1e-4)
    assert len(read_log(folder)) == lines_before  # no step was trained again


def test_max_wall_seconds_stops_early_and_saves(corpus, tmp_path):
    out = tmp_path / "timed"
    summary = train_vocoder(tiny_args(corpus, out, max_steps=1000, max_wall_seconds=0.0))
    assert summary["steps"] == 1
    assert summary["validation"]["mel_l1"] > 0
    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 1
    assert os.path.isfile(out / VOCODER_WEIGHTS_NAME)


# --- attaching to a model --------------------------------------------------------------------------------


def test_attach_trained_vocoder_makes_the_model_use_it_and_survives_save_load(trained, tmp_path):
    folder = trained["folder"]
    model = tiny_model()
    assert model.config.vocoder_type == "griffin_lim"
    attach_trained_vocoder(model, folder)
    assert model.config.vocoder_type == "istft"
    assert (model.config.vocoder_hidden_size, model.config.vocoder_layers) == (16, 1)
    assert isinstance(model.vocoder, ISTFTVocoder) and not model.vocoder.training

    mel = torch.randn(2, 15, 80) * 0.5 - 4.0
    with torch.no_grad():
        expected = load_trained_vocoder(folder)(mel)
        torch.testing.assert_close(model.vocoder(mel), expected, atol=0, rtol=0)

    model.save_pretrained(tmp_path / "with_vocoder")
    reloaded = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "with_vocoder").eval()
    assert reloaded.config.vocoder_type == "istft"
    assert reloaded.config.vocoder_intermediate_size == 32
    with torch.no_grad():
        torch.testing.assert_close(reloaded.vocoder(mel), expected, atol=0, rtol=0)


@pytest.mark.parametrize(("field", "model_overrides", "vocoder_base"), [
    ("hop_length", {}, {"hop_length": 128}),
    ("sampling_rate", {"sampling_rate": 22050}, {}),
])
def test_attach_refuses_a_vocoder_with_other_audio_settings(trained, tmp_path, field, model_overrides, vocoder_base):
    folder = tmp_path / "other_settings"
    config = vocoder_config(trained["args"], MetaTTSConfig(**vocoder_base))
    save_vocoder(ISTFTVocoder(config), config, str(folder))
    model = tiny_model(**model_overrides)
    original_vocoder = model.vocoder
    with pytest.raises(VocoderTrainingError, match=f"{field}=") as error:
        attach_trained_vocoder(model, str(folder))
    assert "train a vocoder with the model's audio settings" in str(error.value)
    assert model.config.vocoder_type == "griffin_lim"
    assert model.vocoder is original_vocoder


def test_load_trained_vocoder_needs_weights(tmp_path):
    with pytest.raises(VocoderTrainingError,
                       match="holds neither vocoder.safetensors nor a model checkpoint.*train-vocoder"):
        load_trained_vocoder(str(tmp_path))


# --- bad inputs --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_without_audio(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("no_audio") / "corpus"
    DatasetDict(train=clip_split(3, 0, 0, with_audio=False), validation=clip_split(2, VALID_SECONDS, 100)).save_to_disk(
        str(path)
    )
    return str(path)


@pytest.fixture(scope="module")
def short_corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("short") / "corpus"
    DatasetDict(train=clip_split(3, 0.1, 0), validation=clip_split(1, VALID_SECONDS, 100)).save_to_disk(str(path))
    return str(path)


@pytest.mark.parametrize(("case", "match"), [
    ("missing corpus", "No corpus at .*build-corpus"),
    ("missing split", "has no split 'dev' \\(splits: \\['train', 'validation'\\]\\)"),
    ("no audio", "Split 'train' of .* has no 'audio' column"),
    ("clips too short", "No clip is at least 2048 samples long: lower segment_frames"),
    ("max_steps=0", "max_steps=0 must be at least 1"),
    ("batch_size=0", "batch_size=0 must be at least 1"),
    ("learning_rate=2", "learning_rate=2.0 must lie in \\(0, 1\\)"),
])
def test_bad_inputs_raise_a_clear_error_and_write_nothing(corpus, corpus_without_audio, short_corpus, tmp_path,
                                                          case, match):
    out = tmp_path / "never_written"
    args = {
        "missing corpus": tiny_args(str(tmp_path / "nowhere"), out),
        "missing split": tiny_args(corpus, out, validation_split="dev"),
        "no audio": tiny_args(corpus_without_audio, out),
        "clips too short": tiny_args(short_corpus, out),
        "max_steps=0": tiny_args(corpus, out, max_steps=0),
        "batch_size=0": tiny_args(corpus, out, batch_size=0),
        "learning_rate=2": tiny_args(corpus, out, learning_rate=2.0),
    }[case]
    with pytest.raises(VocoderTrainingError, match=match):
        train_vocoder(args)
    assert not out.exists()
    assert issubclass(VocoderTrainingError, ValueError)


# --- prepare-corpus ----------------------------------------------------------------------------------------


def test_prepare_corpus_adds_model_columns_and_drops_audio(corpus, tmp_path):
    out = tmp_path / "prepared"
    counts = prepare_corpus(corpus, str(out))
    assert counts == {"train": 6, "validation": 2}
    prepared = load_from_disk(str(out))
    assert set(prepared) == {"train", "validation"}
    train = prepared["train"]
    assert "audio" not in train.column_names
    assert {"input_ids", "labels", "pitch", "speaker_id", "language", "text", "phonemes", "id"} <= set(
        train.column_names
    )
    assert train["speaker_id"] == [f"speaker{i % 2}" for i in range(6)]

    source = load_from_disk(corpus)["train"].cast_column("audio", Audio(decode=False))
    extractor = MetaTTSFeatureExtractor()
    for index in (0, 3):
        row = train[index]
        waveform = decode_audio(source[index]["audio"], SR)
        frames = len(waveform) // HOP + 1
        labels = np.asarray(row["labels"], dtype=np.float32)
        assert labels.shape == (frames, 80)
        np.testing.assert_allclose(labels, extractor.log_mel(torch.from_numpy(waveform)).numpy(), atol=1e-5)
        pitch = np.asarray(row["pitch"], dtype=np.float32)
        assert pitch.shape == (frames,)
        voiced = pitch[pitch > 0]
        assert len(voiced) > frames // 2
        assert np.median(voiced) == pytest.approx(np.log(110.0 + 25.0 * index), abs=0.05)  # the clip's f0
        assert len(row["input_ids"]) >= len("həloʊ")
        assert row["input_ids"] == train[0]["input_ids"]  # same phonemes, same tokens


def test_prepare_corpus_chosen_splits_and_bad_arguments(corpus, tmp_path):
    out = tmp_path / "only_validation"
    assert prepare_corpus(corpus, str(out), splits=["validation"]) == {"validation": 2}
    assert set(load_from_disk(str(out))) == {"validation"}
    with pytest.raises(ValueError, match="--out must differ from --corpus"):
        prepare_corpus(corpus, corpus)
    with pytest.raises(ValueError, match=r"has no split\(s\) \['test'\]"):
        prepare_corpus(corpus, str(tmp_path / "unknown_split"), splits=["train", "test"])
    with pytest.raises(FileNotFoundError, match="No corpus at"):
        prepare_corpus(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert not (tmp_path / "unknown_split").exists() and not (tmp_path / "out").exists()


# --- command line ------------------------------------------------------------------------------------------


def test_train_vocoder_help_lists_every_argument(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train-vocoder", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--out", "--max-steps", "--segment-frames", "--learning-rate", "--threads",
                 "--max-wall-seconds", "--validation-split"):
        assert flag in text


def test_train_vocoder_arguments_reach_the_dataclass_with_their_types(monkeypatch):
    seen = []
    monkeypatch.setattr(vocoder_module, "train_vocoder", lambda args: seen.append(args) or {})
    argv = ["train-vocoder", "--dataset", "some/corpus", "--out", "some/out", "--max-steps", "5",
            "--learning-rate", "0.01", "--threads", "1", "--max-wall-seconds", "7.5", "--train-split", "dev"]
    assert build_parser().parse_args(argv).max_steps == 5
    assert cli_main(argv) == 0
    (args,) = seen
    assert isinstance(args, VocoderTrainingArguments)
    assert args.max_steps == 5 and type(args.max_steps) is int
    assert args.learning_rate == 0.01 and type(args.learning_rate) is float
    assert args.threads == 1 and args.max_wall_seconds == 7.5 and args.train_split == "dev"
    assert (args.dataset_path, args.output_dir) == ("some/corpus", "some/out")
    defaults = VocoderTrainingArguments()
    assert (args.batch_size, args.hidden_size, args.validation_split) == (
        defaults.batch_size, defaults.hidden_size, defaults.validation_split
    )


def test_commands_train_and_prepare_end_to_end(corpus, tmp_path):
    out = tmp_path / "cli_vocoder"
    assert cli_main(["train-vocoder", "--dataset", corpus, "--out", str(out), "--max-steps", "2",
                     "--hidden-size", "16", "--intermediate-size", "32", "--layers", "1", "--segment-frames", "8",
                     "--batch-size", "2", "--threads", "1"]) == 0
    with open(out / SUMMARY_NAME) as handle:
        summary = json.load(handle)
    assert summary["steps"] == 2 and summary["arguments"]["batch_size"] == 2
    assert load_trained_vocoder(str(out)).config.vocoder_hidden_size == 16

    prepared = tmp_path / "cli_prepared"
    assert cli_main(["prepare-corpus", "--corpus", corpus, "--out", str(prepared), "--splits", "validation"]) == 0
    assert load_from_disk(str(prepared))["validation"].num_rows == 2
