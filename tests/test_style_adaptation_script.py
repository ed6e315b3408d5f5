"""benchmarks/style_adaptation.py: the vowel measures, the style effects and a whole run on a small corpus."""

import json
import math
import shlex

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint, tiny_model, tiny_processor

SR = 16000


@pytest.fixture(scope="module")
def style():
    return load_benchmark_script("style_adaptation")


def test_a_sentences_measures_read_only_its_vowels(style):
    durations = np.array([2.0, 6.0, 1.0, 4.0, 8.0])
    semitones = np.array([70.0, 80.0, np.nan, 84.0, 90.0])
    vowels = np.array([False, True, True, True, False])
    reading = style.sentence_prosody(durations, semitones, vowels)
    assert reading.vowel_frames == pytest.approx((6 + 1 + 4) / 3)
    assert reading.f0_mean_semitones == pytest.approx(82.0)  # the unvoiced vowel has no pitch
    assert reading.f0_spread_semitones == pytest.approx(2.0)
    lonely = style.sentence_prosody(durations, semitones, np.array([False, True, False, False, False]))
    assert lonely.vowel_frames == 6 and math.isnan(lonely.f0_mean_semitones) and math.isnan(lonely.f0_spread_semitones)


def test_vowels_are_the_ipa_vowel_tokens(style):
    tokenizer = tiny_processor().tokenizer
    ids = tokenizer("The cat.")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    mask = style.vowel_mask(tokenizer, ids)
    assert [t for t, v in zip(tokens, mask) if v] == ["ə", "æ"]


def test_a_voice_reading_gives_its_predicted_frames_and_pitch_in_semitones(style):
    model = tiny_model(frames_per_token=4.0)
    with torch.no_grad():
        model.pitch_predictor.head.weight.zero_()
        model.pitch_predictor.head.bias.fill_(0.5)
    tokenizer = tiny_processor(model.config).tokenizer
    waves, readings = style.voice_readings(model, tokenizer, None, ["The cat sat on a mat."], ["en-us"])
    expected = (0.5 * model.config.pitch_std + model.config.pitch_mean) * 12 / math.log(2)
    assert readings[0].vowel_frames == 4.0
    assert readings[0].f0_mean_semitones == pytest.approx(expected, rel=1e-6)
    assert readings[0].f0_spread_semitones == pytest.approx(0.0, abs=1e-6)
    assert waves[0].ndim == 1 and len(waves[0]) > 0


