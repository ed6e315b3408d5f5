"""Mel-cepstral distortion on real speech: zero on itself, smaller within a speaker than across speakers."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import soxr
from test_metrics_sources import SOURCES, real_recording, synthesize_corpus

pytest.importorskip("pysptk", reason="pysptk (evaluation extra) computes the mel-cepstra")
pytest.importorskip("pyworld", reason="pyworld (evaluation extra) computes the spectral envelope")

from hf_metatts.evaluation import (  # noqa: E402
    MCD_SETTINGS,
    EmptyAudioError,
    MismatchedInputsError,
    mcd_from_cepstra,
    mel_cepstral_distortion,
    mel_cepstrum,
)

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthesize_corpus(tmp_path_factory.mktemp("flite_mcd"), variants=True)


@pytest.fixture(scope="module")
def cepstra(corpus):
    """Mel-cepstra of sentence 0 of every voice (index 0) and of its slower, re-pitched variant (index -1)."""
    return {(voice, index): mel_cepstrum(corpus[voice, index]) for voice in SOURCES.voices for index in (0, -1)}


def test_documented_settings():
    assert MCD_SETTINGS.order == 24
    assert MCD_SETTINGS.frame_period_ms == 5.0
    assert MCD_SETTINGS.resolved_alpha() == pytest.approx(0.41)
    samples, rate = real_recording()
    cepstrum = mel_cepstrum(samples, rate)
    assert cepstrum.shape[1] == 25
    # One frame per 5 ms of the trimmed recording (4 s long, about 3 s of it speech).
    assert 400 < cepstrum.shape[0] < 800


def test_mcd_of_an_utterance_with_itself_is_zero():
    samples, rate = real_recording()
    assert mel_cepstral_distortion([samples], [samples.copy()], sampling_rate=rate)[0] == 0.0


def test_same_speaker_pairs_score_lower_than_different_speaker_pairs(cepstra):
    for voice in SOURCES.voices:
        same = mcd_from_cepstra(cepstra[voice, 0], cepstra[voice, -1])
        others = {other: mcd_from_cepstra(cepstra[voice, 0], cepstra[other, -1])
                  for other in SOURCES.voices if other != voice}
        logger.info("%s: same speaker %.2f dB, other speakers %s dB", voice, same,
                    {k: round(v, 2) for k, v in others.items()})
        assert 0.5 < same < 5.0, same
        assert same + 3.0 < min(others.values()), (same, others)


def test_real_recording_is_closest_to_the_synthetic_voice_of_its_speaker(corpus):
    samples, rate = real_recording()
    scores = dict(zip(SOURCES.voices, mel_cepstral_distortion(
        [samples] * len(SOURCES.voices), [corpus[voice, 0] for voice in SOURCES.voices], sampling_rate=rate
    )))
    logger.info("real awb recording vs flite voices, same text: %s dB", {k: round(v, 2) for k, v in scores.items()})
    assert min(scores, key=scores.get) == SOURCES.real_speaker, scores
    assert 4.0 < scores[SOURCES.real_speaker] < 9.0


def test_different_sample_rates_are_resampled(corpus):
    samples, rate = real_recording()
    at_22k = soxr.resample(samples, rate, 22_050)
    given_at_22k = mel_cepstral_distortion(
        [samples], [{"array": at_22k, "sampling_rate": 22_050}], references_sampling_rate=rate
    )[0]
    # The same trip by hand: the only difference to the original is the band lost near 8 kHz.
    round_trip = mel_cepstral_distortion([samples], [soxr.resample(at_22k, 22_050, rate)], sampling_rate=rate)[0]
    misread_rate = mel_cepstral_distortion([samples], [at_22k], sampling_rate=rate)[0]
    logger.info("MCD real vs itself through 22.05 kHz: %.3f dB (by hand %.3f dB, rate misread %.2f dB)",
                given_at_22k, round_trip, misread_rate)
    assert given_at_22k == pytest.approx(round_trip, abs=0.05)
    assert given_at_22k + 3.0 < misread_rate


def test_settings_change_the_measure(corpus):
    coarse = dataclasses.replace(MCD_SETTINGS, order=12)
    full = mel_cepstral_distortion([corpus["awb", 0]], [corpus["slt", 0]])[0]
    low_order = mel_cepstral_distortion([corpus["awb", 0]], [corpus["slt", 0]], settings=coarse)[0]
    assert 0 < low_order < full


def test_empty_and_silent_audio_are_clear_errors(corpus):
    with pytest.raises(EmptyAudioError, match="Drop empty clips"):
        mel_cepstral_distortion([corpus["awb", 0]], [np.zeros(0, dtype=np.float32)], sampling_rate=16_000)
    with pytest.raises(EmptyAudioError, match="is silent.*Drop silent clips"):
        mel_cepstral_distortion([corpus["awb", 0]], [np.zeros(16_000, dtype=np.float32)], sampling_rate=16_000)


def test_unpaired_inputs_are_a_clear_error(corpus):
    with pytest.raises(MismatchedInputsError, match="pass as many"):
        mel_cepstral_distortion([corpus["awb", 0], corpus["slt", 0]], [corpus["awb", 0]])
