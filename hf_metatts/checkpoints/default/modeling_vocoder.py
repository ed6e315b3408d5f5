"""Vocoders owned by the model: log-mel ``(B, T, M)`` -> waveform ``(B, T * hop)``.

- `GriffinLimVocoder`: no weights, always available (fast Griffin-Lim, Perraudin et al. 2013).
- `ISTFTVocoder`: a small neural vocoder (ConvNeXt blocks predicting STFT magnitude and phase, then an
  inverse STFT, as in Vocos); trained on the corpus, its weights ship with a checkpoint.
- `transformers.SpeechT5HifiGan` can be attached instead (`MetaTTSForTextToSpeech.attach_vocoder`).

This file travels with saved checkpoints (remote code): it imports only torch, transformers and siblings.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .feature_extraction_metatts import SILENCE_LOG_MEL, MetaTTSFeatureExtractor


def _window(config, device, dtype) -> torch.Tensor:
    window = torch.hann_window(config.win_length, periodic=True, device=device, dtype=dtype)
    if config.win_length < config.n_fft:
        pad = (config.n_fft - config.win_length) // 2
        window = F.pad(window, (pad, config.n_fft - config.win_length - pad))
    return window


class GriffinLimVocoder(nn.Module):
    """Mel -> linear magnitude by the filter bank's pseudo-inverse, then phase by fast Griffin-Lim.

    Deterministic: the initial phase comes from a fixed seed, so the same mel gives the same audio.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self._inverse_filters = None

    def inverse_filters(self, device) -> torch.Tensor:
        """Pseudo-inverse of the mel filter bank ``(M, F)``, computed once (no weights are stored)."""
        if self._inverse_filters is None:
            filters = MetaTTSFeatureExtractor.from_model_config(self.config).mel_filters()  # (F, M)
            self._inverse_filters = torch.linalg.pinv(filters)
        return self._inverse_filters.to(device)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel ``(B, T, M)`` (log10 magnitudes) -> waveform ``(B, T * hop)``."""
        config = self.config
        frames = log_mel.shape[1]
        shortest = config.n_fft // config.hop_length + 2  # a centred STFT needs more samples than n_fft / 2
        if frames < shortest:
            padded = F.pad(log_mel, (0, 0, 0, shortest - frames), value=SILENCE_LOG_MEL)
            return self.forward(padded)[:, : frames * config.hop_length]
        mel = torch.pow(10.0, log_mel.float())
        magnitude = (mel @ self.inverse_filters(log_mel.device)).clamp(min=1e-8)
        magnitude = magnitude.pow(config.griffin_lim_power).transpose(1, 2)
        length = (log_mel.shape[1] - 1) * config.hop_length  # centred STFT: T frames <-> (T-1) hops
        window = _window(config, log_mel.device, torch.float32)
        generator = torch.Generator(device="cpu").manual_seed(0)
        phase = torch.rand(magnitude.shape, generator=generator).to(log_mel.device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitude), phase)
        previous = torch.zeros_like(angles)
        momentum = config.griffin_lim_momentum / (1.0 + config.griffin_lim_momentum)
        stft_args = dict(n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.n_fft, window=window)
        for _ in range(config.griffin_lim_iters):
            waveform = torch.istft(magnitude * angles, length=length, **stft_args)
            rebuilt = torch.stft(waveform, return_complex=True, **stft_args)
            angles = rebuilt - previous * momentum
            angles = angles / angles.abs().clamp(min=1e-16)
            previous = rebuilt
        waveform = torch.istft(magnitude * angles, length=length, **stft_args)
        peak = waveform.abs().amax(dim=1, keepdim=True).clamp(min=1e-4)
        waveform = waveform * torch.clamp(0.95 / peak, max=1.0)
        return F.pad(waveform, (0, config.hop_length))


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> layer norm -> pointwise MLP with GELU, scaled residual. ``(B, C, T)``."""

    def __init__(self, channels: int, intermediate: int):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, intermediate)
        self.project = nn.Linear(intermediate, channels)
        self.gamma = nn.Parameter(torch.full((channels,), 1.0 / 8))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = self.depthwise(hidden).transpose(1, 2)
        update = self.project(F.gelu(self.expand(self.norm(update))))
        return hidden + (self.gamma * update).transpose(1, 2)


class ISTFTVocoder(nn.Module):
    """Neural vocoder: mel -> ConvNeXt stack -> STFT magnitude and phase per frame -> inverse STFT."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        channels = config.vocoder_hidden_size
        self.embed = nn.Conv1d(config.num_mel_bins, channels, 7, padding=3)
        self.norm = nn.LayerNorm(channels)
        self.blocks = nn.ModuleList(
            [ConvNeXtBlock(channels, config.vocoder_intermediate_size) for _ in range(config.vocoder_layers)]
        )
        self.final_norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, config.n_fft + 2)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel ``(B, T, M)`` -> waveform ``(B, T * hop)``."""
        return self.output_layer(self.hidden_states(log_mel))

    def hidden_states(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The layers below the output layer: log_mel ``(B, T, M)`` -> hidden ``(B, C, T)``."""
        hidden = self.embed(log_mel.transpose(1, 2))
        hidden = self.norm(hidden.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden)
        return hidden

    def output_layer(self, hidden: torch.Tensor) -> torch.Tensor:
        """``final_norm`` and ``head`` -> STFT magnitude and phase -> inverse STFT: hidden ``(B, C, T)`` ->
        waveform ``(B, T * hop)``, float32."""
        config = self.config
        output = self.head(self.final_norm(hidden.transpose(1, 2))).transpose(1, 2)  # (B, F*2, T)
        # the inverse STFT runs in float32 whatever the model's dtype: complex half and bfloat16 are not supported
        log_magnitude, phase = output.float().chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude).clamp(max=1e2)
        spectrum = torch.polar(magnitude, phase)
        window = _window(config, hidden.device, torch.float32)
        return torch.istft(
            spectrum, config.n_fft, config.hop_length, config.n_fft, window=window,
            length=hidden.shape[2] * config.hop_length,
        )


class SpeechT5HifiGanAdapter(nn.Module):
    """Wraps `transformers.SpeechT5HifiGan` (SpeechT5's mel definition, which MetaTTS shares)."""

    def __init__(self, config):
        super().__init__()
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        self.hifigan = SpeechT5HifiGan(SpeechT5HifiGanConfig(**config.hifigan_config))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.hifigan(log_mel)


def build_vocoder(config) -> nn.Module:
    """The vocoder that ``config.vocoder_type`` names."""
    if config.vocoder_type == "griffin_lim":
        return GriffinLimVocoder(config)
    if config.vocoder_type == "istft":
        return ISTFTVocoder(config)
    return SpeechT5HifiGanAdapter(config)
