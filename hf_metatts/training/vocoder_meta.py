"""Meta-train the neural vocoder for its adaptation to a voice: first-order MAML over speakers, the inner loop being
exactly the vocoder adaptation ``model.adapt`` runs (`hf_metatts.voice_vocoder`).

``model.adapt(..., vocoder_steps=N)`` fine-tunes a copy of the vocoder on the support clips (a few Adam steps on
the parameters the checkpoint's ``voice_vocoder_parameters`` name). The vocoder it starts from was trained to
serve every voice as it is, not to be adapted from 5 clips and then heard on other sentences. Here each episode is
one training speaker of a prepared corpus: the aligned model (the checkpoint whose voices the vocoder serves) has
adapted to ``shots`` of the speaker's clips and read them and ``query_clips_per_speaker`` others on their recorded
timing (`hf_metatts.training.vocoder_aligned`, ``with_support=True``). The inner loop adapts a copy of the vocoder
on random segments of the support pairs with the checkpoint's own settings (``VocoderAdaptation.from_config``);
the outer loss is the vocoder loss (log-mel L1 + multi-resolution STFT) of the adapted copy on random segments of
the query pairs, plus ``start_loss_weight`` times the same loss of the vocoder unadapted (the voice before any
vocoder step must stay good). Its first-order gradient (the adapted parameters' gradient applied to their
starting values, FOMAML) updates the vocoder's ``outer_parameters`` with Adam.

    hf-metatts meta-train-vocoder --dataset data/voices-augmented --aligned-model hf_metatts/checkpoints/default \\
        --init-from hf_metatts/checkpoints/default --out outputs/vocoder_meta

The output folder has the layout of ``hf-metatts train-vocoder``'s (``vocoder.safetensors`` + ``config.json``,
``training_log.jsonl``, ``training_summary.json``), so ``hf-metatts bundle --vocoder`` takes it; it resumes from
its ``vocoder_checkpoint.pt``. Validation: the validation speakers' query losses (whole clips) before and after the
inner loop, every ``eval_episodes``.
"""

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch.func import functional_call

from .hardware import hardware_description
from .vocoder import (
    CHECKPOINT_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    VocoderLoss,
    VocoderTrainingArguments,
    VocoderTrainingError,
    check_audio_settings,
    load_trained_vocoder,
    mean_losses,
    resume_training_state,
    save_training_state,
    save_vocoder,
)

logger = logging.getLogger(__name__)


@dataclass  # annotations stay real types (no postponed evaluation): the CLI reads them to type its options
class MetaVocoderArguments:
    """Every constant of a vocoder meta-training run. ``inner_steps`` / ``inner_learning_rate`` replace the aligned
    model's ``voice_vocoder_steps`` / ``voice_vocoder_learning_rate`` where given (the inner loop's parameters,
    batch and segment length are always the model's own: meta-training serves the adaptation that ships)."""

    dataset_path: str = "data/voices-augmented"
    output_dir: str = "outputs/vocoder_meta"
    aligned_model: str = "hf_metatts/checkpoints/default"
    init_from: str | None = None  # the vocoder it starts from (default: the aligned model's own)
    prepared_dataset_path: str | None = None  # default: "<dataset>-prepared"
    train_split: str = "train"
    validation_split: str = "validation"
    shots: int = 5
    query_clips_per_speaker: int = 8
    validation_query_clips_per_speaker: int = 4
    episodes: int = 1000
    inner_steps: int | None = None
    inner_learning_rate: float | None = None
    query_batch_size: int = 8
    outer_parameters: str = "*"  # comma-separated fnmatch patterns of the vocoder parameters meta-training changes
    outer_learning_rate: float = 1e-4
    start_loss_weight: float = 0.5
    max_grad_norm: float = 1.0
    logging_episodes: int = 25
    eval_episodes: int = 250
    seed: int = 0
    threads: int | None = None
    max_wall_seconds: float | None = None
    pairs_cache: str | None = None  # a folder that keeps the aligned pairs' log-mels between runs (default: none)

    def validate(self) -> None:
        for name in ("shots", "query_clips_per_speaker", "validation_query_clips_per_speaker", "episodes",
                     "query_batch_size", "logging_episodes", "eval_episodes"):
            if getattr(self, name) < 1:
                raise VocoderTrainingError(f"{name}={getattr(self, name)} must be at least 1.")
        if not 0 < self.outer_learning_rate < 1:
            raise VocoderTrainingError(f"outer_learning_rate={self.outer_learning_rate} must lie in (0, 1).")
        if self.start_loss_weight < 0:
            raise VocoderTrainingError(f"start_loss_weight={self.start_loss_weight} must be >= 0 (0: only the "
                                       "adapted vocoder's loss counts).")
        if self.inner_steps is not None and self.inner_steps < 1:
            raise VocoderTrainingError(f"inner_steps={self.inner_steps} must be at least 1 (or left out: the "
                                       "aligned model's voice_vocoder_steps).")
        for name in ("aligned_model", "init_from"):
            folder = getattr(self, name)
            if folder is not None and not os.path.isdir(folder):
                raise VocoderTrainingError(f"{name}={folder} is not a folder: give a checkpoint that owns a trained "
                                           "vocoder (e.g. hf_metatts/checkpoints/default).")

    @property
    def prepared_path(self) -> str:
        return self.prepared_dataset_path or self.dataset_path.rstrip("/") + "-prepared"


