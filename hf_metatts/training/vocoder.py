"""Train the iSTFT-head neural vocoder (`hf_metatts.modeling_vocoder.ISTFTVocoder`) on a corpus's audio.

The vocoder learns log-mel -> waveform from random segments of real clips, with a log-mel L1 loss and a
multi-resolution STFT loss (no discriminator: it trains in minutes on a CPU; see BENCHMARKS.md for the
measured quality against Griffin-Lim). The output folder holds ``vocoder.safetensors`` + ``config.json``
(a `MetaTTSConfig` with ``vocoder_type="istft"``), ``training_log.jsonl`` and ``training_summary.json``
(steps, wall time, hardware, final losses). `attach_trained_vocoder` puts it into a model.

    hf-metatts train-vocoder --dataset data/voices --out outputs/vocoder --max-steps 6000

With ``aligned_model`` the vocoder learns from that checkpoint's own predicted log-mels instead, each aligned with
the recording it should become (ground-truth-aligned fine-tuning, `hf_metatts.training.vocoder_aligned`); with
``init_from`` it starts from a trained vocoder (a vocoder folder or a checkpoint that owns one).
"""

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..configuration_metatts import MetaTTSConfig
from ..feature_extraction_metatts import MetaTTSFeatureExtractor
from ..modeling_vocoder import ISTFTVocoder
from .hardware import hardware_description
from .stft_losses import batched_log_mel, multi_resolution_stft_loss

logger = logging.getLogger(__name__)

VOCODER_WEIGHTS_NAME = "vocoder.safetensors"
CHECKPOINT_MODEL_WEIGHTS = "model.safetensors"  # a saved MetaTTSForTextToSpeech
CHECKPOINT_NAME = "vocoder_checkpoint.pt"
SUMMARY_NAME = "training_summary.json"
LOG_NAME = "training_log.jsonl"
#: The largest STFT of the loss (2048 points) reflect-pads 1,024 samples: a segment must be longer (5 * 256).
MIN_SEGMENT_FRAMES = 5


class VocoderTrainingError(ValueError):
    """A vocoder training setting or input cannot work; the message says what to change."""


@dataclass
class VocoderTrainingArguments:
    """Every constant of a vocoder training run."""

    dataset_path: str = "data/voices"
    output_dir: str = "outputs/vocoder"
    train_split: str = "train"
    validation_split: str = "validation"
    max_utterances: int = 2000  # clips of the train split held in memory (spread over all its speakers)
    validation_utterances: int = 16
    segment_frames: int = 32  # mel frames per training segment (32 * hop = 8,192 samples = 0.51 s)
    batch_size: int = 16
    max_steps: int = 6000
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mel_loss_weight: float = 1.0
    stft_loss_weight: float = 1.0
    hidden_size: int = 192
    intermediate_size: int = 576
    layers: int = 6
    logging_steps: int = 50
    eval_steps: int = 500
    save_steps: int = 500
    seed: int = 0
    threads: int | None = None
    max_wall_seconds: float | None = None  # stop early (and save) when this much time has passed
    init_from: str | None = None  # start from this trained vocoder (folder or checkpoint); its sizes win
    aligned_model: str | None = None  # train on this checkpoint's adapted, teacher-forced log-mels (GTA)
    prepared_dataset_path: str | None = None  # the prepared corpus of dataset_path (default: "<dataset>-prepared")
    aligned_shots: int = 5  # support clips each speaker's voice is adapted to, as model.adapt does
    aligned_clips_per_speaker: int = 8  # clips each adapted voice reads for training
    aligned_validation_clips_per_speaker: int = 2  # the same for the validation speakers
    aligned_start_fraction: float = 0.0  # share of those clips read with the voice before the steps (zero-shot)
    pairs_cache: str | None = None  # a folder that keeps the aligned pairs' log-mels between runs (default: none)

    def validate(self) -> None:
        for name in ("max_utterances", "segment_frames", "batch_size", "max_steps", "hidden_size",
                     "intermediate_size", "layers", "logging_steps", "eval_steps", "save_steps", "aligned_shots",
                     "aligned_clips_per_speaker", "aligned_validation_clips_per_speaker"):
            if getattr(self, name) < 1:
                raise VocoderTrainingError(f"{name}={getattr(self, name)} must be at least 1.")
        if self.segment_frames < MIN_SEGMENT_FRAMES:
            raise VocoderTrainingError(
                f"segment_frames={self.segment_frames} is too short for the 2048-point STFT loss: use at least "
                f"{MIN_SEGMENT_FRAMES} frames (the default is 32)."
            )
        if not 0 < self.learning_rate < 1:
            raise VocoderTrainingError(f"learning_rate={self.learning_rate} must lie in (0, 1).")
        if not 0.0 <= self.aligned_start_fraction <= 1.0:
            raise VocoderTrainingError(f"aligned_start_fraction={self.aligned_start_fraction} must lie in [0, 1].")
        for name in ("init_from", "aligned_model"):
            folder = getattr(self, name)
            if folder is not None and not os.path.isdir(folder):
                raise VocoderTrainingError(f"{name}={folder} is not a folder: give a trained vocoder or checkpoint.")

    @property
    def prepared_path(self) -> str:
        """The prepared corpus the aligned pairs are read from."""
        return self.prepared_dataset_path or self.dataset_path.rstrip("/") + "-prepared"


