"""``hf-metatts adapt`` and ``hf-metatts push`` on the command line."""

import json
import os

import numpy as np
import pytest
import soundfile
from bar_fixtures import harness_result
from test_hub_roundtrip import local_hub
from test_voice_adapt import SR, TEXTS, make_clips, one_thread
from tiny_models import save_tiny_checkpoint

from hf_metatts.cli import main
from hf_metatts.model_cards import write_card_inputs
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache

__all__ = ["local_hub", "one_thread"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli_base")
    save_tiny_checkpoint(path)
    return path


@pytest.fixture
def clip_folder(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for index, (audio, text) in enumerate(make_clips(2)):
        soundfile.write(folder / f"utt{index}.wav", audio, SR)
        (folder / f"utt{index}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def test_adapt_from_a_folder_then_push(base, clip_folder, tmp_path, capsys, local_hub):
    out = tmp_path / "voice"
    code = main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--method", "maml", "--steps", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["method"], summary["steps"], summary["shots"]) == ("maml", 2, 2)
    assert summary["voice_bytes"] == os.path.getsize(out / "voice.safetensors")
    voice = MetaTTSVoice.from_pretrained(out)
    assert voice.config.base_model == str(base)

    assert main(["push", str(out), "acme/cli-voice"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["repo_id"] == "acme/cli-voice"
    assert "voice.safetensors" in local_hub.commits[-1][1]
    clear_base_cache()
    pushed = MetaTTSVoice.from_pretrained("acme/cli-voice")
    assert pushed.config.tensors_sha256 == voice.config.tensors_sha256


def test_push_a_base_with_results(base, tmp_path, capsys, local_hub):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"dataset_name": "held-out voices", "dataset_type": "local/voices",
                                    "metric_type": "speaker_similarity", "metric_value": 0.71}]))
    assert main(["push", str(base), "acme/cli-base", "--results", str(results), "--dataset", "local/voices"]) == 0
    folder = local_hub.folder("acme/cli-base")
    card = (folder / "snapshots" / (folder / "refs" / "main").read_text() / "README.md").read_text()
    assert "speaker_similarity" in card and "0.71" in card and "local/voices" in card


def test_push_a_bundled_base_keeps_its_training_runs_and_puts_the_bars_in_its_card(base, tmp_path, capsys,
                                                                                  local_hub):
    folder = tmp_path / "bundled"
    save_tiny_checkpoint(folder)
    (folder / "training_runs.json").write_text(json.dumps([
        {"run": "tiny_pretrain", "method": "pretrain", "steps": 12, "wall_seconds": 60.0,
         "hardware": {"cpu": "Test CPU", "torch_threads": 2}, "train_metrics": {"train_loss": 2.5}}]))
    results = tmp_path / "default_checkpoint.json"
    results.write_text(json.dumps(harness_result()))
    assert main(["push", str(folder), "acme/bundled", "--results", str(results)]) == 0
    repo = local_hub.folder("acme/bundled")
    card = (repo / "snapshots" / (repo / "refs" / "main").read_text() / "README.md").read_text()
    assert "| tiny_pretrain | pretrain | 12 | 1.0 | Test CPU (2 threads) | 1 | 2.500 | - |" in card
    assert "## Requirements" in card and "1 of 3 bars pass" in card and "value: 0.41" in card


def test_push_a_bundle_without_results_writes_the_card_it_was_bundled_with(tmp_path, capsys, local_hub):
    folder = tmp_path / "bundled"
    save_tiny_checkpoint(folder)
    result = harness_result()
    write_card_inputs(str(folder), result["model_index"], ["local/voices"], result)  # as `hf-metatts bundle` does
    assert main(["push", str(folder), "acme/as-bundled"]) == 0
    repo = local_hub.folder("acme/as-bundled")
    card = (repo / "snapshots" / (repo / "refs" / "main").read_text() / "README.md").read_text()
    assert "value: 0.41" in card and "local/voices" in card and "1 of 3 bars pass" in card
    assert "Every method was heard through Griffin-Lim." in card and "acme/as-bundled" in card


def test_push_refuses_results_that_are_not_model_index_entries_and_pushes_nothing(base, tmp_path, capsys,
                                                                                  local_hub):
    results = tmp_path / "speed.json"
    results.write_text(json.dumps({"metatts_istft_rtf": 0.01}))
    commits = list(local_hub.commits)
    assert main(["push", str(base), "acme/not-pushed", "--results", str(results)]) == 2
    assert "has no 'model_index' list" in capsys.readouterr().err
    assert local_hub.commits == commits and not local_hub.folder("acme/not-pushed").exists()


def test_adapt_from_a_saved_dataset(base, clip_folder, tmp_path, capsys):
    from datasets import Dataset

    files = sorted(str(p) for p in clip_folder.glob("*.wav"))
    Dataset.from_dict({"audio": files, "text": TEXTS[:2]}).save_to_disk(str(tmp_path / "dataset"))
    code = main(["adapt", "--model", str(base), "--clips", str(tmp_path / "dataset"), "--steps", "1",
                 "--out", str(tmp_path / "voice"), "--no-progress"])
    assert code == 0 and MetaTTSVoice.from_pretrained(tmp_path / "voice").config.shots == 2
    code = main(["adapt", "--model", str(base), "--clips", str(tmp_path / "dataset"), "--steps", "1", "--first", "1",
                 "--out", str(tmp_path / "voice1"), "--no-progress"])
    assert code == 0 and MetaTTSVoice.from_pretrained(tmp_path / "voice1").config.shots == 1


@pytest.mark.parametrize("problem", ["missing transcript", "silent clip", "empty folder"])
def test_bad_clips_fail_cleanly_and_write_nothing(base, clip_folder, tmp_path, capsys, problem):
    if problem == "missing transcript":
        (clip_folder / "utt1.txt").unlink()
        expected = "utt1.wav has no transcript"
    elif problem == "silent clip":
        soundfile.write(clip_folder / "utt1.wav", np.zeros(SR, np.float32), SR)
        expected = "utt1.wav is silent"
    else:
        for path in clip_folder.iterdir():
            path.unlink()
        expected = "clips holds no clip: put audio files"
    out = tmp_path / "voice"
    assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--out", str(out),
                 "--no-progress"]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_adapt_cuts_the_clips_silence_unless_told_off(base, clip_folder, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for index, (audio, _) in enumerate(make_clips(2)):  # a second of quiet room noise before and after each clip
        quiet = [rng.normal(0, 1e-3, SR).astype(np.float32) for _ in range(2)]
        soundfile.write(clip_folder / f"utt{index}.wav", np.concatenate([quiet[0], audio, quiet[1]]), SR)
    seconds = {}
    for setting in ("40", "off"):
        out = tmp_path / f"voice_{setting}"
        assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "1", "--out", str(out),
                     "--trim-silence-db", setting, "--no-progress"]) == 0
        seconds[setting] = MetaTTSVoice.from_pretrained(out).config.support_seconds
    speech = sum(len(audio) for audio, _ in make_clips(2)) / SR
    assert seconds["off"] == pytest.approx(speech + 4.0, abs=1e-3)
    assert speech < seconds["40"] < speech + 0.6


