"""A global-variance term for the inner loop: the adapted voice keeps the spectral dynamics of its target.

Few-shot adaptation minimises the frame mel L1 of a handful of clips. Moved only through the adapted set, the
decoder answers the L1 loss with a flatter output: on the held-out test speakers the per-bin standard
deviation over time of the predicted mels (the "global variance" of statistical parametric synthesis) falls
after the steps, below both the start's and the real recordings', and the recogniser's word error rate rises.
The term here compares, per support utterance and mel bin, the log standard deviation over the valid frames of
the predicted mels with that of the target mels::

    term = weight * mean_{b, m} | log sd_t(predicted[b, :, m]) - log sd_t(target[b, :, m]) |

so the steps are charged for the dynamics they remove, not only for the frames they miss. Gradients reach the
prediction only. The inner loop uses it with ``MetaLearnerConfig.global_variance_weight > 0`` (``model.adapt``
and ``adapt_parameters`` read it from the checkpoint's meta-learner; ``hf-metatts bundle
--global-variance-weight`` sets it).
"""

from __future__ import annotations

import torch

#: floor of the standard deviation before its log (log-mel units), so silent bins do not dominate
GLOBAL_VARIANCE_FLOOR = 1e-3


def global_variance(mels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-utterance, per-bin standard deviation over the valid frames.

    Args:
        mels: ``(B, T, M)`` log-mels.
        mask: ``(B, T)``, 1 on valid frames (default: every frame valid).

    Returns:
        ``(B, M)`` standard deviations (population, over the valid frames of each utterance).

    Raises:
        ValueError: ``mels`` is not 3-D, the mask's shape is not ``(B, T)``, or an utterance has no valid frame.
    """
    if mels.dim() != 3:
        raise ValueError(f"mels must be (B, T, M); got shape {tuple(mels.shape)}")
    if mask is None:
        mask = torch.ones(mels.shape[:2], dtype=mels.dtype, device=mels.device)
    if tuple(mask.shape) != tuple(mels.shape[:2]):
        raise ValueError(f"mask must be (B, T) = {tuple(mels.shape[:2])}; got shape {tuple(mask.shape)}")
    weights = mask.to(mels.dtype).unsqueeze(-1)
    frames = weights.sum(dim=1)
    if bool((frames == 0).any()):
        raise ValueError("an utterance has no valid frame (its mask is all zero): drop it from the batch")
    mean = (mels * weights).sum(dim=1) / frames
    variance = (((mels - mean.unsqueeze(1)) ** 2) * weights).sum(dim=1) / frames
    return variance.clamp_min(0).sqrt()


def global_variance_loss(predicted: torch.Tensor, target: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of log global variances ``(B, M)`` of predicted and target mels ``(B, T, M)``;
    the target's is a constant."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted mels {tuple(predicted.shape)} and targets {tuple(target.shape)} differ in shape")
    with torch.no_grad():
        reference = global_variance(target.to(predicted.dtype), mask).clamp_min(GLOBAL_VARIANCE_FLOOR).log()
    ours = global_variance(predicted, mask).clamp_min(GLOBAL_VARIANCE_FLOOR).log()
    return (ours - reference).abs().mean()


def checked_term_weight(name: str, weight: float) -> float:
    """``weight`` as a float; ValueError naming ``name`` unless it is a finite number >= 0 (the weight of a term in
    the inner loop's support loss)."""
    weight = float(weight)
    if not weight >= 0 or weight == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {weight}")
    return weight


def global_variance_term(weight: float):
    """``term(model_output, batch) -> weight * global_variance_loss(...)`` of the output's mels against the
    batch's ``labels`` (masked by ``labels_attention_mask``), for ``adapt_parameters(loss_term=...)``.

    Raises:
        ValueError: ``weight`` is negative or not finite.
    """
    weight = checked_term_weight("global_variance_weight", weight)

    def term(out, batch) -> torch.Tensor:
        return weight * global_variance_loss(out.spectrogram, batch["labels"], batch.get("labels_attention_mask"))

    return term
