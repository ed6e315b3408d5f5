"""A content term for the inner loop: the adapted voice keeps its phonemes readable by the model's own aligner.

Few-shot steps fit the frame mel L1 of a handful of clips. On held-out text they raise the recogniser's word
error rate: the voice gets closer to the speaker and harder to understand (BENCHMARKS.md, the naturalness bar).
The model already owns a phoneme reader: its aligner (RAD-TTS style) scores every mel frame against every
token of the transcript, and it was trained on the corpus to put each frame on its own token. The term asks the
decoder's predicted support mels to stay readable by it: per valid frame, the negative log posterior of the
token the frame belongs to (the support batch's durations), among the utterance's tokens, without the
alignment prior::

    term = weight * mean_{b, t valid} -log softmax_n(aligner_logits(predicted)[b, t, :])[token(b, t)]

The aligner and the token embeddings are the model's own and are not adapted; gradients reach the predicted
mels, so the adapted set, only. Pass it as ``adapt_parameters(loss_term=content_term(model, weight))``;
``benchmarks/adaptation_rules.py`` measures it with a ``+ctW`` rule suffix. Measured on the held-out test speakers
(BENCHMARKS.md) it trades similarity for intelligibility at a worse rate than smaller steps do, so the bundled
checkpoint does not use it.
"""

from __future__ import annotations

import torch

from ..modeling_alignment import NEG_INF
from ..modeling_metatts import _durations_to_path
from .global_variance import checked_term_weight


def frame_token_nll(model, mels: torch.Tensor, input_ids: torch.Tensor, text_mask: torch.Tensor,
                    durations: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of the aligner's negative log posterior of each frame's own token.

    Args:
        model: a ``MetaTTSForTextToSpeech`` (its ``aligner`` and ``embed_tokens`` are used as they are).
        mels: ``(B, T, M)`` log-mels (predicted or real).
        input_ids: ``(B, N)``; text_mask: ``(B, N)`` bool.
        durations: ``(B, N)`` frames per token, summing to each clip's valid frames.
        mel_mask: ``(B, T)`` bool, the valid frames.

    Returns:
        A scalar: nats per frame (0 = every frame read as its own token with certainty).

    Raises:
        ValueError: shapes disagree, or no frame is valid.
    """
    if mels.dim() != 3 or mels.shape[:2] != mel_mask.shape or input_ids.shape != durations.shape:
        raise ValueError(f"mels (B, T, M) {tuple(mels.shape)}, mel_mask (B, T) {tuple(mel_mask.shape)}, input_ids "
                         f"(B, N) {tuple(input_ids.shape)} and durations (B, N) {tuple(durations.shape)} disagree")
    if not bool(mel_mask.any()):
        raise ValueError("no valid frame in mel_mask: the content term needs at least one")
    path = _durations_to_path(durations.long(), mels.shape[1]).to(mels.dtype)  # (B, T, N): each frame's own token
    # The aligner and the token embeddings are a fixed critic: gradients reach the mels, never the reader, so a
    # meta-objective with this term cannot teach the aligner to read anything.
    reader = {name: weight.detach() for name, weight in model.aligner.named_parameters()}
    logits, _ = torch.func.functional_call(
        model.aligner, reader,
        (model.embed_tokens(input_ids).detach(), mels, text_mask,
         torch.zeros(mels.shape[0], mels.shape[1], input_ids.shape[1], device=mels.device, dtype=mels.dtype)))
    log_posterior = torch.log_softmax(logits.masked_fill(~text_mask.unsqueeze(1), NEG_INF), dim=-1)
    own = (log_posterior * path).sum(-1)  # (B, T)
    return -own.masked_select(mel_mask).mean()


def content_term(model, weight: float):
    """``term(model_output, batch) -> weight * frame_token_nll(...)`` of the output's predicted mels on the batch's
    tokens and the output's durations, for ``adapt_parameters(loss_term=...)``.

    Raises:
        ValueError: ``weight`` is negative or not finite.
    """
    weight = checked_term_weight("content_weight", weight)

    def term(out, batch) -> torch.Tensor:
        return weight * output_token_nll(model, out, batch)

    return term


def output_token_nll(model, out, batch) -> torch.Tensor:
    """:func:`frame_token_nll` of a training forward's predicted mels ``out.spectrogram`` ``(B, T, M)`` on ``batch``'s
    tokens, valid frames (``labels_attention_mask``) and the output's durations ``out.durations`` ``(B, N)``."""
    ids = batch["input_ids"]
    text_mask = batch["attention_mask"].bool() if "attention_mask" in batch else ids.ne(model.config.pad_token_id)
    mel_mask = batch.get("labels_attention_mask")
    mels = out.spectrogram
    mel_mask = (torch.ones(mels.shape[:2], dtype=torch.bool, device=mels.device) if mel_mask is None
                else mel_mask.bool())
    return frame_token_nll(model, mels, ids, text_mask, out.durations, mel_mask)