@pytest.mark.parametrize("option, value, expected", [
    ("--trim-silence-db", "loud", "--trim-silence-db 'loud' is not a number of dB"),
    ("--trim-silence-db", "-3", "trim_silence_db=-3.0 must be a finite number of dB above 0"),
    ("--speech-level-dbfs", "quiet", "--speech-level-dbfs 'quiet' is not a number of dB"),
    ("--speech-level-dbfs", "3", "speech_level_dbfs=3.0 must lie in [-60, -3] dBFS"),
])
def test_a_bad_clip_setting_fails_cleanly_and_writes_nothing(base, clip_folder, tmp_path, capsys, option, value,
                                                             expected):
    out = tmp_path / "voice"
    assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--out", str(out),
                 option, value, "--no-progress"]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_adapt_sets_the_speech_level_when_asked(base, clip_folder, tmp_path, capsys):
    for index, (audio, _) in enumerate(make_clips(2)):
        soundfile.write(clip_folder / f"utt{index}.wav", audio * 0.05, SR, subtype="FLOAT")  # 26 dB quieter
    voices = {}
    for setting in ("-20", "off"):
        out = tmp_path / f"voice_{setting}"
        assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "1", "--out", str(out),
                     "--speech-level-dbfs", setting, "--no-progress"]) == 0
        voices[setting] = MetaTTSVoice.from_pretrained(out).adapted_parameters
    loud = tmp_path / "voice_loud"
    for index, (audio, _) in enumerate(make_clips(2)):
        soundfile.write(clip_folder / f"utt{index}.wav", audio, SR, subtype="FLOAT")
    assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "1", "--out", str(loud),
                 "--speech-level-dbfs", "-20", "--no-progress"]) == 0
    levelled = MetaTTSVoice.from_pretrained(loud).adapted_parameters

    def largest_difference(a, b):
        return max(float((a[n] - b[n]).abs().max()) for n in a)

    assert largest_difference(levelled, voices["-20"]) < 1e-7  # the same voice, whatever the recording level
    assert largest_difference(levelled, voices["off"]) > 1e-5  # the quiet clips read as recorded give another


def test_adapt_matches_the_prosody_when_asked(base, clip_folder, tmp_path, capsys):
    code = main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "1", "--match-prosody",
                 "--out", str(tmp_path / "voice"), "--no-progress"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    voice = MetaTTSVoice.from_pretrained(tmp_path / "voice")
    assert code == 0 and printed["prosody_match"] == voice.config.prosody_match
    assert voice.config.prosody_match["duration_factor"] > 0
    assert "pitch_predictor.head.weight" in voice.adapted_parameters
    factor = voice.config.prosody_match["duration_factor"]
    card = (tmp_path / "voice" / "README.md").read_text()
    assert f"| prosody matched to the clips | durations x{factor:.3f}, pitch " in card
    assert "| rhythm matched to the clips | no |" in card and printed["rhythm_match"] is None


def test_adapt_matches_the_rhythm_when_asked(base, clip_folder, tmp_path, capsys):
    code = main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "1", "--match-rhythm",
                 "--out", str(tmp_path / "voice"), "--no-progress"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    voice = MetaTTSVoice.from_pretrained(tmp_path / "voice")
    assert code == 0 and printed["rhythm_match"] == voice.config.rhythm_match and printed["prosody_match"] is None
    assert {"duration_predictor.head.weight", "duration_predictor.head.bias"} <= set(voice.adapted_parameters)
    tokens = voice.config.rhythm_match["tokens"]
    assert f"| rhythm matched to the clips | {tokens} tokens, log1p duration error " in \
        (tmp_path / "voice" / "README.md").read_text()
