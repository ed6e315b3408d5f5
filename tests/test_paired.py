"""hf_metatts.evaluation.paired: the paired per-task difference of two methods and its bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_metatts.evaluation.paired import PairedComparisonError, paired_difference


def scores(values, prefix="spk"):
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def test_mean_counts_and_an_interval_around_the_mean():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.8, size=21)
    shift = 0.02 + rng.normal(0, 0.01, size=21)
    result = paired_difference(scores(base + shift), scores(base))
    assert result.tasks == 21 and result.above + result.below == 21
    assert result.mean == pytest.approx(float(shift.mean()), abs=1e-12)
    assert result.low < result.mean < result.high
    # pairing: the speakers' own spread (0.5-0.8) does not widen the interval, only the differences' (0.01) does
    assert result.high - result.low < 0.02
    assert result.low > 0  # a consistent gain is told apart from zero
    assert result.confidence == 0.95


def test_an_inconsistent_difference_has_an_interval_across_zero():
    differences = np.array([0.05, -0.04, 0.03, -0.05, 0.02, -0.01, 0.04, -0.03])
    result = paired_difference(scores(0.6 + differences), scores(np.full(8, 0.6)))
    assert result.low < 0 < result.high
    assert (result.above, result.below) == (4, 4)


def test_reproducible_with_the_seed_and_wider_at_a_higher_level():
    rng = np.random.default_rng(0)
    a, b = scores(rng.normal(0.7, 0.05, 15)), scores(rng.normal(0.68, 0.05, 15))
    first, again = paired_difference(a, b, seed=1), paired_difference(a, b, seed=1)
    assert (first.low, first.high) == (again.low, again.high)
    wide = paired_difference(a, b, confidence=0.99, seed=1)
    assert wide.low < first.low and wide.high > first.high


def test_only_tasks_both_measured_with_finite_values_count():
    a = {"x": 0.7, "y": 0.6, "z": 0.9, "only_a": 0.1, "nan": math.nan, "none": None}
    b = {"x": 0.6, "y": 0.5, "z": 0.8, "only_b": 0.9, "nan": 0.5, "none": 0.5}
    result = paired_difference(a, b)
    assert result.tasks == 3 and result.mean == pytest.approx(0.1)
    # every difference equal: the interval is that value
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)
    assert result.to_dict() == {"mean": 0.1, "low": 0.1, "high": 0.1, "confidence": 0.95, "tasks": 3,
                                "above": 3, "below": 0}


def test_too_few_shared_tasks_and_bad_settings_raise_clear_errors():
    a, b = {"x": 0.7, "y": 0.6}, {"x": 0.6, "z": 0.5}
    before = (dict(a), dict(b))
    with pytest.raises(PairedComparisonError, match="1 task.*at least 2"):
        paired_difference(a, b)
    with pytest.raises(PairedComparisonError, match="confidence=1.0"):
        paired_difference({"x": 1.0, "y": 2.0}, {"x": 0.0, "y": 0.0}, confidence=1.0)
    with pytest.raises(PairedComparisonError, match="resamples=0"):
        paired_difference({"x": 1.0, "y": 2.0}, {"x": 0.0, "y": 0.0}, resamples=0)
    assert (a, b) == before  # the inputs are read, never changed
