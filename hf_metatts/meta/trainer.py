"""``MetaTrainer``: a ``transformers.Trainer`` whose model is a :class:`MetaLearner` and whose batches are episodes.

* ``compute_loss`` only calls the wrapped module: the whole episode runs in its ``forward`` (DDP-safe).
* Episodes come from an :class:`EpisodeDataset` per rank (not sharded by Accelerate: each rank draws its
  own tasks); resuming skips episode indices, so a resumed run sees exactly the episodes it would have seen.
* Checkpoints hold the TTS model (``save_pretrained``: loads with ``MetaTTSForTextToSpeech.from_pretrained``),
  ``meta_learner.safetensors`` + ``meta_learner_config.json``, ``episode_state.json``, and the Trainer's
  optimiser, scheduler and RNG states.
* ``evaluate`` measures the adaptation curve on validation tasks: query loss after 0..N inner steps.
"""

import json
import logging
import os

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import Trainer

from .arguments import MetaTrainingArguments
from .episodes import EpisodeDataset, EpisodeSampler, first_item
from .errors import (
    CheckpointMismatchError,
    InvalidMetaConfigError,
    SecondOrderUnsupportedError,
)
from .head import (
    META_CONFIG_NAME,
    META_WEIGHTS_NAME,
    MetaLearnerConfig,
    read_meta_config,
    resolve_adapted_names,
)
from .learner import MetaLearner

logger = logging.getLogger(__name__)

EPISODE_STATE_NAME = "episode_state.json"
ARGS_JSON_NAME = "meta_training_args.json"


