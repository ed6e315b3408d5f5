"""Unsupervised text-to-speech alignment (RAD-TTS, Badlani et al. 2022): a soft aligner between phoneme
embeddings and mel frames, a beta-binomial prior, monotonic alignment search (Glow-TTS) for hard
durations, the forward-sum (CTC) loss and the binarisation loss.

Shapes: B batch, N phoneme tokens, T mel frames, M mel bins.
This file travels with saved checkpoints (remote code): it imports only torch.
"""

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

NEG_INF = -1e9


class AlignmentEncoder(nn.Module):
    """Soft alignment between tokens and frames from the L2 distance of learned keys and queries."""

    def __init__(self, text_dim: int, num_mel_bins: int, hidden_size: int, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.key_proj = nn.Sequential(
            nn.Conv1d(text_dim, 2 * text_dim, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * text_dim, hidden_size, 1)
        )
        self.query_proj = nn.Sequential(
            nn.Conv1d(num_mel_bins, 2 * num_mel_bins, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * num_mel_bins, num_mel_bins, 1),
            nn.ReLU(),
            nn.Conv1d(num_mel_bins, hidden_size, 1),
        )

    def forward(self, text: torch.Tensor, mels: torch.Tensor, text_mask: torch.Tensor, log_prior: torch.Tensor):
        """Args: text ``(B, N, D)``, mels ``(B, T, M)``, text_mask ``(B, N)`` bool, log_prior ``(B, T, N)``.

        Returns:
            logits ``(B, T, N)``: raw alignment scores (for the forward-sum loss);
            soft ``(B, T, N)``: attention over tokens per frame, prior applied (rows sum to 1).
        """
        keys = self.key_proj(text.transpose(1, 2))  # (B, A, N)
        queries = self.query_proj(mels.transpose(1, 2))  # (B, A, T)
        # ||q - k||^2 = ||q||^2 + ||k||^2 - 2 q.k: one batched matmul instead of a (B, A, T, N) difference tensor
        cross = torch.bmm(queries.transpose(1, 2), keys)  # (B, T, N)
        distance = queries.pow(2).sum(1).unsqueeze(2) + keys.pow(2).sum(1).unsqueeze(1) - 2.0 * cross
        distance = distance.clamp(min=0.0)  # (B, T, N)
        logits = -self.temperature * distance
        masked = logits.masked_fill(~text_mask.unsqueeze(1), NEG_INF)
        soft = torch.softmax(torch.log_softmax(masked, dim=-1) + log_prior, dim=-1)
        soft = soft.masked_fill(~text_mask.unsqueeze(1), 0.0)
        return logits, soft


@lru_cache(maxsize=4096)
def _beta_binomial_log_prior(num_tokens: int, num_frames: int, scale: float) -> torch.Tensor:
    """log P(token | frame) ``(T, N)``: a beta-binomial prior that favours the diagonal."""
    tokens = torch.arange(num_tokens, dtype=torch.float64)
    frames = torch.arange(1, num_frames + 1, dtype=torch.float64).unsqueeze(1)
    alpha = scale * frames
    beta = scale * (num_frames + 1 - frames)
    n = num_tokens - 1

    def log_beta(a, b):
        return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

    log_choose = math.lgamma(n + 1) - torch.lgamma(tokens + 1) - torch.lgamma(n - tokens + 1)
    log_pmf = log_choose + log_beta(tokens + alpha, n - tokens + beta) - log_beta(alpha, beta)
    return log_pmf.float()


def beta_binomial_log_prior(text_lengths, mel_lengths, max_tokens: int, max_frames: int, scale: float):
    """Batched log prior ``(B, T, N)``; zero outside each item's (frames, tokens) box."""
    prior = torch.zeros(len(text_lengths), max_frames, max_tokens)
    if scale <= 0:
        return prior
    for index, (tokens, frames) in enumerate(zip(text_lengths.tolist(), mel_lengths.tolist())):
        prior[index, :frames, :tokens] = _beta_binomial_log_prior(int(tokens), int(frames), float(scale))
    return prior


@torch.no_grad()
def monotonic_alignment_search(log_probs: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor,
                               skippable: torch.Tensor | None = None):
    """The most likely monotonic alignment (each frame to one token, tokens in order).

    Args:
        log_probs: ``(B, N, T)`` log-likelihood of token n at frame t.
        text_lengths: ``(B,)`` tokens per item; mel_lengths: ``(B,)`` frames per item (>= tokens that must sound).
        skippable: ``(B, N)`` bool, tokens that may take no frame at all (stress marks, spaces, punctuation:
            the tokens the corpus's phone timings give 0 frames unless a pause lies there). None: every token
            takes at least one frame (Glow-TTS).

    Returns:
        ``(B, N, T)`` 0/1 path.
    """
    batch, num_tokens, num_frames = log_probs.shape
    device = log_probs.device
    token_index = torch.arange(num_tokens, device=device).unsqueeze(0)
    valid = token_index < text_lengths.view(-1, 1)
    log_probs = log_probs.masked_fill(~valid.unsqueeze(-1), NEG_INF)
    skippable = (torch.zeros_like(valid) if skippable is None else skippable.to(device).bool()) & valid
    # chains[r - 1][b, n]: tokens n-r .. n-1 may all be skipped, so token n-r-1 can pass straight to token n
    chains, chain = [], torch.ones_like(valid)
    for shift in range(1, num_tokens):
        chain = chain & F.pad(skippable, (shift, 0), value=False)[:, :num_tokens]
        if not chain.any():
            break
        chains.append(chain)
    # a path may start on any token whose predecessors may all be skipped, and end on any token whose
    # successors may all be skipped
    all_before = torch.cat([torch.ones_like(valid[:, :1]), torch.cumprod(skippable.long(), 1)[:, :-1].bool()], 1)
    after = (skippable | ~valid).flip(1).long().cumprod(1).flip(1).bool()
    all_after = torch.cat([after[:, 1:], torch.ones_like(valid[:, :1])], 1) & valid
    value = log_probs[:, :, 0].masked_fill(~all_before, NEG_INF)
    end_value = value.clone()
    last_frame = (mel_lengths - 1).view(-1, 1)
    came_from = torch.zeros(batch, num_tokens, num_frames, dtype=torch.uint8, device=device)  # tokens back
    for frame in range(1, num_frames):
        best, back = value, torch.zeros_like(came_from[:, :, 0])
        for skipped in range(len(chains) + 1):
            source = F.pad(value[:, : num_tokens - skipped - 1], (skipped + 1, 0), value=NEG_INF)
            if skipped:
                source = source.masked_fill(~chains[skipped - 1], NEG_INF)
            better = source > best
            best = torch.where(better, source, best)
            back = back.masked_fill(better, skipped + 1)
        came_from[:, :, frame] = back
        value = (best + log_probs[:, :, frame]).masked_fill(
            (token_index > frame) & ~skippable.any(1, keepdim=True), NEG_INF)
        end_value = torch.where(last_frame == frame, value, end_value)
    path = torch.zeros(batch, num_tokens, num_frames, dtype=log_probs.dtype, device=device)
    current = end_value.masked_fill(~all_after, 2 * NEG_INF).argmax(1)
    rows = torch.arange(batch, device=device)
    for frame in range(num_frames - 1, -1, -1):
        active = frame < mel_lengths
        path[rows[active], current[active], frame] = 1.0
        back = came_from[rows, current, frame].long() * active
        current = (current - back).clamp(min=0)
    return path


def duration_informed_search(log_probs: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor,
                             expected: torch.Tensor, weight: float, skippable: torch.Tensor | None = None,
                             max_duration: int | None = None) -> torch.Tensor:
    """The monotonic alignment that best trades the aligner's attention against expected durations.

    A segmental (semi-Markov) search: it maximises, over frames per token ``d`` summing to each clip's length,
    ``sum_n [sum of log_probs over token n's frames] - weight * sum_n (log1p(d_n) - log1p(expected_n))^2``. With
    ``weight=0`` it finds the path `monotonic_alignment_search` finds (the same score). Every token takes at
    least one frame, tokens marked in ``skippable`` at least none.

    Args:
        log_probs: ``(B, N, T)`` log-likelihood of token n at frame t.
        text_lengths: ``(B,)`` tokens per item; mel_lengths: ``(B,)`` frames per item.
        expected: ``(B, N)`` expected frames per token (any scale: e.g. a duration predictor's, stretched to the
            clip's length).
        weight: how much a token's log-duration may stray from its expected one, against the attention.
        skippable: ``(B, N)`` bool, tokens that may take no frame (see `monotonic_alignment_search`).
        max_duration: longest duration searched (default: the clip's length); an item with no path under it is
            searched again without the cap.

    Returns:
        ``(B, N)`` long frames per token (0 past ``text_lengths``), each row summing to ``mel_lengths``.
    """
    batch, num_tokens, num_frames = log_probs.shape
    device = log_probs.device
    cap = num_frames if max_duration is None else max(1, min(num_frames, int(max_duration)))
    # cumulative[b, n, t]: attention of token n summed over frames 0..t-1, in float64 where the device has it
    # (long sums are subtracted)
    precise = torch.float32 if device.type == "mps" else torch.float64
    cumulative = F.pad(log_probs.to(precise).cumsum(-1), (1, 0))  # (B, N, T + 1)
    # windows of the last cap + 1 frame boundaries before each end frame, longest duration first
    lengths = torch.arange(cap, -1, -1, device=device)  # (D + 1,)
    reachable = torch.arange(num_frames + 1, device=device).view(-1, 1) >= lengths.view(1, -1)  # (T + 1, D + 1)
    log_lengths = torch.log1p(lengths.to(precise)).view(1, 1, -1)
    minimum = torch.ones(batch, num_tokens, dtype=torch.long, device=device)
    if skippable is not None:
        minimum = minimum.masked_fill(skippable.to(device).bool(), 0)
    value = torch.full((batch, num_frames + 1), 2 * NEG_INF, dtype=precise, device=device)
    value[:, 0] = 0.0
    chosen = torch.zeros(batch, num_tokens, num_frames + 1, dtype=torch.long, device=device)
    for token in range(num_tokens):
        active = (token < text_lengths).view(-1, 1)
        sums = cumulative[:, token]  # (B, T + 1)
        starts = F.pad(sums, (cap, 0)).unfold(1, cap + 1, 1)  # (B, T + 1, D + 1): sums at end - length
        before = F.pad(value, (cap, 0), value=2 * NEG_INF).unfold(1, cap + 1, 1)
        stray = (log_lengths - torch.log1p(expected[:, token].to(precise).clamp(min=0)).view(-1, 1, 1)) ** 2
        score = before + (sums.unsqueeze(-1) - starts) - weight * stray
        allowed = reachable.unsqueeze(0) & (lengths.view(1, 1, -1) >= minimum[:, token].view(-1, 1, 1))
        best, index = score.masked_fill(~allowed, 2 * NEG_INF).max(-1)
        value = torch.where(active, best, value)
        chosen[:, token] = lengths[index] * active
    rows = torch.arange(batch, device=device)
    durations = torch.zeros(batch, num_tokens, dtype=torch.long, device=device)
    frame = mel_lengths.long().clone()
    for token in range(num_tokens - 1, -1, -1):
        length = chosen[rows, token, frame]
        durations[:, token] = length
        frame = (frame - length).clamp(min=0)
    stuck = value[rows, mel_lengths.long()] < NEG_INF  # no path with durations up to the cap
    if cap < num_frames and bool(stuck.any()):
        durations[stuck] = duration_informed_search(log_probs[stuck], text_lengths[stuck], mel_lengths[stuck],
                                                    expected[stuck], weight,
                                                    None if skippable is None else skippable[stuck])
    return durations


def forward_sum_loss(logits: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor, blank_logit=-1.0,
                     reduction: str = "mean"):
    """RAD-TTS forward-sum loss: CTC over tokens 1..N with a blank, marginalising all monotonic alignments.

    logits ``(B, T, N)`` raw scores -> per-token negative log-likelihood: its mean over the batch (scalar), or
    ``(B,)`` per clip with ``reduction="none"``.
    """
    batch, num_frames, num_tokens = logits.shape
    token_index = torch.arange(num_tokens, device=logits.device)
    padded = logits.masked_fill(token_index.view(1, 1, -1) >= text_lengths.view(-1, 1, 1), NEG_INF)
    padded = F.pad(padded, (1, 0), value=blank_logit)
    log_probs = torch.log_softmax(padded, dim=-1).transpose(0, 1)  # (T, B, N+1)
    targets = (token_index + 1).unsqueeze(0).expand(batch, -1)
    if reduction == "none":
        per_clip = F.ctc_loss(log_probs, targets, mel_lengths, text_lengths, blank=0, reduction="none",
                              zero_infinity=True)
        return per_clip / text_lengths.clamp(min=1).to(per_clip.dtype)
    return F.ctc_loss(log_probs, targets, mel_lengths, text_lengths, blank=0, reduction="mean", zero_infinity=True)


def bin_loss(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Pushes the soft alignment towards the hard one: ``-mean log soft`` on the hard path. Both ``(B, T, N)``."""
    chosen = soft.clamp(min=1e-12).log() * hard
    return -chosen.sum() / hard.sum().clamp(min=1.0)
