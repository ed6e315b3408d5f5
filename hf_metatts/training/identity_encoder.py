"""Train the speaker-identity encoder of the meta-objective (`hf_metatts.meta.identity`) on a prepared corpus.

The encoder classifies the training speakers from random mel segments with an additive-margin softmax
(AM-softmax); its pooled embedding is what the meta-objective compares. It is measured on speakers it never
saw (the validation split): identification of each utterance among all validation speakers from 5-utterance
centroids, and the verification EER of the same trials.

    hf-metatts train-identity-encoder --dataset data/voices-prepared --out outputs/identity_encoder
"""


import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..meta.identity import IdentityEncoderConfig, SpeakerIdentityEncoder, save_identity_encoder
from .hardware import hardware_description

logger = logging.getLogger(__name__)


class IdentityEncoderTrainingError(ValueError):
    """An identity-encoder training setting or input cannot work; the message says what to change."""


@dataclass
class IdentityEncoderTrainingArguments:
    """Every constant of an identity-encoder training run."""

    dataset_path: str = "data/voices-prepared"
    output_dir: str = "outputs/identity_encoder"
    train_split: str = "train"
    validation_split: str = "validation"
    task_column: str = "speaker_id"
    max_steps: int = 2000
    speakers_per_batch: int = 32
    utterances_per_speaker: int = 2
    segment_frames: int = 120  # 1.9 s of mel frames (hop 256 at 16 kHz)
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    margin: float = 0.2
    scale: float = 30.0
    enrol_utterances: int = 5
    log_every: int = 100
    seed: int = 0
    threads: int = 0  # torch threads (0: leave torch's default)

    def __post_init__(self):
        for name in ("max_steps", "speakers_per_batch", "utterances_per_speaker", "segment_frames",
                     "enrol_utterances", "log_every"):
            if getattr(self, name) < 1:
                raise IdentityEncoderTrainingError(f"{name}={getattr(self, name)} must be at least 1.")
        if not 0 <= self.margin < 1 or self.scale <= 0 or self.learning_rate <= 0:
            raise IdentityEncoderTrainingError(
                f"need 0 <= margin < 1, scale > 0 and learning_rate > 0; got {self.margin}, {self.scale}, "
                f"{self.learning_rate}."
            )


def _load_mels(dataset, task_column: str) -> tuple[list[torch.Tensor], np.ndarray, list[str]]:
    """Every row's log-mels ``(T, M)`` as float16 tensors, its speaker index, and the speaker names."""
    names = sorted(set(dataset[task_column]))
    index = {name: i for i, name in enumerate(names)}
    speakers = np.array([index[s] for s in dataset[task_column]])
    rows = dataset.with_format("numpy", columns=["labels"])
    mels = [torch.from_numpy(np.asarray(rows[i]["labels"], dtype=np.float32)).half() for i in range(len(rows))]
    return mels, speakers, names


