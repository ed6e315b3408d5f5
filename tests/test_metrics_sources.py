"""Real speech for the metric tests, made offline at test time, and checks that it is what the tests assume.

- Debian ``flite`` (``apt-get install -y flite``): four different speakers at 16 kHz (kal16, awb, rms, slt).
  Its awb voice was built from the CMU ARCTIC recordings of the speaker awb.
- ``pysptk`` ships one real recording: CMU ARCTIC, speaker awb, arctic_a0007.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@dataclass(frozen=True)
class SpeechSources:
    """What the metric tests synthesise and read."""

    voices: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
    sentences: tuple[str, ...] = (
        "And you always want to see it in the superlative degree.",
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
    )
    real_text: str = "And you always want to see it in the superlative degree."
    real_speaker: str = "awb"
    sampling_rate: int = 16_000
    # A slower, re-pitched rendering of the same voice: same speaker, other prosody.
    variant_settings: tuple[str, ...] = ("--setf", "duration_stretch=1.2", "--setf", "int_f0_target_mean=150")


SOURCES = SpeechSources()


def require_flite() -> str:
    path = shutil.which("flite")
    if path is None:
        pytest.skip("Debian package 'flite' is not installed (apt-get install -y flite); it provides the test voices")
    return path


def real_recording() -> tuple[np.ndarray, int]:
    """The CMU ARCTIC recording of awb shipped with pysptk: (float32 samples, 16000)."""
    pysptk = pytest.importorskip("pysptk", reason="pysptk (evaluation extra) ships the real test recording")
    samples, rate = sf.read(pysptk.util.example_audio_file(), dtype="float32")
    return samples, rate


def flite(voice: str, text: str, out: Path, extra: tuple[str, ...] = ()) -> Path:
    subprocess.run([require_flite(), "-voice", voice, *extra, "-t", text, "-o", str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


def synthesize_corpus(folder: Path, variants: bool = False) -> dict[tuple[str, int], Path]:
    """``{(voice, sentence index): wav path}`` for every voice and sentence of :data:`SOURCES`.

    With ``variants``, also ``{(voice, -1): path}``: sentence 0 said slower and at another pitch.
    """
    corpus = {}
    for voice in SOURCES.voices:
        for index, text in enumerate(SOURCES.sentences):
            corpus[voice, index] = flite(voice, text, folder / f"{voice}_{index}.wav")
        if variants:
            corpus[voice, -1] = flite(voice, SOURCES.sentences[0], folder / f"{voice}_variant.wav",
                                      SOURCES.variant_settings)
    return corpus


def add_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``samples`` plus white Gaussian noise at ``snr_db`` dB signal-to-noise ratio."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(samples.shape[0]).astype(np.float32)
    scale = np.sqrt(np.mean(samples**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (samples + scale * noise).astype(np.float32)


def test_flite_voices_are_distinct_16k_speech(tmp_path):
    corpus = synthesize_corpus(tmp_path)
    lengths = set()
    for (voice, index), path in corpus.items():
        samples, rate = sf.read(path, dtype="float32")
        assert rate == SOURCES.sampling_rate, (voice, rate)
        assert samples.shape[0] > rate, f"{voice} sentence {index} is shorter than 1 s"
        assert np.abs(samples).max() > 0.05
        lengths.add((index, samples.shape[0]))
    # Different voices say the same sentence with different timings.
    assert len({n for i, n in lengths if i == 0}) == len(SOURCES.voices)


def test_real_recording_is_speech():
    samples, rate = real_recording()
    assert rate == 16_000
    assert 3.0 < samples.shape[0] / rate < 5.0
    assert 0.1 < np.abs(samples).max() <= 1.0


def test_add_noise_reaches_the_requested_snr():
    samples, _ = real_recording()
    noisy = add_noise(samples, snr_db=-5.0)
    snr = 10 * np.log10(np.mean(samples**2) / np.mean((noisy - samples) ** 2))
    assert snr == pytest.approx(-5.0, abs=1e-3)
