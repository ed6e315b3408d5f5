"""Speaker similarity, verification EER and identification on real speech (flite voices, a CMU ARCTIC clip)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soxr
from test_metrics_sources import SOURCES, real_recording, synthesize_corpus

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra, installed with --no-deps) is needed")

from hf_metatts.evaluation import (  # noqa: E402
    EmptyAudioError,
    InsufficientSpeakersError,
    MismatchedInputsError,
    MissingSamplingRateError,
    UnknownSpeakerError,
    cosine_similarity,
    embed_utterances,
    equal_error_rate,
    speaker_centroids,
    speaker_identification_accuracy,
    speaker_similarity,
    speaker_verification_eer,
)

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthesize_corpus(tmp_path_factory.mktemp("flite_speaker"))


@pytest.fixture(scope="module")
def embeddings(corpus):
    keys = sorted(corpus)
    return dict(zip(keys, embed_utterances([corpus[key] for key in keys])))


def test_embeddings_are_unit_vectors(embeddings):
    matrix = np.stack(list(embeddings.values()))
    assert matrix.shape == (len(SOURCES.voices) * len(SOURCES.sentences), 256)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)


def test_same_speaker_other_sentence_scores_higher_than_other_speakers(embeddings):
    for voice in SOURCES.voices:
        same = [float(embeddings[voice, 0] @ embeddings[voice, i]) for i in (1, 2)]
        other = [float(embeddings[voice, 0] @ embeddings[v, i]) for v in SOURCES.voices if v != voice for i in (1, 2)]
        logger.info("%s: same speaker %s, other speakers max %.3f", voice, np.round(same, 3), max(other))
        assert min(same) > max(other), f"{voice}: same {same} vs other {other}"
        assert min(same) > 0.75
        assert max(other) < 0.85


def test_speaker_similarity_pairs_by_index(corpus):
    scores = speaker_similarity(
        references=[corpus["slt", 0], corpus["slt", 0]], predictions=[corpus["slt", 1], corpus["awb", 1]]
    )
    assert scores.shape == (2,)
    assert scores[0] > scores[1] + 0.2, scores


def test_real_recording_is_closest_to_the_synthetic_voice_of_its_speaker(embeddings):
    samples, rate = real_recording()
    real = embed_utterances([samples], sampling_rate=rate)
    keys = sorted(embeddings)
    labels, centroids = speaker_centroids(np.stack([embeddings[k] for k in keys]), [k[0] for k in keys])
    scores = dict(zip(labels, cosine_similarity(real, centroids)[0]))
    logger.info("real awb recording vs flite voices: %s", {k: round(float(v), 3) for k, v in scores.items()})
    assert max(scores, key=scores.get) == SOURCES.real_speaker, scores


def test_different_sample_rates_are_resampled():
    samples, rate = real_recording()
    at_44k = soxr.resample(samples, rate, 44_100)
    scores = speaker_similarity(
        references=[samples, samples], predictions=[{"array": at_44k, "sampling_rate": 44_100}, at_44k[::4]],
        references_sampling_rate=rate, sampling_rate=11_025,
    )
    assert scores[0] > 0.98, scores
    assert scores[1] > 0.9, scores  # decimated to 11.025 kHz without a filter, then resampled to 16 kHz


def test_verification_eer_near_zero_for_well_separated_speakers(embeddings):
    trials = np.stack([embeddings[v, 2] for v in SOURCES.voices])
    references = np.stack([embeddings[v, i] for v in SOURCES.voices for i in (0, 1)])
    reference_speakers = [v for v in SOURCES.voices for _ in (0, 1)]
    for scoring in ("centroid", "pairwise"):
        result = speaker_verification_eer(trials, list(SOURCES.voices), references, reference_speakers, scoring)
        logger.info("EER (%s scoring): %.3f at threshold %.3f", scoring, result.eer, result.threshold)
        assert result.eer <= 0.05, result
    assert result.num_target == 8 and result.num_nontarget == 24
    accuracy = speaker_identification_accuracy(trials, list(SOURCES.voices), references, reference_speakers)
    assert accuracy == 1.0


def test_verification_eer_is_high_when_trials_claim_the_wrong_speakers(embeddings):
    trials = np.stack([embeddings[v, 2] for v in SOURCES.voices])
    references = np.stack([embeddings[v, i] for v in SOURCES.voices for i in (0, 1)])
    reference_speakers = [v for v in SOURCES.voices for _ in (0, 1)]
    wrong = list(SOURCES.voices[1:]) + [SOURCES.voices[0]]
    assert speaker_verification_eer(trials, wrong, references, reference_speakers).eer >= 0.5
    assert speaker_identification_accuracy(trials, wrong, references, reference_speakers) == 0.0


def test_verification_eer_from_audio(corpus):
    trials = [corpus[v, 2] for v in ("awb", "slt")]
    references = [corpus[v, i] for v in ("awb", "slt") for i in (0, 1)]
    result = speaker_verification_eer(trials, ["awb", "slt"], references, ["awb", "awb", "slt", "slt"])
    assert result.eer == 0.0 and result.num_target == 2 and result.num_nontarget == 2


def test_equal_error_rate_of_known_scores():
    scores = [0.9, 0.8, 0.7, 0.4, 0.6, 0.5, 0.3, 0.2]
    is_target = [True] * 4 + [False] * 4
    result = equal_error_rate(scores, is_target)
    assert result.eer == pytest.approx(0.25)
    assert 0.5 <= result.threshold <= 0.7
    assert equal_error_rate([0.9, 0.1], [True, False]).eer == 0.0
    assert equal_error_rate([0.1, 0.9], [True, False]).eer == 1.0


def test_single_speaker_reference_set_is_a_clear_error(embeddings):
    trials = np.stack([embeddings["awb", 2]])
    references = np.stack([embeddings["awb", 0], embeddings["awb", 1]])
    with pytest.raises(InsufficientSpeakersError, match="at least 2 speakers.*Add the real utterances"):
        speaker_verification_eer(trials, ["awb"], references, ["awb", "awb"])
    with pytest.raises(InsufficientSpeakersError, match="at least 2 speakers"):
        speaker_identification_accuracy(trials, ["awb"], references, ["awb", "awb"])


def test_trial_of_an_unenrolled_speaker_is_a_clear_error(embeddings):
    trials = np.stack([embeddings["rms", 2]])
    references = np.stack([embeddings["awb", 0], embeddings["slt", 0]])
    with pytest.raises(UnknownSpeakerError, match=r"\['rms'\].*Add references"):
        speaker_verification_eer(trials, ["rms"], references, ["awb", "slt"])


def test_empty_audio_is_a_clear_error(corpus):
    with pytest.raises(EmptyAudioError, match="Drop empty clips"):
        speaker_similarity([corpus["awb", 0]], [np.zeros(0, dtype=np.float32)], sampling_rate=16_000)
    with pytest.raises(EmptyAudioError, match="Drop empty clips"):
        embed_utterances([{"array": [], "sampling_rate": 16_000}])


def test_raw_samples_without_a_rate_are_a_clear_error(corpus):
    samples, _ = real_recording()
    with pytest.raises(MissingSamplingRateError, match="Pass sampling_rate="):
        speaker_similarity([corpus["awb", 0]], [samples])


def test_unpaired_inputs_are_a_clear_error(corpus):
    with pytest.raises(MismatchedInputsError, match="pass as many"):
        speaker_similarity([corpus["awb", 0]], [corpus["awb", 1], corpus["awb", 2]])