@dataclass
class SpeakerEpisode:
    """One speaker's aligned pairs (`AlignedClip`: log-mel ``(T, M)``, recording ``(T * hop,)``): ``support``, the
    clips the voice adapted to, and ``query``, other sentences of the speaker."""

    speaker: str
    support: list
    query: list


def inner_adaptation(model_config, args: MetaVocoderArguments):
    """The vocoder adaptation of the inner loop: the aligned model's, with the run's step count / rate if given."""
    from ..voice_vocoder import VocoderAdaptation, VocoderAdaptationError

    adaptation = VocoderAdaptation.from_config(model_config, args.inner_steps, args.inner_learning_rate)
    if adaptation.steps < 1:
        raise VocoderAdaptationError(
            f"{args.aligned_model} does not adapt its vocoder to a voice (voice_vocoder_steps=0): give "
            "--inner-steps and --inner-learning-rate, or a checkpoint bundled with --voice-vocoder-steps.")
    return adaptation


def speaker_episodes(clips: list) -> list[SpeakerEpisode]:
    """Group aligned pairs (from ``aligned_clips(..., with_support=True)``) by speaker; speakers without both
    support and query pairs are left out."""
    by_speaker: dict[str, SpeakerEpisode] = {}
    for clip in clips:
        episode = by_speaker.setdefault(clip.speaker, SpeakerEpisode(clip.speaker, [], []))
        (episode.support if clip.role == "support" else episode.query).append(clip)
    return [episode for episode in by_speaker.values() if episode.support and episode.query]


def _episodes(args: MetaVocoderArguments, vocoder_config) -> tuple[list[SpeakerEpisode], list[SpeakerEpisode]]:
    from ..meta import load_meta_learner
    from ..modeling_metatts import MetaTTSForTextToSpeech
    from .vocoder_aligned import aligned_clips

    model = MetaTTSForTextToSpeech.from_pretrained(args.aligned_model).eval()
    check_audio_settings(vocoder_config, model.config, args.init_from or args.aligned_model)
    meta_learner = load_meta_learner(args.aligned_model)

    def episodes(split, per_speaker):
        clips = aligned_clips(model, meta_learner, args.prepared_path, args.dataset_path, split, shots=args.shots,
                              clips_per_speaker=per_speaker, seed=args.seed, with_support=True,
                              cache_dir=args.pairs_cache)
        return speaker_episodes(clips)

    train = episodes(args.train_split, args.query_clips_per_speaker)
    valid = episodes(args.validation_split, args.validation_query_clips_per_speaker)
    if not train:
        raise VocoderTrainingError(f"No speaker of {args.train_split!r} has more than shots={args.shots} clips.")
    return train, valid


