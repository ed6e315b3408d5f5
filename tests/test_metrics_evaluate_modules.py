"""The metrics as ``evaluate`` modules kept in the package: loaded offline from their folders and computed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr
from test_metrics_sources import SOURCES, real_recording

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")
pytest.importorskip("pocketsphinx", reason="pocketsphinx (evaluation extra) is needed")

from hf_metatts.evaluation import METRIC_NAMES, UnknownMetricError, load_metric, metric_path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_every_metric_has_a_script_and_a_card():
    for name in METRIC_NAMES:
        folder = metric_path(name)
        assert (folder / f"{name}.py").is_file()
        card = (folder / "README.md").read_text(encoding="utf-8")
        for section in ("## What it measures", "## Range", "## Caveats", "## Example"):
            assert section in card, (name, section)


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(UnknownMetricError, match="choose one of"):
        load_metric("bleu")


def test_modules_load_offline_from_their_folders():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for name in METRIC_NAMES:
        metric = load_metric(name)
        assert metric.name == name
        # evaluate imported its own copy of the script, which imports the implementation from the package.
        assert type(metric).__module__.startswith("evaluate_modules.metrics"), type(metric).__module__


def test_speaker_similarity_module_mixes_input_forms(tmp_path):
    import soundfile as sf

    samples, rate = real_recording()
    path = tmp_path / "real.wav"
    sf.write(path, samples, rate)
    at_44k = soxr.resample(samples, rate, 44_100)
    result = load_metric("speaker_similarity").compute(
        predictions=[{"array": at_44k, "sampling_rate": 44_100}, at_44k], references=[str(path), samples],
        sampling_rate=44_100, references_sampling_rate=rate,
    )
    assert len(result["scores"]) == 2
    assert min(result["scores"]) > 0.98, result


def test_mel_cepstral_distortion_module_is_zero_on_identical_audio():
    samples, rate = real_recording()
    metric = load_metric("mel_cepstral_distortion")
    assert metric.compute(predictions=[samples], references=[samples], sampling_rate=rate) == {
        "mel_cepstral_distortion": 0.0, "scores": [0.0]
    }
    noisy = samples + np.random.default_rng(0).normal(0, 0.05, samples.shape).astype(np.float32)
    assert metric.compute(predictions=[noisy], references=[samples], sampling_rate=rate)["scores"][0] > 1.0


def test_asr_wer_module_on_a_real_recording():
    samples, rate = real_recording()
    result = load_metric("asr_wer").compute(
        predictions=[{"array": samples, "sampling_rate": rate}], references=[SOURCES.real_text]
    )
    assert result["wer"] <= 0.1, result
    assert "superlative" in result["transcripts"][0]


@pytest.mark.slow
def test_modules_load_in_a_fresh_offline_process(tmp_path):
    python_path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"),
               HF_HOME=str(tmp_path / "home"), PYTHONPATH=python_path)
    code = (
        "import evaluate, hf_metatts.evaluation as e\n"
        "for n in e.METRIC_NAMES:\n"
        "    print(n, type(evaluate.load(str(e.metric_path(n)))).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [
        "speaker_similarity", "SpeakerSimilarity", "mel_cepstral_distortion", "MelCepstralDistortion",
        "asr_wer", "AsrWer",
    ]
