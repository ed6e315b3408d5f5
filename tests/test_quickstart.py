"""The README's main job, end to end at a few episodes: corpus, meta-training, adaptation, report."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import soundfile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh installs it)")
def test_quickstart_writes_audio_voice_and_a_measured_report(tmp_path, monkeypatch):
    monkeypatch.chdir(EXAMPLES.parent)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("quickstart", None)
    import quickstart

    report = quickstart.main(["--out", str(tmp_path), "--steps", "2", "--adapt-steps", "3"])
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["target_speaker"] == "flite:awb"  # a held-out natural voice
    assert report["shots"] == 5 and len(report["adaptation"]["support_loss_curve"]) == 3
    for key in ("before_adaptation", "after_adaptation"):
        assert -1.0 <= report[key]["speaker_similarity"] <= 1.0 and report[key]["wer"] >= 0.0
    assert report["target_recordings"]["wer"] < 0.6  # the real voice is recognisable
    audio, rate = soundfile.read(tmp_path / "heldout_0_adapted.wav")
    assert rate == 16000 and len(audio) > 0
    assert (tmp_path / "adaptation_curve.png").stat().st_size > 1000
    assert (tmp_path / "voice" / "voice.safetensors").stat().st_size < 64 * 1024
