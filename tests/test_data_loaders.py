"""load_speech_tasks on local datasets with the LibriTTS-R and VCTK schemas, decoded and undecoded."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import decoded_dataset, libritts_r_dataset, libritts_r_rows, voiced_clip, wav_bytes
from datasets import Audio, Dataset, DatasetDict

from hf_metatts.data import MissingColumnError, TooFewTasksError, decode_audio, load_speech_tasks, split_tasks

SPLITS = ("train", "validation", "test")
KW = {"min_utterances": 3, "fractions": (0.5, 0.25, 0.25)}


@pytest.fixture(scope="module")
def rows():
    return libritts_r_rows(n_speakers=6, per_speaker=5)


def _check_splits(dd, n_tasks):
    assert isinstance(dd, DatasetDict) and set(dd) == set(SPLITS)
    sets = [set(dd[s]["speaker_id"]) for s in SPLITS]
    assert all(sets) and sum(map(len, sets)) == n_tasks
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_libritts_r_folder_with_undecoded_audio(tmp_path, rows):
    libritts_r_dataset(rows).save_to_disk(str(tmp_path / "ltr"))
    dd, report = load_speech_tasks(str(tmp_path / "ltr"), return_report=True, **KW)  # preset guessed
    _check_splits(dd, 6)
    assert report.task_column == "speaker_id" and report.skipped == {}
    row = dd["train"].cast_column("audio", Audio(decode=False))[0]
    assert dd["train"].features["audio"].sampling_rate == 16000
    audio = decode_audio(row["audio"])
    assert audio.size == pytest.approx(row["duration"] * 16000, abs=2)
    source_row = next(r for r in rows if r["id"] == row["id"])
    assert row["duration"] == pytest.approx(len(decode_audio(source_row["audio"], 24000)) / 24000, abs=1e-3)
    assert row["text"] == source_row["text_normalized"]
    assert row["phonemes"].strip() and row["language"] == "en-us"
    assert sum(report.splits[s]["utterances"] for s in SPLITS) == 30


def test_decoded_and_undecoded_audio_give_the_same_result(rows):
    undecoded = load_speech_tasks(libritts_r_dataset(rows), preset="libritts_r", phonemize=False, **KW)
    decoded = load_speech_tasks(decoded_dataset(rows), preset="libritts_r", phonemize=False, **KW)
    for split in SPLITS:
        assert undecoded[split]["id"] == decoded[split]["id"]
        a = decode_audio(undecoded[split].cast_column("audio", Audio(decode=False))[0]["audio"])
        b = decode_audio(decoded[split].cast_column("audio", Audio(decode=False))[0]["audio"])
        assert np.max(np.abs(a - b)) < 1e-3


def test_split_is_deterministic_by_seed(rows):
    ds = libritts_r_dataset(rows)
    a = load_speech_tasks(ds, phonemize=False, seed=1, **KW)
    b = load_speech_tasks(ds, phonemize=False, seed=1, **KW)
    assert all(a[s]["id"] == b[s]["id"] for s in SPLITS)
    tasks = [f"t{i}" for i in range(20)]
    assert split_tasks(tasks, (0.8, 0.1, 0.1), 1) == split_tasks(list(reversed(tasks)), (0.8, 0.1, 0.1), 1)
    assert split_tasks(tasks, (0.8, 0.1, 0.1), 1) != split_tasks(tasks, (0.8, 0.1, 0.1), 2)


def test_missing_column_names_it_and_lists_columns(rows):
    ds = libritts_r_dataset(rows)
    with pytest.raises(MissingColumnError) as info:
        load_speech_tasks(ds, text_column="transcript")
    message = str(info.value)
    assert "'transcript'" in message and "text column" in message
    for column in ("audio", "text_normalized", "speaker_id"):
        assert column in message
    with pytest.raises(MissingColumnError, match="'spk'"):
        load_speech_tasks(ds, task_column="spk")


def test_bad_rows_are_skipped_and_counted_and_small_tasks_dropped(rows):
    bad = [dict(r) for r in rows]
    bad[0]["text_normalized"] = "   "                                                   # empty transcript
    bad[1]["audio"] = {"bytes": b"RIFF-not-really-audio", "path": "x.wav"}               # undecodable
    bad[2]["audio"] = {"bytes": wav_bytes(np.zeros(24000, np.float32), 24000), "path": "s.wav"}  # silent
    bad[3]["audio"] = {"bytes": wav_bytes(voiced_clip(3.0, sr=24000), 24000), "path": "l.wav"}   # too long
    extra = libritts_r_rows(n_speakers=7, per_speaker=2)[-2:]                             # speaker 106: 2 clips
    dd, report = load_speech_tasks(libritts_r_dataset(bad + extra), max_duration=2.0, return_report=True,
                                   phonemize=False, **KW)
    assert report.skipped == {"empty_text": 1, "undecodable": 1, "silent": 1, "too_long": 1}
    assert report.dropped_tasks == {"100": 1, "106": 2}, "speaker 100 kept 1 clip, 106 had 2"
    _check_splits(dd, 5)
    assert sum(len(dd[s]) for s in SPLITS) == 30 - 5


def test_too_few_tasks_is_a_clear_error(rows):
    with pytest.raises(TooFewTasksError, match="at least 3 tasks"):
        load_speech_tasks(libritts_r_dataset(rows), min_utterances=6, phonemize=False)


def test_vctk_schema_with_another_task_column():
    entries = []
    for s, accent in enumerate(["English", "Scottish", "Irish", "American", "English", "Scottish"]):
        for u in range(3):
            clip = voiced_clip(0.5, f0=100 + 10 * s, sr=48000, seed=s * 10 + u)
            entries.append({"speaker_id": f"p{225 + s}", "audio": {"bytes": wav_bytes(clip, 48000), "path": None},
                            "file": f"p{225 + s}_{u:03d}", "text": f"Please call Stella number {u}.",
                            "text_id": f"{u:03d}", "accent": accent})
    ds = Dataset.from_list(entries).cast_column("audio", Audio(sampling_rate=48000))
    dd = load_speech_tasks(DatasetDict({"train": ds}), preset="vctk", task_column="accent", phonemize=False,
                           min_utterances=3)
    accents = [set(dd[s]["accent"]) for s in SPLITS]
    assert set().union(*accents) == {"English", "Scottish", "Irish", "American"}
    assert not (accents[0] & accents[1] or accents[0] & accents[2] or accents[1] & accents[2])
    assert set(dd["train"]["language"]) == {"en-gb"}
    assert set(dd["train"]["speaker_id"]) <= {f"p{225 + s}" for s in range(6)}


def _padded(rows, pause: float, gain_db: float, sr: int = 24000):
    """``rows`` with ``pause`` s of -60 dBFS noise before and after each clip and the whole clip ``gain_db`` louder."""
    import io

    import soundfile as sf

    rng = np.random.default_rng(0)
    padded = []
    for row in rows:
        clip, _ = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        noise = (0.001 * rng.standard_normal(int(pause * sr))).astype(np.float32)
        audio = np.concatenate([noise, clip, noise]) * np.float32(10 ** (gain_db / 20))
        padded.append({**row, "audio": {"bytes": wav_bytes(audio, sr), "path": row["audio"]["path"]}})
    return padded


def test_clip_preparation_cuts_the_pauses_and_sets_the_level_as_model_adapt_does(rows):
    from hf_metatts.voice_validation import ClipValidation, speech_level_dbfs

    kept = load_speech_tasks(libritts_r_dataset(rows), phonemize=False, **KW)
    padded = libritts_r_dataset(_padded(rows, pause=1.0, gain_db=-12.0))
    whole = load_speech_tasks(padded, phonemize=False, **KW)
    prepared = load_speech_tasks(padded, phonemize=False, clip_preparation=ClipValidation(), **KW)
    validation = ClipValidation()
    for split in SPLITS:
        assert whole[split]["id"] == prepared[split]["id"] == kept[split]["id"]
        for before, after, original in zip(whole[split]["duration"], prepared[split]["duration"],
                                           kept[split]["duration"]):
            assert before == pytest.approx(original + 2.0, abs=0.01)  # the pauses, kept
            assert original <= after <= original + 2 * validation.trim_margin_seconds + 0.05  # cut to the speech
        for row in prepared[split].cast_column("audio", Audio(decode=False)):
            audio = decode_audio(row["audio"], 16000)
            assert speech_level_dbfs(audio, 16000, validation) == pytest.approx(-20.0, abs=0.5)


def test_a_clip_with_too_little_sound_left_is_skipped_as_too_short(rows):
    from hf_metatts.voice_validation import ClipValidation

    short = [dict(r) for r in rows]
    blip = np.concatenate([np.zeros(24000, np.float32), voiced_clip(0.1, sr=24000), np.zeros(24000, np.float32)])
    short[0]["audio"] = {"bytes": wav_bytes(blip, 24000), "path": "blip.wav"}
    _, report = load_speech_tasks(libritts_r_dataset(short), phonemize=False, return_report=True, min_duration=0.5,
                                  **KW)
    assert report.skipped == {}  # 2.1 s long as recorded
    _, report = load_speech_tasks(libritts_r_dataset(short), phonemize=False, return_report=True, min_duration=0.5,
                                  clip_preparation=ClipValidation(), **KW)
    assert report.skipped == {"too_short": 1}


def test_a_clip_preparation_that_is_not_a_clip_validation_is_refused(rows):
    dataset = libritts_r_dataset(rows)
    with pytest.raises(TypeError, match="clip_preparation must be a hf_metatts.voice_validation.ClipValidation"):
        load_speech_tasks(dataset, phonemize=False, clip_preparation={"trim_silence_db": 40}, **KW)