def vocoder_config(args: VocoderTrainingArguments, base: MetaTTSConfig | None = None) -> MetaTTSConfig:
    """The audio constants of ``base`` (default: MetaTTSConfig()) with the vocoder sizes of ``args``."""
    values = (base or MetaTTSConfig()).to_dict()
    values.update(vocoder_type="istft", vocoder_hidden_size=args.hidden_size,
                  vocoder_intermediate_size=args.intermediate_size, vocoder_layers=args.layers)
    for key in ("model_type", "transformers_version", "architectures"):
        values.pop(key, None)
    return MetaTTSConfig(**values)


VOCODER_SIZES = {"hidden_size": "vocoder_hidden_size", "intermediate_size": "vocoder_intermediate_size",
                 "layers": "vocoder_layers"}


def sized_like(args: VocoderTrainingArguments, trained: MetaTTSConfig, source: str) -> VocoderTrainingArguments:
    """``args`` with the sizes of the trained vocoder it starts from (``init_from``: its weights decide them); a
    size of ``args`` that differs is logged as not used."""
    sizes = {name: getattr(trained, key) for name, key in VOCODER_SIZES.items()}
    ignored = {name: getattr(args, name) for name, size in sizes.items() if getattr(args, name) != size}
    if ignored:
        logger.warning("init_from=%s has the sizes %s; %s of this run are not used.", source, sizes, ignored)
    return replace(args, **sizes)


def load_clips(dataset_path: str, split: str, limit: int, seed: int, sampling_rate: int) -> list[np.ndarray]:
    """Up to ``limit`` decoded clips ``(samples,)`` float32 from a saved corpus split, spread evenly over rows."""
    from datasets import Audio, load_from_disk

    from ..data.audio import decode_audio

    if not os.path.isdir(dataset_path):
        raise VocoderTrainingError(f"No corpus at {dataset_path}: build one with `hf-metatts build-corpus`.")
    corpus = load_from_disk(dataset_path)
    if split not in corpus:
        raise VocoderTrainingError(f"{dataset_path} has no split {split!r} (splits: {list(corpus)}).")
    rows = corpus[split]
    if "audio" not in rows.column_names:
        raise VocoderTrainingError(f"Split {split!r} of {dataset_path} has no 'audio' column.")
    rows = rows.cast_column("audio", Audio(decode=False))
    order = np.random.default_rng(seed).permutation(len(rows))[:limit]
    return [decode_audio(rows[int(i)]["audio"], sampling_rate).astype(np.float32) for i in sorted(order)]


class SegmentSampler:
    """Random fixed-length waveform segments ``(B, segment_frames * hop)`` from in-memory clips."""

    def __init__(self, clips: list[np.ndarray], segment_samples: int, seed: int):
        self.clips = [c for c in clips if len(c) >= segment_samples]
        if not self.clips:
            raise VocoderTrainingError(f"No clip is at least {segment_samples} samples long: lower segment_frames.")
        self.segment_samples = segment_samples
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> torch.Tensor:
        batch = np.empty((batch_size, self.segment_samples), dtype=np.float32)
        for row, index in enumerate(self.rng.integers(len(self.clips), size=batch_size)):
            clip = self.clips[index]
            start = int(self.rng.integers(len(clip) - self.segment_samples + 1))
            batch[row] = clip[start: start + self.segment_samples]
        return torch.from_numpy(batch)


