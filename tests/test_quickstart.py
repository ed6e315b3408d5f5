"""The README's main job end to end: the bundled checkpoint adapted to a held-out speaker; and the same job
on a tiny model meta-trained for a few episodes (the training pipeline)."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import soundfile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _quickstart(monkeypatch):
    """examples/quickstart.py as a fresh module, run from the repository root as the README runs it."""
    monkeypatch.chdir(EXAMPLES.parent)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("quickstart", None)
    import quickstart

    return quickstart


def _run_quickstart(tmp_path, monkeypatch, argv):
    report = _quickstart(monkeypatch).main(["--out", str(tmp_path), *argv])
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["target_speaker"] == "flite:awb"  # a held-out natural voice
    for key in ("before_adaptation", "after_adaptation"):
        assert -1.0 <= report[key]["speaker_similarity"] <= 1.0 and report[key]["wer"] >= 0.0
    assert report["target_recordings"]["wer"] < 0.6  # the real voice is recognisable
    audio, rate = soundfile.read(tmp_path / "heldout_0_adapted.wav")
    assert rate == 16000 and len(audio) > rate // 2
    assert (tmp_path / "adaptation_curve.png").stat().st_size > 1000
    # kilobytes, or under a megabyte with the adapted vocoder layers (the bundle adapts its output layer)
    limit = 1024 * 1024 if report["adaptation"]["vocoder_steps"] else 64 * 1024
    if report["adaptation"]["extra_parameters"]:
        limit = 8 * 1024 * 1024  # the decoder's 1.17 M weights as well: 5.5 MB
    assert (tmp_path / "voice" / "voice.safetensors").stat().st_size < limit
    return report


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh installs it)")
def test_quickstart_adapts_the_bundled_checkpoint(tmp_path, monkeypatch):
    import hf_metatts

    report = _run_quickstart(tmp_path, monkeypatch, [])
    assert report["model_dir"] == hf_metatts.DEFAULT_CHECKPOINT and "meta_training" not in report
    assert report["shots"] == 5 and len(report["adaptation"]["support_loss_curve"]) == 5
    assert report["adaptation"]["vocoder_steps"] == 15  # the bundle adapts its vocoder to the voice too
    assert "first of this process" in report["adaptation"]["seconds_measured_as"]  # not the speed bar's warm median
    curve = report["adaptation"]["support_loss_curve"]
    assert curve[-1] < curve[0]  # the meta-learned rates lower the support loss
    assert report["after_adaptation"]["speaker_similarity"] > report["before_adaptation"]["speaker_similarity"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh installs it)")
# a model trained for seconds has a barely trained aligner: its transcript check may warn about a matched clip
@pytest.mark.filterwarnings("ignore::hf_metatts.voice_errors.TranscriptMismatchWarning")
def test_quickstart_trains_a_tiny_model_when_asked(tmp_path, monkeypatch):
    report = _run_quickstart(tmp_path, monkeypatch, ["--train-tiny", "2", "--adapt-steps", "3"])
    assert report["meta_training"]["episodes"] == 2
    assert report["shots"] == 5 and len(report["adaptation"]["support_loss_curve"]) == 3


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh installs it)")
def test_quickstart_adapts_the_decoder_layers_when_asked(tmp_path, monkeypatch):
    from safetensors import safe_open

    report = _run_quickstart(tmp_path, monkeypatch, ["--extra-parameters", "decoder.layers.*"])
    adaptation = report["adaptation"]
    assert adaptation["extra_parameters"] == ["decoder.layers.*"]
    assert adaptation["steps"] == 40 and adaptation["lr"] == pytest.approx(1e-3)  # the measured recipe
    assert len(adaptation["support_loss_curve"]) == 40
    assert adaptation["support_loss_curve"][-1] < adaptation["support_loss_curve"][0]
    with safe_open(str(tmp_path / "voice" / "voice.safetensors"), "pt") as voice:
        assert any(key.endswith("decoder.layers.0.attention.qkv.weight") for key in voice.keys())
    assert report["after_adaptation"]["speaker_similarity"] > report["before_adaptation"]["speaker_similarity"]


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh installs it)")
def test_quickstart_refuses_extra_parameters_it_cannot_adapt(tmp_path, monkeypatch):
    from hf_metatts.voice_errors import ExtraParametersError

    with pytest.raises(ExtraParametersError, match="'vocoder.\\*' names parameters the steps cannot adapt"):
        _quickstart(monkeypatch).main(["--out", str(tmp_path), "--extra-parameters", "vocoder.*"])
    assert not (tmp_path / "report.json").exists() and not (tmp_path / "voice").exists()
