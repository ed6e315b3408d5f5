"""Spectral losses of the vocoder: log-mel L1 and multi-resolution STFT (spectral convergence + log magnitude).

All functions take waveforms ``(B, samples)``; they are differentiable, so the vocoder learns from them.
"""

import torch
import torch.nn.functional as F

#: (n_fft, hop, window) of the multi-resolution STFT loss, as in Parallel WaveGAN (Yamamoto et al., 2020).
DEFAULT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))


def stft_magnitude(waveform: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """``(B, samples)`` -> magnitude ``(B, frames, n_fft // 2 + 1)``, floored at 1e-7."""
    window = torch.hann_window(win, device=waveform.device, dtype=waveform.dtype)
    spec = torch.stft(waveform, n_fft, hop, win, window=window, center=True, pad_mode="reflect", return_complex=True)
    return spec.abs().clamp(min=1e-7).transpose(1, 2)


def multi_resolution_stft_loss(prediction: torch.Tensor, target: torch.Tensor,
                               resolutions=DEFAULT_RESOLUTIONS) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes. ``(B, samples)`` each."""
    total = prediction.new_zeros(())
    for n_fft, hop, win in resolutions:
        predicted, reference = stft_magnitude(prediction, n_fft, hop, win), stft_magnitude(target, n_fft, hop, win)
        convergence = torch.linalg.norm(reference - predicted) / torch.linalg.norm(reference).clamp(min=1e-7)
        total = total + convergence + F.l1_loss(predicted.log(), reference.log())
    return total / len(resolutions)


def batched_log_mel(waveform: torch.Tensor, filters: torch.Tensor, n_fft: int, hop: int, win: int,
                    mel_floor: float) -> torch.Tensor:
    """Log10 mel magnitudes of ``(B, samples)`` -> ``(B, samples // hop + 1, M)``; ``filters`` ``(F, M)``.

    The batched twin of `MetaTTSFeatureExtractor.log_mel` (same centred STFT, reflect padding, Slaney filters).
    """
    window = torch.hann_window(win, periodic=True, device=waveform.device, dtype=waveform.dtype)
    if win < n_fft:
        pad = (n_fft - win) // 2
        window = F.pad(window, (pad, n_fft - win - pad))
    spec = torch.stft(waveform, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    mel = spec.abs().transpose(1, 2) @ filters
    return torch.log10(mel.clamp(min=mel_floor))