def test_a_recordings_pitch_is_its_vowels_f0(style):
    model = tiny_model()
    processor = tiny_processor(model.config)
    t = np.arange(int(1.5 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    row = {"audio": {"array": tone, "sampling_rate": SR}, "text": "Ah ah ah.", "language": "en-us"}
    reading = style.recording_prosody(row, processor, model)
    assert reading.f0_mean_semitones == pytest.approx(12 * math.log2(200.0), abs=0.3)
    assert reading.f0_spread_semitones < 0.3 and reading.vowel_frames > 0


def test_effects_and_the_share_carried(style):
    def cell(frames, level, spread):
        return {"vowel_frames": frames, "f0_mean_semitones": level, "f0_spread_semitones": spread,
                "wer": 0.5, "similarity": 0.8}

    cells = {speaker: {"neutral": {"recordings": cell(5.0, 80.0, 2.0), "start": cell(4.0, 79.0, 1.0),
                                   "steps_5": cell(4.0, 79.0, 1.0)},
                       "fast": {"recordings": cell(2.5, 84.0, 4.0), "start": cell(4.0, 79.0, 1.0),
                                "steps_5": cell(2.0, 81.0, 1.0)}} for speaker in ("a", "b")}
    table = style.summary(cells, ["fast"], ["start", "steps_5"])
    assert table["fast"]["vowel_frames"]["recordings"] == pytest.approx(math.log(0.5))
    assert table["fast"]["vowel_frames"]["steps_5_carried"] == pytest.approx(1.0)
    assert table["fast"]["vowel_frames"]["start_carried"] == pytest.approx(0.0)
    assert table["fast"]["f0_mean_semitones"]["steps_5_carried"] == pytest.approx(0.5)
    assert table["fast"]["f0_spread_semitones"]["steps_5"] == pytest.approx(0.0)
    assert table["wer"]["fast"]["recordings"] == 0.5 and table["similarity"]["neutral"]["steps_5"] == 0.8
    assert table["gap"]["fast"]["vowel_frames"]["steps_5"] == pytest.approx(abs(math.log(2.0 / 2.5)))
    assert table["gap"]["neutral"]["f0_mean_semitones"]["start"] == pytest.approx(1.0)
    assert table["gap"]["fast"]["f0_spread_semitones"]["start"] == pytest.approx(math.log(4.0))


def _rows(folder, speaker: str, condition: str, count: int, pitch: float) -> list[dict]:
    """``count`` harmonic clips of ``speaker`` in ``condition`` written under ``folder``, as dataset rows (the audio
    as a file path)."""
    import soundfile

    texts = ["The cat sat on a mat.", "A dog ran to the park.", "We read a book today.", "Is it raining now?",
             "She sings a song."]
    t = np.arange(int(1.4 * SR)) / SR
    rows = []
    for index in range(count):
        tone = sum(np.sin(2 * np.pi * (pitch + 5 * index) * k * t) / k for k in (1, 2, 3))
        envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
        path = folder / f"{speaker.replace(':', '_')}_{condition}_{index}.wav"
        soundfile.write(path, (0.2 * tone * envelope).astype(np.float32), SR)
        rows.append({"audio": str(path), "text": texts[index % len(texts)], "speaker_id": speaker,
                     "style": condition, "language": "en-us"})
    return rows


def test_a_run_writes_every_cell_effect_and_plot(style, tmp_path):
    from datasets import Dataset, DatasetDict

    styled = Dataset.from_list(_rows(tmp_path, "flite:x", "fast", 3, 180.0)
                               + _rows(tmp_path, "flite:y", "fast", 3, 120.0))
    neutral = Dataset.from_list(_rows(tmp_path, "flite:x", "neutral", 3, 150.0))
    DatasetDict({"test": styled}).save_to_disk(str(tmp_path / "styles"))
    DatasetDict({"train": neutral}).save_to_disk(str(tmp_path / "neutral"))
    save_tiny_checkpoint(tmp_path / "model")
    out = tmp_path / "style.json"
    argv = ["--checkpoint", str(tmp_path / "model"), "--style-corpus", str(tmp_path / "styles"), "--neutral-corpus",
            str(tmp_path / "neutral"), "--speakers", "flite:x", "--styles", "fast", "--shots", "2", "--heldout", "1",
            "--steps", "1", "--matched-steps", "1", "--rhythm-steps", "1", "--threads", "1", "--out", str(out)]
    style.main(argv)
    result = json.loads(out.read_text())
    assert result["command"] == shlex.join(["python", "benchmarks/style_adaptation.py", *argv])
    assert set(result["cells"]["flite:x"]) == {"neutral", "fast"}
    assert set(result["cells"]["flite:x"]["fast"]) == {"recordings", "start", "steps_1", "steps_1_matched",
                                                        "steps_1_rhythm"}
    assert result["cells"]["flite:x"]["fast"]["recordings"]["f0_mean_semitones"] > \
        result["cells"]["flite:x"]["neutral"]["recordings"]["f0_mean_semitones"]  # the styled tones are higher
    fast = result["summary"]["fast"]["f0_mean_semitones"]
    assert set(fast) == {"recordings", "start", "start_carried", "steps_1", "steps_1_carried", "steps_1_matched",
                         "steps_1_matched_carried", "steps_1_rhythm", "steps_1_rhythm_carried"}
    assert out.with_suffix(".png").stat().st_size > 1000

    with pytest.raises(SystemExit, match="no rows for"):
        style.main([*argv[:-2], "--speakers", "flite:y", "--out", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
