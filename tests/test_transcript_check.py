"""benchmarks/transcript_check.py: the mismatch detector's numbers (ROC AUC, summaries) and clip scoring."""

import math

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from tiny_models import tiny_model


@pytest.fixture(scope="module")
def check():
    return load_benchmark_script("transcript_check")


def test_roc_auc(check):
    assert check.roc_auc([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert check.roc_auc([1.0, 3.0], [2.0, 4.0]) == 0.75
    assert check.roc_auc([1.0], [1.0]) == 0.5
    assert check.roc_auc([1.0, 2.0], [float("inf")]) == 1.0


def test_summary_counts_clips_refused_by_length(check):
    result = check.summary([1.0, 2.0, 3.0, float("inf")])
    assert result["refused_by_length"] == 1 and result["max_scored"] == 3.0 and result["min"] == 1.0
    assert result["p95"] == float("inf") and result["p5"] == pytest.approx(1.15) and result["median"] == 2.5


def test_a_transcript_longer_than_its_clip_scores_infinite(check):
    model = tiny_model()
    rate = model.config.sampling_rate
    audio = {"array": np.random.default_rng(0).normal(0, 0.1, rate).astype(np.float32), "sampling_rate": rate}
    rows = [{"audio": audio}, {"audio": audio}]
    long_text = "This transcript is far too long to be read in one single second of audio, by anyone at all."
    scores = check.score_clips(model, rows, ["Hello there.", long_text])
    for kind in ("forward_sum", "path"):
        assert math.isfinite(scores[kind][0]) and scores[kind][0] > 0
        assert scores[kind][1] == float("inf")
