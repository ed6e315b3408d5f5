"""benchmarks/formant_warp.py: the log-mel warp moves formants by its factor, and the grid search finds a known warp."""

import pytest
import torch
from benchmark_scripts import load_benchmark_script

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")

FMIN, FMAX = 80.0, 7600.0


@pytest.fixture(scope="module")
def warp():
    return load_benchmark_script("formant_warp")


def test_a_formant_peak_moves_by_the_factor_and_one_is_the_identity(warp):
    centers = warp.mel_center_frequencies(80, FMIN, FMAX)
    peak = torch.full((1, 3, 80), -5.0)
    peak[..., 40] = 0.0
    assert torch.equal(warp.warp_log_mel(peak, 1.0, FMIN, FMAX), peak)
    for factor in (0.9, 1.1):
        moved = warp.warp_log_mel(peak, factor, FMIN, FMAX)
        assert moved.shape == peak.shape
        ratio = centers[int(moved[0, 0].argmax())] / centers[40]
        assert ratio == pytest.approx(factor, abs=0.03)


def test_the_grid_search_recovers_a_known_warp(warp):
    generator = torch.Generator().manual_seed(0)
    envelope = torch.cumsum(torch.randn(2, 30, 80, generator=generator), dim=-1) * 0.2  # smooth spectra
    recorded = warp.warp_log_mel(envelope, 1.06, FMIN, FMAX)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    assert warp.choose_warp_factor(envelope, recorded, mask, FMIN, FMAX) == pytest.approx(1.06)
    distances = warp.warp_distances(envelope, recorded, mask, FMIN, FMAX)
    assert set(distances) == set(warp.DEFAULT_WARP_GRID) and distances[1.06] < distances[1.0]


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_factors_and_an_empty_grid_are_refused(warp, factor):
    log_mel = torch.zeros(1, 4, 80)
    with pytest.raises(warp.WarpFactorError, match="positive number"):
        warp.warp_log_mel(log_mel, factor, FMIN, FMAX)
    with pytest.raises(warp.WarpFactorError, match="empty"):
        warp.warp_distances(log_mel, log_mel, torch.ones(1, 4, dtype=torch.bool), FMIN, FMAX, grid=())
