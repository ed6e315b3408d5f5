"""A discriminative speaker encoder over log-mels, and the support-set voice encoder built on it.

- :class:`SpeakerIdentityEncoder`: dilated batch-normed 1-D convolutions over mel frames, mean+std pooling and
  a linear embedding, trained to tell speakers apart (``hf-metatts train-identity-encoder``). It is the critic
  of the meta-objective's identity term (``hf_metatts.meta.identity``).
- :class:`SpeakerEmbeddingVoiceEncoder`: the zero-shot start of a model with
  ``config.voice_encoder_type="speaker_embedding"``: the frozen encoder embeds each support clip, the unit
  mean of those embeddings goes through a small trained head that emits a change to each adapted parameter.
  A speaker encoder trained to separate voices generalises to unseen speakers far better than a support
  encoder learned from the TTS loss alone, so the head maps a space in which new voices land near similar
  training voices.

Shapes: K clips, T mel frames, M mel bins, D embedding size.
This file travels with saved checkpoints (remote code): it imports only torch and sibling files.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .modeling_blocks import split_flat_changes


@dataclass
class IdentityEncoderConfig:
    """Shape of the speaker encoder: dilated 1-D convolutions (batch-normalised) over mel frames, mean+std
    pooling, a linear embedding. Used frozen and in eval mode, so the batch norms apply their running statistics."""

    num_mel_bins: int = 80
    channels: int = 192
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3)
    dilations: tuple[int, ...] = (1, 2, 3, 1)
    embedding_dim: int = 128

    def __post_init__(self):
        self.kernel_sizes, self.dilations = tuple(self.kernel_sizes), tuple(self.dilations)
        if len(self.kernel_sizes) != len(self.dilations) or not self.kernel_sizes:
            raise ValueError(
                f"kernel_sizes {self.kernel_sizes} and dilations {self.dilations} need the same non-zero length"
            )


class SpeakerIdentityEncoder(nn.Module):
    """Log-mels ``(B, T, num_mel_bins)`` + frame mask ``(B, T)`` -> unit-norm speaker embeddings ``(B, D)``."""

    def __init__(self, config: IdentityEncoderConfig | None = None):
        super().__init__()
        self.config = config or IdentityEncoderConfig()
        cfg = self.config
        layers, channels = [], cfg.num_mel_bins
        for kernel, dilation in zip(cfg.kernel_sizes, cfg.dilations):
            layers.append(nn.Conv1d(channels, cfg.channels, kernel, dilation=dilation,
                                    padding=dilation * (kernel - 1) // 2))
            channels = cfg.channels
        self.convs = nn.ModuleList(layers)
        self.norms = nn.ModuleList(nn.BatchNorm1d(cfg.channels) for _ in layers)
        self.project = nn.Linear(2 * cfg.channels, cfg.embedding_dim)

    def forward(self, mels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mels`` (B, T, M), ``mask`` (B, T) bool (True = real frame) -> (B, D), unit norm."""
        x = mels.transpose(1, 2)
        weights = (torch.ones(mels.shape[:2], device=mels.device, dtype=mels.dtype) if mask is None
                   else mask.to(mels.dtype))[:, None, :]
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x * weights)))
        count = weights.sum(-1).clamp(min=1.0)
        mean = (x * weights).sum(-1) / count
        var = ((x - mean[..., None]) ** 2 * weights).sum(-1) / count
        pooled = torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)
        return F.normalize(self.project(pooled), dim=-1)


class SpeakerEmbeddingVoiceEncoder(nn.Module):
    """Support-set encoder on a frozen speaker encoder: K clips' mels -> a change to each adapted parameter.

    ``speaker_encoder`` never trains (its parameters have ``requires_grad=False`` and it stays in eval mode even
    when the model trains); only ``head`` (D -> ``voice_encoder_hidden_size`` -> all adapted values) learns. The
    head's last layer starts at zero, so before training the encoder returns the model's own voice unchanged.
    """

    def __init__(self, config, adapted_shapes: dict[str, torch.Size]):
        super().__init__()
        encoder_config = IdentityEncoderConfig(**(config.speaker_encoder_config or {}))
        if encoder_config.num_mel_bins != config.num_mel_bins:
            raise ValueError(f"speaker_encoder_config.num_mel_bins={encoder_config.num_mel_bins} differs from the "
                             f"model's num_mel_bins={config.num_mel_bins}.")
        self.speaker_encoder = SpeakerIdentityEncoder(encoder_config)
        self.speaker_encoder.requires_grad_(False)
        self.speaker_encoder.eval()
        self.names = list(adapted_shapes)
        self.shapes = [tuple(shape) for shape in adapted_shapes.values()]
        hidden = config.voice_encoder_hidden_size
        self.head = nn.Sequential(nn.Linear(encoder_config.embedding_dim, hidden), nn.GELU(),
                                  nn.Linear(hidden, sum(math.prod(shape) for shape in self.shapes)))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def train(self, mode: bool = True):
        """``nn.Module.train`` for the head; the speaker encoder keeps its batch norms' running statistics."""
        super().train(mode)
        self.speaker_encoder.eval()
        return self

    def embed(self, mels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """mels ``(K, T, M)``, mask ``(K, T)`` -> the unit mean of the K clips' embeddings ``(D,)`` (no gradient)."""
        with torch.no_grad():
            return F.normalize(self.speaker_encoder(mels, mask.bool()).mean(dim=0), dim=-1)

    def forward(self, mels: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """mels ``(K, T, M)`` of K support clips, mask ``(K, T)`` -> ``{name: change with the parameter's shape}``."""
        return split_flat_changes(self.head(self.embed(mels, mask)), self.names, self.shapes)