def _crop_batch(mels, rows, frames: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``frames``-long crops of the given rows: ``(B, frames, M)`` and the mask of real frames."""
    dim = mels[rows[0]].shape[1]
    batch = torch.zeros(len(rows), frames, dim)
    mask = torch.zeros(len(rows), frames, dtype=torch.bool)
    for b, row in enumerate(rows):
        mel = mels[row]
        start = int(rng.integers(0, max(1, mel.shape[0] - frames + 1)))
        piece = mel[start:start + frames].float()
        batch[b, :piece.shape[0]] = piece
        mask[b, :piece.shape[0]] = True
    return batch, mask


@torch.no_grad()
def embed_all(encoder: SpeakerIdentityEncoder, mels: list[torch.Tensor], batch_size: int = 32) -> torch.Tensor:
    """Embeddings ``(N, D)`` of whole utterances, batched by length."""
    order = sorted(range(len(mels)), key=lambda i: mels[i].shape[0])
    out = torch.zeros(len(mels), encoder.config.embedding_dim)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        longest = max(mels[r].shape[0] for r in rows)
        batch = torch.zeros(len(rows), longest, mels[rows[0]].shape[1])
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for b, r in enumerate(rows):
            batch[b, :mels[r].shape[0]] = mels[r].float()
            mask[b, :mels[r].shape[0]] = True
        out[rows] = encoder(batch, mask)
    return out


def unseen_speaker_scores(encoder, mels, speakers: np.ndarray, enrol: int) -> dict[str, float]:
    """Identification accuracy and EER on speakers the encoder never trained on.

    Each speaker's first ``enrol`` utterances make its centroid; each of its other utterances is a trial
    against every centroid (identification: the nearest centroid must be its own).
    """
    from ..evaluation.speaker import equal_error_rate

    embeddings = embed_all(encoder, mels)
    labels = sorted(set(speakers.tolist()))
    centroids, trials, truth = [], [], []
    for label in labels:
        rows = np.flatnonzero(speakers == label)
        if len(rows) <= enrol:
            continue
        centroids.append(F.normalize(embeddings[rows[:enrol]].mean(0), dim=0))
        trials.extend(rows[enrol:].tolist())
        truth.extend([len(centroids) - 1] * (len(rows) - enrol))
    if len(centroids) < 2:
        raise IdentityEncoderTrainingError(
            f"the validation split needs at least 2 speakers with more than {enrol} utterances to measure the encoder"
        )
    scores = embeddings[trials] @ torch.stack(centroids).T  # (trials, speakers)
    truth_t = torch.tensor(truth)
    accuracy = float((scores.argmax(1) == truth_t).float().mean())
    is_target = torch.zeros_like(scores, dtype=torch.bool)
    is_target[torch.arange(len(truth)), truth_t] = True
    eer = equal_error_rate(scores.flatten().numpy(), is_target.flatten().numpy()).eer
    return {"identification": accuracy, "eer": float(eer), "speakers": len(centroids), "trials": len(trials)}


class _AMSoftmax(nn.Module):
    """Additive-margin softmax over ``classes`` speakers: ``CE(s * (cos - m * onehot))``."""

    def __init__(self, dim: int, classes: int, margin: float, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cosine = embeddings @ F.normalize(self.weight, dim=-1).T
        logits = self.scale * (cosine - self.margin * F.one_hot(labels, cosine.shape[1]))
        return F.cross_entropy(logits, labels), (cosine.argmax(1) == labels).float().mean()


def train_identity_encoder(args: IdentityEncoderTrainingArguments,
                           config: IdentityEncoderConfig | None = None) -> dict:
    """Train, measure on the validation speakers, save to ``args.output_dir``; returns the summary."""
    from datasets import load_from_disk

    started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    corpus = load_from_disk(args.dataset_path)
    for split in (args.train_split, args.validation_split):
        if split not in corpus or "labels" not in corpus[split].column_names:
            raise IdentityEncoderTrainingError(
                f"{args.dataset_path} has no prepared split {split!r} with a 'labels' (log-mel) column: run "
                "`hf-metatts prepare-corpus` on the corpus first."
            )
    mels, speakers, names = _load_mels(corpus[args.train_split], args.task_column)
    val_mels, val_speakers, val_names = _load_mels(corpus[args.validation_split], args.task_column)
    if len(names) < args.speakers_per_batch:
        raise IdentityEncoderTrainingError(
            f"speakers_per_batch={args.speakers_per_batch} exceeds the {len(names)} training speakers; lower it."
        )
    config = config or IdentityEncoderConfig(num_mel_bins=mels[0].shape[1])
    encoder = SpeakerIdentityEncoder(config)
    head = _AMSoftmax(config.embedding_dim, len(names), args.margin, args.scale)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, args.max_steps) / args.max_steps)))
    by_speaker = [np.flatnonzero(speakers == s) for s in range(len(names))]
    logger.info("identity encoder: %d training speakers (%d clips), %d validation speakers", len(names), len(mels),
                len(val_names))
    history = []
    for step in range(1, args.max_steps + 1):
        chosen = rng.choice(len(names), size=args.speakers_per_batch, replace=False)
        rows = [int(r) for s in chosen for r in rng.choice(by_speaker[s], size=args.utterances_per_speaker)]
        batch, mask = _crop_batch(mels, rows, args.segment_frames, rng)
        labels = torch.from_numpy(np.repeat(chosen, args.utterances_per_speaker))
        loss, accuracy = head(encoder(batch, mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        schedule.step()
        if step % args.log_every == 0 or step == args.max_steps:
            history.append({"step": step, "loss": float(loss.detach()), "train_accuracy": float(accuracy)})
            logger.info("step %d: loss %.3f, batch accuracy %.3f", step, float(loss.detach()), float(accuracy))
    encoder.eval()
    validation = unseen_speaker_scores(encoder, val_mels, val_speakers, args.enrol_utterances)
    summary = {"arguments": asdict(args), "training_speakers": len(names), "training_clips": len(mels),
               "validation": validation, "history": history, "wall_seconds": round(time.monotonic() - started, 1),
               "hardware": hardware_description()}
    logger.info("validation (unseen speakers): identification %.3f, EER %.3f over %d speakers",
                validation["identification"], validation["eer"], validation["speakers"])
    save_identity_encoder(encoder, args.output_dir, extra=summary)
    return summary
