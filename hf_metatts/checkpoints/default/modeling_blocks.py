"""Building blocks of the MetaTTS acoustic model: feed-forward Transformer blocks, conditional layer norm,
variance predictors, the length regulator and the support-set voice encoder.

Shapes: B batch, N phoneme tokens, T mel frames, H hidden size, S speaker-vector size.
This file travels with saved checkpoints (remote code): it imports only torch and sibling files.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Sinusoidal position encodings ``(length, dim)`` (Vaswani et al.); any length, no parameters."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies[: dim // 2])
    return table.to(dtype)


class ConditionalLayerNorm(nn.Module):
    """Layer norm whose scale and shift are computed from the speaker vector (AdaSpeech).

    ``scale = 1 + W_s s + b_s`` and ``shift = W_b s + b_b``. The biases ``scale.bias`` and ``shift.bias`` belong
    to the adapted parameter set: a voice stores them, the projections stay shared.
    """

    def __init__(self, hidden_size: int, speaker_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Linear(speaker_dim, hidden_size)
        self.shift = nn.Linear(speaker_dim, hidden_size)
        for layer in (self.scale, self.shift):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """hidden ``(B, L, H)``, speaker ``(B, S)`` -> ``(B, L, H)``."""
        normed = F.layer_norm(hidden, hidden.shape[-1:], eps=self.eps)
        scale = 1.0 + self.scale(speaker).unsqueeze(1)
        shift = self.shift(speaker).unsqueeze(1)
        return normed * scale + shift


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden ``(B, L, H)``, mask ``(B, L)`` bool (True = real) -> ``(B, L, H)``."""
        batch, length, size = hidden.shape
        qkv = self.qkv(hidden).view(batch, length, 3, self.num_heads, size // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, size))


class ConvFeedForward(nn.Module):
    """Position-wise feed-forward network with 1-D convolutions (FastSpeech): conv(k) -> ReLU -> conv(1)."""

    def __init__(self, hidden_size: int, ffn_dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv_in = nn.Conv1d(hidden_size, ffn_dim, kernel_size, padding=kernel_size // 2)
        self.conv_out = nn.Conv1d(ffn_dim, hidden_size, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden ``(B, L, H)``, mask ``(B, L)`` -> ``(B, L, H)``; padded positions stay zero."""
        hidden = hidden.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)
        hidden = self.conv_out(self.dropout(F.relu(self.conv_in(hidden))))
        return hidden.transpose(1, 2)


class FeedForwardTransformerBlock(nn.Module):
    """Post-norm FFT block: ``x = norm(x + attn(x)); x = norm(x + ffn(x))``.

    With ``speaker_dim`` the norms are conditional (decoder); with ``lora_rank`` a low-rank adapter
    ``lora_a`` ``(H, r)``, ``lora_b`` ``(r, H)`` (zero-initialised) adds to the feed-forward output.
    """

    def __init__(self, config, conditional: bool, lora_rank: int = 0):
        super().__init__()
        hidden = config.hidden_size
        self.conditional = conditional
        self.attention = SelfAttention(hidden, config.num_attention_heads, config.attention_dropout)
        self.feed_forward = ConvFeedForward(hidden, config.ffn_dim, config.ffn_kernel_size, config.dropout)
        if conditional:
            self.attention_norm = ConditionalLayerNorm(hidden, config.speaker_dim)
            self.ffn_norm = ConditionalLayerNorm(hidden, config.speaker_dim)
        else:
            self.attention_norm = nn.LayerNorm(hidden)
            self.ffn_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.dropout)
        if lora_rank:
            self.lora_a = nn.Parameter(torch.randn(hidden, lora_rank) / math.sqrt(hidden))
            self.lora_b = nn.Parameter(torch.zeros(lora_rank, hidden))
        else:
            self.lora_a = self.lora_b = None

    def _norm(self, norm: nn.Module, hidden: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        return norm(hidden, speaker) if self.conditional else norm(hidden)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """hidden ``(B, L, H)``, mask ``(B, L)`` bool, speaker ``(B, S)`` -> ``(B, L, H)``."""
        hidden = self._norm(self.attention_norm, hidden + self.dropout(self.attention(hidden, mask)), speaker)
        update = self.feed_forward(hidden, mask)
        if self.lora_a is not None:
            update = update + (hidden @ self.lora_a) @ self.lora_b
        hidden = self._norm(self.ffn_norm, hidden + self.dropout(update), speaker)
        return hidden.masked_fill(~mask.unsqueeze(-1), 0.0)


class FeedForwardTransformer(nn.Module):
    """A stack of FFT blocks with sinusoidal positions; the decoder variant ends in a conditional norm."""

    def __init__(self, config, num_layers: int, conditional: bool):
        super().__init__()
        lora_rank = config.lora_rank if conditional else 0
        self.layers = nn.ModuleList(
            [FeedForwardTransformerBlock(config, conditional, lora_rank) for _ in range(num_layers)]
        )
        self.final_norm = ConditionalLayerNorm(config.hidden_size, config.speaker_dim) if conditional else None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """hidden ``(B, L, H)``, mask ``(B, L)`` bool, speaker ``(B, S)`` -> ``(B, L, H)``."""
        hidden = hidden + sinusoidal_positions(hidden.shape[1], hidden.shape[2], hidden.device, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, mask, speaker)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden, speaker).masked_fill(~mask.unsqueeze(-1), 0.0)
        return hidden


class VariancePredictor(nn.Module):
    """Two conv layers with ReLU, layer norm and dropout, then a linear head: one value per token ``(B, N)``."""

    def __init__(self, hidden_size: int, filter_size: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_size, filter_size, kernel_size, padding=kernel_size // 2)
        self.norm1 = nn.LayerNorm(filter_size)
        self.conv2 = nn.Conv1d(filter_size, filter_size, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.LayerNorm(filter_size)
        self.head = nn.Linear(filter_size, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden ``(B, N, H)``, mask ``(B, N)`` bool -> ``(B, N)`` (zero at padding)."""
        hidden = hidden.masked_fill(~mask.unsqueeze(-1), 0.0)
        hidden = self.dropout(self.norm1(F.relu(self.conv1(hidden.transpose(1, 2))).transpose(1, 2)))
        hidden = hidden.masked_fill(~mask.unsqueeze(-1), 0.0)
        hidden = self.dropout(self.norm2(F.relu(self.conv2(hidden.transpose(1, 2))).transpose(1, 2)))
        return self.head(hidden).squeeze(-1).masked_fill(~mask, 0.0)


class ScalarEmbedding(nn.Module):
    """Embeds a per-token scalar (normalised pitch or energy) with a 1-D convolution (FastPitch)."""

    def __init__(self, hidden_size: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(1, hidden_size, kernel_size, padding=kernel_size // 2)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """values ``(B, N)`` -> ``(B, N, H)``."""
        return self.conv(values.unsqueeze(1)).transpose(1, 2)


def regulate_length(hidden: torch.Tensor, durations: torch.Tensor, max_frames: int | None = None):
    """Repeat each token's hidden state by its duration (FastSpeech's length regulator).

    Args:
        hidden: ``(B, N, H)`` token states.
        durations: ``(B, N)`` integer frames per token (0 at padding).
        max_frames: output length; defaults to the longest total duration.

    Returns:
        ``(B, T, H)`` frame states (zero beyond each item's length) and ``(B,)`` frame counts.
    """
    durations = durations.long().clamp(min=0)
    frame_counts = durations.sum(dim=1)
    total = int(frame_counts.max().item()) if max_frames is None else max_frames
    total = max(total, 1)
    ends = durations.cumsum(dim=1)
    frames = torch.arange(total, device=hidden.device).unsqueeze(0).expand(hidden.shape[0], -1)
    token_index = torch.searchsorted(ends, frames.contiguous(), right=True).clamp(max=hidden.shape[1] - 1)
    expanded = torch.gather(hidden, 1, token_index.unsqueeze(-1).expand(-1, -1, hidden.shape[2]))
    valid = frames < frame_counts.unsqueeze(1)
    return expanded.masked_fill(~valid.unsqueeze(-1), 0.0), frame_counts


class VoiceEncoder(nn.Module):
    """Support-set encoder: a few clips' mels -> a voice (values for the adapted parameter set) in one pass.

    Convolutions over each clip's mel frames, a masked mean over frames, a mean over clips, then a head
    that emits a *change* to each adapted parameter. The head starts at zero, so before training the
    encoder returns the meta-learned initial voice unchanged.
    """

    def __init__(self, config, adapted_shapes: dict[str, torch.Size]):
        super().__init__()
        hidden = config.voice_encoder_hidden_size
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(config.num_mel_bins, hidden, 5, padding=2),
                nn.Conv1d(hidden, hidden, 5, padding=2),
                nn.Conv1d(hidden, hidden, 5, padding=2),
            ]
        )
        self.names = list(adapted_shapes)
        self.shapes = [tuple(shape) for shape in adapted_shapes.values()]
        self.head = nn.Linear(hidden, sum(math.prod(shape) for shape in self.shapes))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, mels: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """mels ``(K, T, M)`` of K support clips, mask ``(K, T)`` -> ``{name: change with the parameter's shape}``."""
        mask = mask.bool()
        hidden = mels.transpose(1, 2)
        for conv in self.convs:
            hidden = F.relu(conv(hidden)).masked_fill(~mask.unsqueeze(1), 0.0)
        pooled = hidden.sum(dim=2) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return split_flat_changes(self.head(pooled.mean(dim=0)), self.names, self.shapes)


def split_flat_changes(flat: torch.Tensor, names: list[str], shapes: list[tuple]) -> dict[str, torch.Tensor]:
    """One flat vector ``(sum of sizes,)`` -> ``{name: slice viewed with its shape}``, in ``names`` order."""
    changes, offset = {}, 0
    for name, shape in zip(names, shapes):
        size = math.prod(shape)
        changes[name] = flat[offset : offset + size].view(shape)
        offset += size
    return changes
