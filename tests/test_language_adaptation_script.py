"""benchmarks/language_adaptation.py: the symbol share, the duration readings, the summary and a whole run on a
small corpus."""

import json
import math
import shlex
from collections import Counter

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint

from hf_metatts.tokenization_metatts import phonemize

SR = 16000


@pytest.fixture(scope="module")
def language():
    return load_benchmark_script("language_adaptation")


def test_the_unseen_symbol_share_counts_every_occurrence(language):
    share, symbols = language.unseen_symbol_share(["abɨ", "ɨɨʂ a"], Counter("ab a"))
    assert share == pytest.approx(4 / 8)  # ɨ three times and ʂ once, of 8 symbols (the space included)
    assert symbols == ["ɨ", "ʂ"]
    assert language.unseen_symbol_share([], Counter("a"))[0] != language.unseen_symbol_share([], Counter("a"))[0]


def test_the_duration_error_is_frames_per_token_and_the_rate_gap_the_log_ratio_of_the_totals(language):
    error, gap = language.token_duration_error(np.array([4.0, 2.0, 6.0]), np.array([2.0, 2.0, 8.0]))
    assert error == pytest.approx(4 / 3)
    assert gap == pytest.approx(abs(math.log(12 / 12)))
    error, gap = language.token_duration_error(np.array([4.0, 4.0]), np.array([2.0, 2.0]))
    assert error == 2.0 and gap == pytest.approx(math.log(2.0))
    assert all(math.isnan(x) for x in language.token_duration_error(np.array([1.0]), np.array([1.0, 2.0])))


def test_the_summary_averages_each_group_and_the_change_the_steps_make(language):
    def reading(value):
        return dict.fromkeys(language.READINGS, value)

    cells = {"a": {"language": "pl", "start": reading(1.0), "steps_5": reading(2.0)},
             "b": {"language": "bg", "start": reading(3.0), "steps_5": reading(3.0)},
             "c": {"language": "de", "start": reading(0.0), "steps_5": reading(1.0)}}
    groups = language.speaker_groups(cells, ["a", "b"], ["c"])
    assert groups == {"unseen": ["a", "b"], "seen": ["c"], "unseen:pl": ["a"], "unseen:bg": ["b"]}
    table = language.summary(cells, groups, ["start", "steps_5"])
    assert table["unseen"]["start"]["mcd"] == 2.0 and table["unseen"]["steps_5"]["mcd"] == 2.5
    assert table["unseen"]["change"]["steps_5"]["similarity"] == pytest.approx(0.5)
    assert table["unseen:bg"]["change"]["steps_5"]["duration_error"] == 0.0
    assert table["seen"]["speakers"] == 1


def _rows(folder, speaker: str, lang: str, count: int, pitch: float) -> list[dict]:
    """``count`` harmonic clips of ``speaker`` in ``lang`` written under ``folder``, as dataset rows (the audio as
    a file path, the phonemes the tokenizer's own)."""
    import soundfile

    texts = {"pl": ["Ala ma kota i psa.", "Dom stoi na górze.", "Woda płynie szybko.", "Idę do szkoły dziś."],
             "de": ["Das Haus ist groß.", "Wir gehen nach Hause.", "Der Hund schläft hier.", "Es regnet heute."],
             "en-us": ["The cat sat on a mat.", "A dog ran to the park."]}[lang]
    t = np.arange(int(1.4 * SR)) / SR
    rows = []
    for index in range(count):
        tone = sum(np.sin(2 * np.pi * (pitch + 5 * index) * k * t) / k for k in (1, 2, 3))
        envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
        path = folder / f"{speaker.replace(':', '_')}_{index}.wav"
        soundfile.write(path, (0.2 * tone * envelope).astype(np.float32), SR)
        text = texts[index % len(texts)]
        rows.append({"id": f"{speaker}-{index}", "audio": str(path), "text": text, "speaker_id": speaker,
                     "language": lang, "phonemes": phonemize([text], lang)[0]})
    return rows


def test_a_run_reads_every_speaker_and_voice_and_counts_the_symbols_training_never_had(language, tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(_rows(tmp_path, "espeak:pl+m3", "pl", 4, 150.0))}).save_to_disk(
        str(tmp_path / "unseen"))
    DatasetDict({"test": Dataset.from_list(_rows(tmp_path, "espeak:de+m3", "de", 4, 180.0)),
                 "train": Dataset.from_list(_rows(tmp_path, "espeak:en-us+m1", "en-us", 2, 100.0))}).save_to_disk(
        str(tmp_path / "seen"))
    save_tiny_checkpoint(tmp_path / "model")
    out = tmp_path / "language.json"
    argv = ["--checkpoint", str(tmp_path / "model"), "--unseen-corpus", str(tmp_path / "unseen"), "--seen-corpus",
            str(tmp_path / "seen"), "--seen-speakers", "espeak:de+m3", "--training-corpus", str(tmp_path / "seen"),
            "--shots", "2", "--heldout", "2", "--steps", "1", "--matched-steps", "1", "--rhythm-steps", "1",
            "--threads", "1", "--out", str(out)]
    language.main(argv)
    result = json.loads(out.read_text())
    assert result["command"] == shlex.join(["python", "benchmarks/language_adaptation.py", *argv])
    assert result["groups"] == {"unseen": ["espeak:pl+m3"], "seen": ["espeak:de+m3"], "unseen:pl": ["espeak:pl+m3"]}
    cell = result["cells"]["espeak:pl+m3"]
    assert cell["language"] == "pl"
    assert set(cell) >= {"recordings", "start", "steps_1", "steps_1_matched", "steps_1_rhythm"}
    assert len(cell["support_ids"]) == 2 and not set(cell["support_ids"]) & set(cell["heldout_ids"])
    for variant in ("start", "steps_1", "steps_1_matched", "steps_1_rhythm"):
        assert -1.0 <= cell[variant]["similarity"] <= 1.0 and cell[variant]["mcd"] > 0
        assert cell[variant]["sentences_timed"] == 2  # the aligner times the recordings; the tokens match
        assert cell[variant]["duration_error"] >= 0
    # the training corpus is English: Polish symbols such as ɨ (from "ryby" and "szybko") were never trained on
    assert result["unseen_symbols"]["pl"]["share"] > 0 and "ɨ" in result["unseen_symbols"]["pl"]["symbols"]
    assert result["summary"]["unseen"]["speakers"] == 1
    assert out.with_suffix(".png").stat().st_size > 1000

    with pytest.raises(SystemExit, match="has no rows of"):
        language.main([*argv[:-2], "--seen-speakers", "espeak:fr+m1", "--out", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
