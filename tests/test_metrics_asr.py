"""ASR word error rate on real speech: a real recording, flite voices, and the same speech under heavy noise."""

from __future__ import annotations

import logging

import pytest
import soxr
from test_metrics_sources import SOURCES, add_noise, real_recording, synthesize_corpus

pytest.importorskip("pocketsphinx", reason="pocketsphinx (evaluation extra) is the offline recogniser")
pytest.importorskip("jiwer", reason="jiwer (evaluation extra) computes the WER")

from hf_metatts.evaluation import (  # noqa: E402
    EmptyAudioError,
    EmptyTranscriptError,
    MismatchedInputsError,
    asr_word_error_rate,
    normalize_transcript,
    transcribe,
    word_error_rate,
)

logger = logging.getLogger(__name__)

NOISE_SNR_DB = -5.0


def test_normalisation_keeps_words_and_drops_punctuation():
    assert normalize_transcript("  Don\u2019t STOP\u2014now, Mr. O'Neil!  ") == "don't stop now mr o'neil"
    assert normalize_transcript("'Quoted' well-known and/or") == "quoted well known and or"
    assert normalize_transcript("...!?") == ""


def test_word_error_rate_of_known_texts():
    assert word_error_rate(["The cat sat."], ["the cat sat"]) == 0.0
    assert word_error_rate(["the cat sat"], ["the cat sat on"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the cat sat", "a dog"], ["the bat sat", ""]) == pytest.approx(3 / 5)


def test_real_recording_is_recognised_and_noise_makes_it_worse():
    samples, rate = real_recording()
    clean = asr_word_error_rate([samples], [SOURCES.real_text], sampling_rate=rate)
    noisy = asr_word_error_rate([add_noise(samples, NOISE_SNR_DB)], [SOURCES.real_text], sampling_rate=rate)
    logger.info("real recording: clean WER %.3f %r; at %g dB SNR WER %.3f %r", clean.wer, clean.transcripts[0],
                NOISE_SNR_DB, noisy.wer, noisy.transcripts[0])
    assert clean.wer <= 0.1, clean
    assert noisy.wer >= 0.5, noisy
    assert noisy.wer > clean.wer


def test_a_transcript_does_not_depend_on_what_was_transcribed_before():
    samples, rate = real_recording()
    clip = add_noise(samples, 10.0)  # a clip the recogniser is unsure of: its transcript moves with any carry-over
    fresh = transcribe(clip, sampling_rate=rate)
    for before in (0.3 * samples, add_noise(samples, -10.0)):
        transcribe(before, sampling_rate=rate)
        assert transcribe(clip, sampling_rate=rate) == fresh


def test_different_sample_rates_are_resampled():
    samples, rate = real_recording()
    at_44k = soxr.resample(samples, rate, 44_100)
    assert transcribe({"array": at_44k, "sampling_rate": 44_100}) == transcribe(samples, sampling_rate=rate)


@pytest.mark.slow
def test_clean_synthetic_speech_has_lower_wer_than_the_same_speech_in_noise(tmp_path):
    corpus = synthesize_corpus(tmp_path)
    import soundfile as sf

    clips = [sf.read(corpus[voice, 0], dtype="float32")[0] for voice in SOURCES.voices]
    texts = [SOURCES.sentences[0]] * len(clips)
    clean = asr_word_error_rate(clips, texts, sampling_rate=SOURCES.sampling_rate)
    noisy = asr_word_error_rate([add_noise(c, NOISE_SNR_DB, seed=i) for i, c in enumerate(clips)], texts,
                                sampling_rate=SOURCES.sampling_rate)
    logger.info("flite voices %s: clean WER %.3f %s; noisy WER %.3f %s", SOURCES.voices, clean.wer,
                clean.transcripts, noisy.wer, noisy.transcripts)
    assert clean.wer <= 0.5, clean
    assert noisy.wer >= clean.wer + 0.3, (clean, noisy)


def test_empty_audio_and_empty_text_are_clear_errors():
    samples, rate = real_recording()
    with pytest.raises(EmptyAudioError, match="Drop empty clips"):
        asr_word_error_rate([samples[:0]], [SOURCES.real_text], sampling_rate=rate)
    with pytest.raises(EmptyTranscriptError, match="has no words.*pass the text"):
        asr_word_error_rate([samples], ["?!"], sampling_rate=rate)


def test_unpaired_inputs_are_a_clear_error():
    with pytest.raises(MismatchedInputsError, match="pass as many"):
        word_error_rate(["one", "two"], ["one"])