def _outer_names(vocoder: torch.nn.Module, patterns: str) -> list[str]:
    """The vocoder parameters matching the comma-separated fnmatch ``patterns`` (``outer_parameters``)."""
    from ..voice_vocoder import VocoderAdaptationError, vocoder_parameter_names

    try:
        return vocoder_parameter_names(vocoder, [p.strip() for p in patterns.split(",") if p.strip()])
    except VocoderAdaptationError as error:
        raise VocoderTrainingError(f"outer_parameters={patterns!r} matches no vocoder parameter: see "
                                   "`model.vocoder.named_parameters()` for their names.") from error


def episode_gradients(vocoder: torch.nn.Module, criterion: VocoderLoss, episode: SpeakerEpisode, adaptation,
                      query_batch_size: int, start_loss_weight: float, seed: int) -> dict[str, float]:
    """Accumulate into ``vocoder``'s ``.grad`` the first-order meta-gradient of one episode: adapt a copy on the
    support pairs (``adaptation``, segments drawn with ``seed``), then the query loss of the adapted copy (its
    gradient on the adapted parameters goes to their starting values) plus ``start_loss_weight`` x the query loss
    of ``vocoder`` itself, both on ``query_batch_size`` random query segments (log-mels ``(B, F, M)`` and audio
    ``(B, F * hop)``). Returns the two query losses."""
    from ..voice_vocoder import VOCODER_PREFIX, adapt_vocoder
    from .vocoder_aligned import AlignedSegmentSampler

    values, _ = adapt_vocoder(vocoder, episode.support, replace(adaptation, seed=seed))
    adapted = {name[len(VOCODER_PREFIX):]: value.requires_grad_(True) for name, value in values.items()}
    frames = min(adaptation.segment_frames, max(len(clip.mel) for clip in episode.query))
    mels, waves = AlignedSegmentSampler(episode.query, frames, vocoder.config.hop_length, seed).sample(
        query_batch_size)
    after = criterion(functional_call(vocoder, adapted, (mels,)), waves)["loss"]
    with torch.set_grad_enabled(start_loss_weight > 0):  # a term of weight 0 is only reported
        before = criterion(vocoder(mels), waves)["loss"]
    (after + start_loss_weight * before).backward()
    parameters = dict(vocoder.named_parameters())
    for name, value in adapted.items():
        parameter = parameters[name]
        if parameter.requires_grad and value.grad is not None:
            parameter.grad = value.grad if parameter.grad is None else parameter.grad + value.grad
    return {"query_loss_before": float(before.detach()), "query_loss_after": float(after.detach())}


def validation_losses(vocoder: torch.nn.Module, criterion: VocoderLoss, episodes: list[SpeakerEpisode],
                      adaptation) -> dict[str, float]:
    """Mean whole-clip query losses of the validation speakers with the vocoder as it is and adapted to each
    speaker's support pairs (the same segment draw every time)."""
    from ..voice_vocoder import VOCODER_PREFIX, adapt_vocoder

    if not episodes:
        return {}
    totals = {"mel_l1_before": 0.0, "stft_before": 0.0, "mel_l1_after": 0.0, "stft_after": 0.0}
    for episode in episodes:
        pairs = [(torch.from_numpy(c.mel).unsqueeze(0), torch.from_numpy(c.audio).unsqueeze(0)) for c in episode.query]
        values, _ = adapt_vocoder(vocoder, episode.support, adaptation)
        adapted = copy.deepcopy(vocoder)
        adapted.load_state_dict({name[len(VOCODER_PREFIX):]: value for name, value in values.items()}, strict=False)
        for suffix, heard_through in (("_before", vocoder), ("_after", adapted)):
            for key, value in mean_losses(heard_through, criterion, pairs).items():
                totals[key + suffix] += value
    return {key: round(value / len(episodes), 5) for key, value in totals.items()}