class MetaTrainer(Trainer):
    """Meta-train a TTS model (maml | metasgd | meta_lstm) or train the ``pretrain`` baseline.

    Args:
        model: the TTS model (``MetaTTSForTextToSpeech``); the Trainer wraps a :class:`MetaLearner` around it.
        args: :class:`MetaTrainingArguments`.
        train_dataset / eval_dataset: processed task splits (``datasets.Dataset`` with the task column).
        data_collator: rows -> batch dict (``MetaTTSDataCollator``).
        processing_class: saved next to the model when given.
        meta_learner: a trained :class:`MetaLearnerHead` to continue from (its learned rates or Meta-LSTM),
            e.g. ``load_meta_learner(model_dir)``; it must have this run's method and adapted set.
    """

    def __init__(self, model, args: MetaTrainingArguments, train_dataset, data_collator, eval_dataset=None,
                 processing_class=None, callbacks=None, meta_learner=None, **kwargs):
        if data_collator is None:
            raise InvalidMetaConfigError("MetaTrainer needs a data_collator (rows -> batch dict of tensors).")
        names = resolve_adapted_names(model, args.adapted_parameters)
        self.episode_sampler = self._sampler(train_dataset, args, args.process_index, args.world_size, 0)
        self.eval_sampler = self._sampler(eval_dataset, args, 0, 1, 1) if eval_dataset is not None else None
        config = MetaLearnerConfig.from_training_args(args, names, task_names=self.episode_sampler.tasks)
        self._check_model(model, args, len(self.episode_sampler.tasks))
        identity = None
        if args.identity_loss_weight > 0:
            from .identity import load_identity_encoder

            identity = load_identity_encoder(args.identity_encoder)
            logger.info("Meta-objective: query loss + %g x identity term (encoder %s).", args.identity_loss_weight,
                        args.identity_encoder)
        if args.content_loss_weight > 0:
            logger.info("Meta-objective: query loss + %g x content term (the model's aligner, frozen).",
                        args.content_loss_weight)
        learner = MetaLearner(model, config, identity_encoder=identity, identity_loss_weight=args.identity_loss_weight,
                              content_loss_weight=args.content_loss_weight,
                              content_loss_at_start=args.content_loss_at_start)
        if meta_learner is not None:
            continue_meta_learner(learner.head, meta_learner)
        learner.log_before = args.log_query_loss_before
        super().__init__(model=learner, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=data_collator, processing_class=processing_class, callbacks=callbacks,
                         **kwargs)
        self._meta_sums: dict[str, float] = {}
        self._meta_count = 0
        self.skipped_tasks_total = 0

    @staticmethod
    def _sampler(dataset, args, rank, world_size, seed_offset) -> EpisodeSampler:
        return EpisodeSampler(
            dataset, task_column=args.task_column, shots=args.shots, query_shots=args.query_shots,
            tasks_per_episode=args.tasks_per_step, seed=args.resolved_episode_seed + seed_offset, rank=rank,
            world_size=world_size, length_column=args.length_column,
            max_utterances_per_batch=args.max_utterances_per_batch,
        )

    @staticmethod
    def _check_model(model, args, num_tasks) -> None:
        checkpointing = getattr(model, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = getattr(model, "is_gradient_checkpointing", False)
        if not args.first_order and args.method != "pretrain" and checkpointing:
            raise SecondOrderUnsupportedError(
                "Second-order meta-gradients cannot go through gradient checkpointing: call "
                "model.gradient_checkpointing_disable() or set first_order=true."
            )
        model_config = getattr(model, "config", None)
        if args.zero_shot_start and not (hasattr(model, "encode_voice")
                                         and getattr(model_config, "use_voice_encoder", True)):
            raise InvalidMetaConfigError(
                "zero_shot_start=true needs a model with a support encoder (config.use_voice_encoder=True)."
            )
        if args.method == "pretrain":
            speakers = getattr(model_config, "num_speakers", 0) or 0
            if speakers < num_tasks:
                raise InvalidMetaConfigError(
                    f"method='pretrain' trains one speaker embedding per task: config.num_speakers={speakers} "
                    f"but the train split has {num_tasks} tasks. Build the model with num_speakers>={num_tasks}."
                )

    # -------------------------------------------------------------------------------------- data
    def get_train_dataloader(self) -> DataLoader:
        """One episode per batch; this rank's own episodes, so not prepared (sharded) by Accelerate."""
        episodes = EpisodeDataset(self.episode_sampler, self.data_collator,
                                  num_episodes=self.args.max_steps * self.args.gradient_accumulation_steps)
        return DataLoader(episodes, batch_size=1, shuffle=False, collate_fn=first_item,
                          num_workers=self.args.dataloader_num_workers)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The Trainer's optimiser; with ``meta_learner_learning_rate`` set, the meta-learner's own parameters
        (``head.*``: Meta-SGD rates, the Meta-LSTM cell; and the support encoder ``model.voice_encoder.*`` when
        ``zero_shot_start``) move to groups of their own at that rate."""
        optimizer = super().create_optimizer(model)
        rate = self.args.meta_learner_learning_rate
        if rate is None or getattr(optimizer, "_meta_learner_groups", False):
            return optimizer
        learner = self.model if model is None else model
        prefixes = ("head.", "model.voice_encoder.") if self.args.zero_shot_start else ("head.",)
        head_ids = {id(p) for name, p in learner.named_parameters() if name.startswith(prefixes)}
        head_groups = []
        for group in optimizer.param_groups:
            head = [p for p in group["params"] if id(p) in head_ids]
            if head:
                group["params"] = [p for p in group["params"] if id(p) not in head_ids]
                head_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": head, "lr": rate})
        for group in head_groups:
            optimizer.add_param_group(group)
        optimizer._meta_learner_groups = True
        return optimizer

    # -------------------------------------------------------------------------------------- loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Run the episode inside the wrapped module's forward and collect its statistics."""
        learner = self.accelerator.unwrap_model(model)
        anneal = self.args.multi_step_loss_anneal_steps or max(1, self.args.max_steps // 2)
        learner.progress = min(1.0, self.state.global_step / anneal)
        outputs = model(**inputs)
        stats = learner.last_stats
        for key, value in stats.items():
            self._meta_sums[key] = self._meta_sums.get(key, 0.0) + value
        self._meta_count += 1
        self.skipped_tasks_total += int(stats.get("skipped_tasks", 0))
        loss = outputs["loss"]
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean query losses before/after the inner loop and the skipped-task counts to train logs."""
        if "loss" in logs and self._meta_count:
            for key, value in self._meta_sums.items():
                # counts are summed over the logging window, losses averaged
                logs[key] = value if key in ("skipped_tasks", "tasks") else value / self._meta_count
            logs["skipped_tasks_total"] = self.skipped_tasks_total
            self._meta_sums, self._meta_count = {}, 0
        super().log(logs, start_time)

    # -------------------------------------------------------------------------------------- eval
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Adaptation curve on the validation tasks: ``{prefix}_query_loss_step_{i}`` for i in 0..N.

        ``{prefix}_loss`` is the query loss after N steps (use it for ``metric_for_best_model``).
        """
        sampler = self.eval_sampler
        if eval_dataset is not None:
            sampler = self._sampler(eval_dataset, self.args, 0, 1, 1)
        if sampler is None:
            raise InvalidMetaConfigError("evaluate() needs an eval_dataset (a validation task split).")
        episodes = [self._prepare_inputs(sampler.collate(e, self.data_collator))
                    for e in sampler.validation_episodes(self.args.eval_num_tasks)]
        learner = self.accelerator.unwrap_model(self.model)
        was_training = learner.training
        learner.eval()
        try:
            curve = learner.adaptation_curve(episodes, self.args.resolved_eval_inner_steps)
        finally:
            learner.train(was_training)
        p = metric_key_prefix
        metrics = {f"{p}_query_loss_step_{i}": v for i, v in enumerate(curve)}
        metrics.update({f"{p}_query_loss_before": curve[0], f"{p}_query_loss_after": curve[-1], f"{p}_loss": curve[-1]})
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # -------------------------------------------------------------------------------------- save / load
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """Save the TTS model (``save_pretrained``), the meta-learner and the episode state (main process)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        learner = self.accelerator.unwrap_model(self.model)
        learner.model.save_pretrained(output_dir)
        learner.head.save_pretrained(output_dir)
        state = {
            "episode_seed": self.args.resolved_episode_seed,
            "world_size": self.args.world_size,
            "next_episode": self.state.global_step * self.args.gradient_accumulation_steps,
            "skipped_tasks_total": self.skipped_tasks_total,
        }
        with open(os.path.join(output_dir, EPISODE_STATE_NAME), "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        with open(os.path.join(output_dir, ARGS_JSON_NAME), "w", encoding="utf-8") as fh:
            fh.write(self.args.to_json_string())
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Check the checkpoint's meta config against this run, then load the model and meta-learner."""
        learner = self.accelerator.unwrap_model(model if model is not None else self.model)
        check_resume_compatible(resume_from_checkpoint, learner.meta_config, self.args)
        load_model_weights(learner.model, resume_from_checkpoint)
        tensors = load_file(os.path.join(resume_from_checkpoint, META_WEIGHTS_NAME))
        learner.head.load_state_dict(tensors, strict=True)
        state_file = os.path.join(resume_from_checkpoint, EPISODE_STATE_NAME)
        if os.path.isfile(state_file):
            with open(state_file, encoding="utf-8") as fh:
                self.skipped_tasks_total = int(json.load(fh).get("skipped_tasks_total", 0))

    def _load_best_model(self) -> None:
        logger.info("Loading best model from %s.", self.state.best_model_checkpoint)
        self._load_from_checkpoint(self.state.best_model_checkpoint)


def continue_meta_learner(head, trained) -> None:
    """Copy a trained meta-learner's tensors (Meta-SGD rates, Meta-LSTM weights) into a new run's ``head``.

    Raises:
        CheckpointMismatchError: the trained meta-learner has another method, adapted parameter set or inner
            optimizer.
    """
    mine, theirs = head.config, trained.config
    if theirs.method != mine.method or list(theirs.adapted_parameter_names) != list(mine.adapted_parameter_names):
        raise CheckpointMismatchError(
            f"Cannot continue from a {theirs.method} meta-learner over {len(theirs.adapted_parameter_names)} "
            f"adapted tensors in a {mine.method} run over {len(mine.adapted_parameter_names)}: the method and the "
            "adapted parameter set must match. Start the meta-learner fresh (continue_meta_learner=false)."
        )
    if theirs.inner_optimizer != mine.inner_optimizer:
        raise CheckpointMismatchError(
            f"Cannot continue learned rates of {theirs.inner_optimizer!r} inner steps in a run with "
            f"inner_optimizer={mine.inner_optimizer!r}: the rates scale another step direction. Start the "
            "meta-learner fresh (continue_meta_learner=false)."
        )
    with torch.no_grad():
        head.load_state_dict(trained.state_dict(), strict=True)
    logger.info("Continuing from a trained %s meta-learner.", theirs.method)


def check_resume_compatible(checkpoint: str, config: MetaLearnerConfig, args) -> None:
    """Raise :class:`CheckpointMismatchError` when ``checkpoint`` was written by a different meta config."""
    if not os.path.isfile(os.path.join(checkpoint, META_CONFIG_NAME)):
        raise CheckpointMismatchError(
            f"{checkpoint} has no {META_CONFIG_NAME}: it was not written by MetaTrainer. Start without "
            "resume_from_checkpoint, or pass it as model_name_or_path to start from its weights."
        )
    saved = read_meta_config(checkpoint).to_dict()
    current = config.to_dict()
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
             for k in MetaLearnerConfig.RESUME_KEYS if saved.get(k) != current.get(k)]
    state_file = os.path.join(checkpoint, EPISODE_STATE_NAME)
    if os.path.isfile(state_file):
        with open(state_file, encoding="utf-8") as fh:
            state = json.load(fh)
        if state.get("episode_seed") != args.resolved_episode_seed:
            diffs.append(f"episode_seed: checkpoint {state.get('episode_seed')} vs now {args.resolved_episode_seed}")
        if state.get("world_size") != args.world_size:
            logger.warning("Resuming a %s-process run on %s processes: the episode stream differs from the "
                           "uninterrupted run.", state.get("world_size"), args.world_size)
    if diffs:
        raise CheckpointMismatchError(
            f"Cannot resume from {checkpoint}: it was written with another meta-learning config ("
            + "; ".join(diffs) + "). Resume with the original config, or start a new output_dir."
        )


def load_model_weights(model: torch.nn.Module, directory: str) -> None:
    """Load ``save_pretrained`` weights (single or sharded safetensors) into ``model`` in place."""
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(single):
        state = load_file(single)
        missing, unexpected = model.load_state_dict(state, strict=False)
    elif os.path.isfile(os.path.join(directory, "model.safetensors.index.json")):
        with open(os.path.join(directory, "model.safetensors.index.json"), encoding="utf-8") as fh:
            files = sorted(set(json.load(fh)["weight_map"].values()))
        state = {}
        for name in files:
            state.update(load_file(os.path.join(directory, name)))
        missing, unexpected = model.load_state_dict(state, strict=False)
    else:
        raise CheckpointMismatchError(f"{directory} holds no model.safetensors; it is not a MetaTrainer checkpoint.")
    if unexpected:
        raise CheckpointMismatchError(
            f"{directory} holds weights the model does not have ({unexpected[:5]}...): another architecture. "
            "Resume with the model config that wrote it."
        )
    if missing:
        logger.info("Weights not in the checkpoint (tied or non-persistent): %s", missing)
