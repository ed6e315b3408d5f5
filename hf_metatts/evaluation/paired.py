"""How sure a comparison of two methods over the same held-out tasks is: the mean of the per-task differences and
its bootstrap confidence interval, resampling tasks (``scipy.stats.bootstrap``, BCa).

Two methods measured on the same speakers are paired: speaker to speaker the numbers move together (an easy
voice is easy for both), so the interval of the mean *difference* is far narrower than the two means' own
intervals suggest. The interval covers the choice of speakers only, not a second meta-training run of the same
recipe (its seed), which can move a method's mean by as much again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

#: resamples of the tasks; with 21 tasks the interval's ends move by < 0.001 between seeds at this count
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE_LEVEL = 0.95


class PairedComparisonError(ValueError):
    """The two methods do not share enough tasks with a finite value to compare them."""


@dataclass(frozen=True)
class PairedDifference:
    """``mean`` of ``a[task] - b[task]`` over ``tasks`` shared tasks, its ``low``/``high`` bootstrap interval at
    ``confidence``, and ``above`` / ``below``: how many tasks have a positive / negative difference."""

    mean: float
    low: float
    high: float
    confidence: float
    tasks: int
    above: int
    below: int

    def to_dict(self, digits: int = 4) -> dict:
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], confidence: float = CONFIDENCE_LEVEL,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> PairedDifference:
    """The mean per-task difference ``a - b`` over the tasks both measured, with a bootstrap interval.

    Args:
        a, b: ``{task name: value}`` of two methods (e.g. speaker similarity per held-out speaker); tasks that
            only one of them has, or whose value is None or not finite, are left out.
        confidence: the interval's level, in (0, 1).
        resamples: bootstrap resamples of the tasks.
        seed: of the resampling, so a report is reproducible.

    Returns:
        A :class:`PairedDifference`. When every task has the same difference the interval is that value.

    Raises:
        PairedComparisonError: fewer than 2 shared tasks with finite values in both, or ``confidence`` outside
            (0, 1), or ``resamples`` < 1.
    """
    from scipy.stats import bootstrap

    if not 0 < confidence < 1:
        raise PairedComparisonError(f"confidence={confidence} must lie strictly between 0 and 1 (e.g. 0.95).")
    if resamples < 1:
        raise PairedComparisonError(f"resamples={resamples} must be at least 1.")
    shared = sorted(name for name in set(a) & set(b) if _finite(a[name]) and _finite(b[name]))
    if len(shared) < 2:
        raise PairedComparisonError(
            f"{len(shared)} task(s) have a finite value in both methods; a paired interval needs at least 2 "
            "(measure both methods on the same tasks).")
    differences = np.array([float(a[name]) - float(b[name]) for name in shared])
    mean = float(differences.mean())
    if np.ptp(differences) == 0:
        low = high = mean
    else:
        for method in ("BCa", "percentile"):  # BCa degenerates (non-finite ends) on a few tasks: percentiles then
            interval = bootstrap((differences,), np.mean, n_resamples=resamples, confidence_level=confidence,
                                 method=method, random_state=np.random.default_rng(seed)).confidence_interval
            low, high = float(interval.low), float(interval.high)
            if math.isfinite(low) and math.isfinite(high):
                break
    return PairedDifference(mean=mean, low=low, high=high, confidence=confidence, tasks=len(shared),
                            above=int((differences > 0).sum()), below=int((differences < 0).sum()))


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