def meta_train_vocoder(args: MetaVocoderArguments) -> dict:
    """Meta-train (or resume) the vocoder; returns the summary also written to ``training_summary.json``."""
    args.validate()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from ..configuration_metatts import MetaTTSConfig

    vocoder = load_trained_vocoder(args.init_from or args.aligned_model)
    adaptation = inner_adaptation(MetaTTSConfig.from_pretrained(args.aligned_model), args)
    outer = set(_outer_names(vocoder, args.outer_parameters))
    data_started = time.monotonic()
    train, valid = _episodes(args, vocoder.config)
    data_seconds = round(time.monotonic() - data_started, 1)
    logger.info("meta-training the vocoder on %d speakers (%d validation): inner loop %s", len(train), len(valid),
                adaptation)
    for name, parameter in vocoder.named_parameters():
        parameter.requires_grad_(name in outer)
    trained = [p for p in vocoder.parameters() if p.requires_grad]
    criterion = VocoderLoss(vocoder.config, VocoderTrainingArguments())
    optimizer = torch.optim.Adam(trained, lr=args.outer_learning_rate, betas=(0.8, 0.99))
    os.makedirs(args.output_dir, exist_ok=True)
    checkpoint_path = os.path.join(args.output_dir, CHECKPOINT_NAME)
    episode, elapsed_before = resume_training_state(checkpoint_path, vocoder, optimizer, "episode")
    rng = np.random.default_rng([args.seed, episode])
    started = time.monotonic()
    log = open(os.path.join(args.output_dir, LOG_NAME), "a")
    validation = {}
    if episode == 0:
        validation = validation_losses(vocoder, criterion, valid, adaptation)
        log.write(json.dumps({"episode": 0, "validation": validation}) + "\n")
        logger.info("vocoder meta-training episode 0 validation %s", validation)
    recent = []
    try:
        while episode < args.episodes:
            vocoder.train()
            optimizer.zero_grad(set_to_none=True)
            speaker = train[int(rng.integers(len(train)))]
            recent.append(episode_gradients(vocoder, criterion, speaker, adaptation, args.query_batch_size,
                                            args.start_loss_weight, int(rng.integers(2**31))))
            torch.nn.utils.clip_grad_norm_(trained, args.max_grad_norm)
            optimizer.step()
            episode += 1
            elapsed = elapsed_before + time.monotonic() - started
            out_of_time = args.max_wall_seconds is not None and elapsed >= args.max_wall_seconds
            if episode % args.logging_episodes == 0:
                record = {"episode": episode, "elapsed_s": round(elapsed, 1),
                          **{key: round(float(np.mean([r[key] for r in recent])), 5) for key in recent[0]}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                logger.info("vocoder meta-training %s", record)
                recent = []
            last = episode == args.episodes or out_of_time
            if episode % args.eval_episodes == 0 or last:
                vocoder.eval()
                validation = validation_losses(vocoder, criterion, valid, adaptation)
                log.write(json.dumps({"episode": episode, "validation": validation}) + "\n")
                log.flush()
                logger.info("vocoder meta-training episode %d validation %s", episode, validation)
                save_training_state(checkpoint_path, vocoder, optimizer, "episode", episode, elapsed)
                save_vocoder(vocoder, vocoder.config, args.output_dir)
            if out_of_time:
                logger.info("stopping at episode %d: max_wall_seconds=%s reached", episode, args.max_wall_seconds)
                break
    finally:
        log.close()
    if not validation:
        validation = validation_losses(vocoder.eval(), criterion, valid, adaptation)
    summary = {"episodes": episode, "wall_seconds": round(elapsed_before + time.monotonic() - started, 1),
               "data_seconds": data_seconds, "hardware": hardware_description(), "validation": validation,
               "inner_adaptation": asdict(adaptation), "train_speakers": len(train),
               "validation_speakers": len(valid), "parameters_meta_trained": sum(p.numel() for p in trained),
               "arguments": asdict(args)}
    with open(os.path.join(args.output_dir, SUMMARY_NAME), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


__all__ = ["MetaVocoderArguments", "SpeakerEpisode", "episode_gradients", "inner_adaptation", "meta_train_vocoder",
           "speaker_episodes", "validation_losses"]