class VocoderLoss(torch.nn.Module):
    """Waveform ``(B, S)`` -> its log-mel ``(B, S // hop, M)`` (the vocoder input), and the training loss."""

    def __init__(self, config: MetaTTSConfig, args: VocoderTrainingArguments):
        super().__init__()
        self.config, self.args = config, args
        self.register_buffer("filters", MetaTTSFeatureExtractor.from_model_config(config).mel_filters())

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        c = self.config
        mel = batched_log_mel(waveform, self.filters, c.n_fft, c.hop_length, c.win_length, c.mel_floor)
        return mel[:, : waveform.shape[1] // c.hop_length]

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        mel = (self.log_mel(prediction) - self.log_mel(target)).abs().mean()
        stft = multi_resolution_stft_loss(prediction, target)
        loss = self.args.mel_loss_weight * mel + self.args.stft_loss_weight * stft
        return {"loss": loss, "mel_l1": mel.detach(), "stft": stft.detach()}


def _learning_rate(args: VocoderTrainingArguments, step: int) -> float:
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.min_learning_rate + (args.learning_rate - args.min_learning_rate) * cosine


@torch.no_grad()
def mean_losses(vocoder: ISTFTVocoder, criterion: VocoderLoss, pairs: list[tuple[torch.Tensor, torch.Tensor]]
                ) -> dict[str, float]:
    """Mean ``mel_l1`` and ``stft`` losses of the vocoder over whole clips: ``pairs`` of its input log-mel
    ``(1, T, M)`` and the audio ``(1, T * hop)`` it should give. The vocoder runs in eval mode and is left in the
    mode it was in."""
    was_training = vocoder.training
    vocoder.eval()
    totals = {"mel_l1": 0.0, "stft": 0.0}
    for mel, target in pairs:
        losses = criterion(vocoder(mel), target)
        for key in totals:
            totals[key] += float(losses[key])
    vocoder.train(was_training)
    return {key: value / max(1, len(pairs)) for key, value in totals.items()}


def validation_losses(vocoder: ISTFTVocoder, criterion: VocoderLoss, clips: list[np.ndarray]) -> dict[str, float]:
    """Mean losses of whole-clip resynthesis (real audio -> log-mel -> vocoder) over ``clips``."""
    hop = criterion.config.hop_length
    targets = [torch.from_numpy(clip[: (len(clip) // hop) * hop]).unsqueeze(0) for clip in clips]
    return mean_losses(vocoder, criterion, [(criterion.log_mel(target), target) for target in targets])


def save_vocoder(vocoder: ISTFTVocoder, config: MetaTTSConfig, output_dir: str) -> None:
    """``vocoder.safetensors`` + ``config.json`` (a `MetaTTSConfig` with the vocoder's sizes)."""
    os.makedirs(output_dir, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in vocoder.state_dict().items()},
              os.path.join(output_dir, VOCODER_WEIGHTS_NAME), metadata={"format": "pt"})
    config.to_json_file(os.path.join(output_dir, "config.json"))


def load_trained_vocoder(folder: str) -> ISTFTVocoder:
    """The vocoder saved by `train_vocoder` in ``folder``, or the trained vocoder a model checkpoint in ``folder``
    owns (``vocoder_type="istft"``, e.g. ``hf_metatts.DEFAULT_CHECKPOINT``): its ``vocoder.*`` weights."""
    config_path = os.path.join(folder, "config.json")
    weights = os.path.join(folder, VOCODER_WEIGHTS_NAME)
    if os.path.isfile(weights):
        config, state = MetaTTSConfig.from_json_file(config_path), load_file(weights)
    else:
        checkpoint = os.path.join(folder, CHECKPOINT_MODEL_WEIGHTS)
        config = MetaTTSConfig.from_json_file(config_path) if os.path.isfile(config_path) else None
        if not os.path.isfile(checkpoint) or config is None or config.vocoder_type != "istft":
            raise VocoderTrainingError(
                f"{folder} holds neither {VOCODER_WEIGHTS_NAME} nor a model checkpoint that owns a trained vocoder "
                "(vocoder_type='istft'): train one with `hf-metatts train-vocoder`, or give a bundled checkpoint."
            )
        prefix = "vocoder."
        state = {name[len(prefix):]: tensor for name, tensor in load_file(checkpoint).items()
                 if name.startswith(prefix)}
    vocoder = ISTFTVocoder(config)
    vocoder.load_state_dict(state, strict=True)
    return vocoder.eval()


def check_audio_settings(vocoder_config: MetaTTSConfig, model_config: MetaTTSConfig, folder: str) -> None:
    """Raise `VocoderTrainingError` unless the vocoder (from ``folder``) and the model share their mel definition."""
    for name in ("sampling_rate", "num_mel_bins", "hop_length", "n_fft", "win_length", "fmin", "fmax"):
        if getattr(vocoder_config, name) != getattr(model_config, name):
            raise VocoderTrainingError(
                f"The vocoder in {folder} was trained with {name}={getattr(vocoder_config, name)}, the model uses "
                f"{getattr(model_config, name)}: train a vocoder with the model's audio settings."
            )


def attach_trained_vocoder(model, folder: str) -> None:
    """Make ``model`` (a `MetaTTSForTextToSpeech`) own the vocoder in ``folder``; saved with the checkpoint."""
    vocoder = load_trained_vocoder(folder)
    source = vocoder.config
    check_audio_settings(source, model.config, folder)
    model.config.vocoder_type = "istft"
    model.config.vocoder_hidden_size = source.vocoder_hidden_size
    model.config.vocoder_intermediate_size = source.vocoder_intermediate_size
    model.config.vocoder_layers = source.vocoder_layers
    model.vocoder = ISTFTVocoder(model.config).to(model.device)
    model.vocoder.load_state_dict(vocoder.state_dict())
    model.vocoder.eval()


def resume_training_state(path: str, vocoder: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          counter: str) -> tuple[int, float]:
    """Load the vocoder and optimiser state saved at ``path`` (by :func:`save_training_state`) if there is one ->
    (the ``counter`` reached, e.g. steps, and the seconds already spent); (0, 0.0) for a new run."""
    if not os.path.isfile(path):
        return 0, 0.0
    state = torch.load(path, weights_only=True)
    vocoder.load_state_dict(state["vocoder"])
    optimizer.load_state_dict(state["optimizer"])
    logger.info("resumed %s at %s %d", path, counter, int(state[counter]))
    return int(state[counter]), float(state["elapsed"])


def save_training_state(path: str, vocoder: torch.nn.Module, optimizer: torch.optim.Optimizer, counter: str,
                        count: int, elapsed: float) -> None:
    """Save what :func:`resume_training_state` reads back."""
    torch.save({"vocoder": vocoder.state_dict(), "optimizer": optimizer.state_dict(), counter: count,
                "elapsed": elapsed}, path)


def train_vocoder(args: VocoderTrainingArguments) -> dict:
    """Train (or resume) a vocoder; returns the summary that is also written to ``training_summary.json``."""
    args.validate()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.init_from:
        vocoder = load_trained_vocoder(args.init_from).train()
        config = vocoder_config(sized_like(args, vocoder.config, args.init_from), vocoder.config)
        vocoder.config = config
    else:
        config = vocoder_config(args)
        vocoder = ISTFTVocoder(config)
    criterion = VocoderLoss(config, args)
    valid_clips = load_clips(args.dataset_path, args.validation_split, args.validation_utterances, args.seed,
                             config.sampling_rate)
    data_started = time.monotonic()
    draw, valid_aligned = _training_data(args, config, criterion)
    data_seconds = round(time.monotonic() - data_started, 1)
    optimizer = torch.optim.AdamW(vocoder.parameters(), lr=args.learning_rate, betas=(0.8, 0.99),
                                  weight_decay=args.weight_decay)
    os.makedirs(args.output_dir, exist_ok=True)
    checkpoint_path = os.path.join(args.output_dir, CHECKPOINT_NAME)
    step, elapsed_before = resume_training_state(checkpoint_path, vocoder, optimizer, "step")
    if step:
        draw.rng = np.random.default_rng(args.seed + step)
    started = time.monotonic()
    log = open(os.path.join(args.output_dir, LOG_NAME), "a")
    valid = {}
    try:
        while step < args.max_steps:
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(args, step)
            inputs, target = draw.sample(args.batch_size)
            losses = criterion(vocoder(inputs), target)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(vocoder.parameters(), args.max_grad_norm)
            optimizer.step()
            step += 1
            elapsed = elapsed_before + time.monotonic() - started
            out_of_time = args.max_wall_seconds is not None and elapsed >= args.max_wall_seconds
            if step % args.logging_steps == 0:
                record = {"step": step, "elapsed_s": round(elapsed, 1), "lr": optimizer.param_groups[0]["lr"],
                          **{k: round(float(v.detach()), 5) for k, v in losses.items()}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                logger.info("vocoder %s", record)
            if step % args.eval_steps == 0 or step == args.max_steps or out_of_time:
                valid = _validation(vocoder, criterion, valid_clips, valid_aligned)
                log.write(json.dumps({"step": step, "validation": valid}) + "\n")
                logger.info("vocoder step %d validation %s", step, valid)
            if step % args.save_steps == 0 or step == args.max_steps or out_of_time:
                save_training_state(checkpoint_path, vocoder, optimizer, "step", step, elapsed)
                save_vocoder(vocoder, config, args.output_dir)
            if out_of_time:
                logger.info("stopping at step %d: max_wall_seconds=%s reached", step, args.max_wall_seconds)
                break
    finally:
        log.close()
    if not valid:  # no step ran (resumed at or past max_steps): report the saved vocoder, not an empty dict
        valid = _validation(vocoder, criterion, valid_clips, valid_aligned)
    summary = {"steps": step, "wall_seconds": round(elapsed_before + time.monotonic() - started, 1),
               "data_seconds": data_seconds,
               "hardware": hardware_description(), "validation": valid,
               "parameters": sum(p.numel() for p in vocoder.parameters()), "arguments": asdict(args)}
    with open(os.path.join(args.output_dir, SUMMARY_NAME), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


class _RealMelSegments(SegmentSampler):
    """Real-audio segments and their own log-mels: ``sample(B) -> (log-mel (B, F, M), audio (B, F * hop))``."""

    def __init__(self, clips: list[np.ndarray], segment_samples: int, seed: int, criterion: VocoderLoss):
        super().__init__(clips, segment_samples, seed)
        self.criterion = criterion

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        target = super().sample(batch_size)
        return self.criterion.log_mel(target), target


def _training_data(args: VocoderTrainingArguments, config: MetaTTSConfig, criterion: VocoderLoss):
    """The training segments (real log-mels, or the aligned model's) and the aligned validation pairs (or [])."""
    if not args.aligned_model:
        clips = load_clips(args.dataset_path, args.train_split, args.max_utterances, args.seed, config.sampling_rate)
        logger.info("vocoder training on %d clips (%.2f h)", len(clips),
                    sum(map(len, clips)) / config.sampling_rate / 3600)
        return _RealMelSegments(clips, args.segment_frames * config.hop_length, args.seed, criterion), []
    from ..meta import load_meta_learner
    from ..modeling_metatts import MetaTTSForTextToSpeech
    from .vocoder_aligned import AlignedSegmentSampler, aligned_clips

    model = MetaTTSForTextToSpeech.from_pretrained(args.aligned_model).eval()
    check_audio_settings(config, model.config, args.init_from or "this run")
    head = load_meta_learner(args.aligned_model)

    def pairs(split, per_speaker):
        return aligned_clips(model, head, args.prepared_path, args.dataset_path, split, shots=args.aligned_shots,
                             clips_per_speaker=per_speaker, seed=args.seed,
                             start_fraction=args.aligned_start_fraction, cache_dir=args.pairs_cache)

    train = pairs(args.train_split, args.aligned_clips_per_speaker)[: args.max_utterances]
    valid = pairs(args.validation_split, args.aligned_validation_clips_per_speaker)
    logger.info("vocoder training on %d aligned clips of %s (%.2f h), validation on %d", len(train),
                args.aligned_model, sum(len(c.audio) for c in train) / config.sampling_rate / 3600, len(valid))
    return AlignedSegmentSampler(train, args.segment_frames, config.hop_length, args.seed), valid


def _validation(vocoder: ISTFTVocoder, criterion: VocoderLoss, clips: list[np.ndarray], aligned: list) -> dict:
    """Resynthesis losses of real clips; with aligned pairs also theirs, under ``"aligned"``."""
    valid = validation_losses(vocoder, criterion, clips)
    if aligned:
        from .vocoder_aligned import aligned_validation_losses

        valid["aligned"] = aligned_validation_losses(vocoder, criterion, aligned)
    return valid
