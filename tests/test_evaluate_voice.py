"""evaluate_voice and ``hf-metatts evaluate``: metrics of a voice on real utterances, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import soxr
from test_metrics_sources import flite
from tiny_models import tiny_model

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")

from hf_metatts.evaluation import EmptyAudioError, InsufficientSpeakersError, UnknownSpeakerError  # noqa: E402
from hf_metatts.evaluation.voice_eval import evaluate_voice  # noqa: E402

TEXTS = ("The boat sailed across the quiet lake.", "Please bring the red book to the kitchen.")


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Real (flite) utterances of two speakers, two sentences each, as dataset-like rows."""
    folder = tmp_path_factory.mktemp("evaluate_voice")
    rows = []
    for voice in ("awb", "kal16"):
        for index, text in enumerate(TEXTS):
            path = flite(voice, text, folder / f"{voice}_{index}.wav")
            rows.append({"audio": str(path), "text": text, "speaker_id": voice})
    return rows


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_all_metrics_with_several_speakers(model, references):
    result = evaluate_voice(model, None, references, target="awb")
    assert result["num_utterances"] == 2 and result["num_speakers"] == 2
    assert -1.0 <= result["similarity"] <= 1.0
    assert result["mcd"] > 0.0
    assert 0.0 <= result["eer"] <= 1.0
    assert result["wer_delta"] == pytest.approx(result["wer"] - result["reference_wer"])
    assert [item["text"] for item in result["per_utterance"]] == list(TEXTS)
    assert all({"similarity", "mcd", "wer", "transcript"} <= set(item) for item in result["per_utterance"])


def test_references_at_another_rate_are_resampled(model, references):
    awb = [row for row in references if row["speaker_id"] == "awb"]
    native = evaluate_voice(model, None, awb, metrics=["similarity", "mcd"])
    resampled = []
    for row in awb:
        samples, rate = sf.read(row["audio"], dtype="float32")
        resampled.append({"audio": soxr.resample(samples, rate, 22050), "text": row["text"], "speaker_id": "awb"})
    other = evaluate_voice(model, None, resampled, sampling_rate=22050, metrics=["similarity", "mcd"])
    assert other["similarity"] == pytest.approx(native["similarity"], abs=0.03)
    assert other["mcd"] == pytest.approx(native["mcd"], abs=0.5)


def test_empty_reference_audio_is_a_clear_error(model, references):
    rows = [dict(references[0]), {"audio": np.zeros(0, dtype=np.float32), "text": TEXTS[1], "speaker_id": "awb"}]
    with pytest.raises(EmptyAudioError, match=r"references\[1\]"):
        evaluate_voice(model, None, rows, sampling_rate=16000, metrics=["similarity"])


def test_eer_with_one_speaker_is_a_clear_error(model, references):
    awb = [row for row in references if row["speaker_id"] == "awb"]
    with pytest.raises(InsufficientSpeakersError, match="at least 2 speakers"):
        evaluate_voice(model, None, awb, metrics=["similarity", "eer"])
    assert "eer" not in evaluate_voice(model, None, awb)  # default metrics: EER left out for one speaker


def test_several_speakers_need_a_target(model, references):
    with pytest.raises(UnknownSpeakerError, match="target="):
        evaluate_voice(model, None, references, metrics=["similarity"])
    with pytest.raises(UnknownSpeakerError, match="nobody"):
        evaluate_voice(model, None, references, target="nobody", metrics=["similarity"])


def _save_references(rows, folder):
    from datasets import Dataset

    data = Dataset.from_dict({
        "audio": [{"bytes": open(row["audio"], "rb").read(), "path": None} for row in rows],
        "text": [row["text"] for row in rows],
        "speaker_id": [row["speaker_id"] for row in rows],
    })
    data.save_to_disk(str(folder))
    return folder


def test_cli_writes_the_result(tiny_checkpoint, references, tmp_path, capsys):
    from hf_metatts.cli import main

    data = _save_references(references, tmp_path / "refs")
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--references", str(data), "--target", "kal16",
                 "--metrics", "similarity", "eer", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["target"] == "kal16" and 0.0 <= result["eer"] <= 1.0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_utterances"] == 2


def test_cli_error_writes_nothing(tiny_checkpoint, references, tmp_path, capsys):
    from hf_metatts.cli import main

    data = _save_references([row for row in references if row["speaker_id"] == "awb"], tmp_path / "refs")
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--references", str(data), "--target", "awb",
                 "--metrics", "eer", "--out", str(out)])
    assert code == 2
    assert "at least 2 speakers" in capsys.readouterr().err
    assert not out.exists()


def test_cli_reads_a_clip_folder_of_the_target_alone(tiny_checkpoint, references, tmp_path, capsys):
    from hf_metatts.cli import main

    folder = tmp_path / "heldout"
    (folder / "wavs").mkdir(parents=True)
    lines = []
    for index, row in enumerate(row for row in references if row["speaker_id"] == "awb"):
        (folder / "wavs" / f"awb_{index}.wav").write_bytes(open(row["audio"], "rb").read())
        lines.append(f"awb_{index}|{row['text']}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--references", str(folder), "--max-utterances", "1",
                 "--metrics", "similarity", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["num_utterances"] == 1 and -1.0 <= result["similarity"] <= 1.0
    assert [u["text"] for u in result["per_utterance"]] == [TEXTS[0]]


def test_cli_asks_for_the_target_of_a_dataset_and_writes_nothing(tiny_checkpoint, references, tmp_path, capsys):
    from hf_metatts.cli import main

    data = _save_references(references, tmp_path / "refs")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--references", str(data), "--out", str(out)]) == 2
    assert "is a dataset: give --target" in capsys.readouterr().err
    assert not out.exists()
