"""``hf-metatts meta-train --config FILE``, and :func:`run_meta_training` shared with ``examples/meta_train.py``."""

import argparse
import fnmatch
import json
import logging
import os
import time

import torch

from .arguments import MetaDataArguments, MetaModelArguments, MetaTrainingArguments
from .errors import InvalidMetaConfigError

logger = logging.getLogger(__name__)


def parse_config(path: str):
    """Read a JSON config into (model, data, training) arguments with ``HfArgumentParser``."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((MetaModelArguments, MetaDataArguments, MetaTrainingArguments))
    return parser.parse_json_file(json_file=path)


def _processor(model_args):
    from .. import MetaTTSFeatureExtractor, MetaTTSProcessor, MetaTTSTokenizer

    if model_args.model_name_or_path:
        return MetaTTSProcessor.from_pretrained(model_args.model_name_or_path)
    return MetaTTSProcessor(MetaTTSFeatureExtractor(), MetaTTSTokenizer())


def load_splits(data_args: MetaDataArguments, processor):
    """The train / validation task splits, prepared (tokens, log-mels, pitch) when they are raw audio."""
    from datasets import load_from_disk

    from ..data_collator import prepare_dataset

    corpus = load_from_disk(data_args.dataset_path)
    if data_args.train_split not in corpus:
        raise InvalidMetaConfigError(
            f"{data_args.dataset_path} has no split {data_args.train_split!r} (splits: {list(corpus)}); "
            "set train_split."
        )
    splits = [corpus[data_args.train_split]]
    if data_args.validation_split and data_args.validation_split in corpus:
        splits.append(corpus[data_args.validation_split])
    else:
        splits.append(None)
    prepared = []
    for split in splits:
        if split is not None and "labels" not in split.column_names:
            split = prepare_dataset(split, processor)
        prepared.append(split)
    return prepared[0], prepared[1]


def select_train_tasks(train, task_column: str, patterns: list[str] | None, max_tasks: int | None):
    """The rows of ``train`` whose task matches one of ``patterns`` (fnmatch; all when None), then of the first
    ``max_tasks`` of those tasks in sorted order (all when None).

    Raises:
        InvalidMetaConfigError: a pattern matches no task (the message lists some task names).
    """
    tasks = sorted(set(train[task_column]), key=str)
    keep = tasks
    if patterns:
        unmatched = [p for p in patterns if not fnmatch.filter([str(t) for t in tasks], p)]
        if unmatched:
            sample = ", ".join(str(t) for t in tasks[:6])
            raise InvalidMetaConfigError(
                f"train_tasks patterns {unmatched} match no {task_column} of the training split (it has "
                f"{len(tasks)}: {sample}, ...). Fix the patterns (fnmatch syntax, e.g. 'festival:*')."
            )
        keep = [t for t in tasks if any(fnmatch.fnmatchcase(str(t), p) for p in patterns)]
    if max_tasks:
        keep = keep[:max_tasks]
    if len(keep) == len(tasks):
        return train
    wanted = set(keep)
    logger.info("Meta-training on %d of %d %s tasks.", len(keep), len(tasks), task_column)
    return train.filter(lambda v: v in wanted, input_columns=[task_column])


def run_meta_training(model_args: MetaModelArguments, data_args: MetaDataArguments,
                      training_args: MetaTrainingArguments):
    """Build the model and task splits, meta-train with :class:`MetaTrainer`, save to ``output_dir``."""
    from ..data_collator import MetaTTSDataCollator
    from .trainer import MetaTrainer

    started = time.monotonic()
    processor = _processor(model_args)
    train, validation = load_splits(data_args, processor)
    train = select_train_tasks(train, training_args.task_column, data_args.train_tasks, data_args.max_train_tasks)
    model = build_model(model_args, training_args, train)
    trainer = MetaTrainer(model, training_args, train_dataset=train, eval_dataset=validation,
                          data_collator=MetaTTSDataCollator(), processing_class=processor,
                          meta_learner=_trained_meta_learner(model_args, training_args))
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if training_args.method == "pretrain":
        set_default_voice_to_mean_speaker(model)
    trainer.save_model()
    metrics = trainer.evaluate() if validation is not None else {}
    if trainer.is_world_process_zero():
        write_training_summary(training_args, result, metrics, started)
    return result


def build_model(model_args: MetaModelArguments, training_args: MetaTrainingArguments, train):
    """The model to meta-train: loaded from ``model_name_or_path`` or built from ``config_overrides`` (the
    baseline's speaker table sized to the tasks of ``train``), with the support encoder attached when asked.

    Everything drawn at random here (a new model's weights, a fresh support-encoder head) is drawn after
    ``set_seed(training_args.seed)``, so a config's ``seed`` decides the whole run, not only its episodes.
    """
    from transformers import set_seed

    from .. import MetaTTSConfig, MetaTTSForTextToSpeech

    set_seed(training_args.seed)
    if model_args.model_name_or_path:
        model = MetaTTSForTextToSpeech.from_pretrained(model_args.model_name_or_path)
    else:
        overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
        if training_args.method == "pretrain":
            overrides.setdefault("num_speakers", len(set(train[training_args.task_column])))
        model = MetaTTSForTextToSpeech(MetaTTSConfig(**overrides))
    if model_args.speaker_embedding_voice_encoder:
        attach_speaker_embedding_voice_encoder(model, model_args.speaker_embedding_voice_encoder, training_args)
    return model


def attach_speaker_embedding_voice_encoder(model, directory: str, training_args: MetaTrainingArguments) -> None:
    """Give ``model`` a support encoder on the frozen speaker encoder saved in ``directory``.

    Raises:
        InvalidMetaConfigError: the run does not train a zero-shot start (the fresh head would stay at zero), or
            the folder holds no trained encoder.
    """
    from .identity import load_identity_encoder

    if not training_args.zero_shot_start:
        raise InvalidMetaConfigError(
            f"speaker_embedding_voice_encoder={directory!r} gives the model a fresh support-encoder head, which only "
            "a zero_shot_start run trains: set zero_shot_start=true (and method maml, metasgd or meta_lstm)."
        )
    model.use_speaker_embedding_voice_encoder(load_identity_encoder(directory))
    logger.info("Support encoder: a fresh head on the frozen speaker encoder of %s.", directory)


def _trained_meta_learner(model_args, training_args):
    """The meta-learner saved with ``model_name_or_path`` when this run continues it, else None."""
    from .head import load_meta_learner

    if not (model_args.model_name_or_path and training_args.continue_meta_learner):
        return None
    if training_args.method == "pretrain" or not os.path.isdir(model_args.model_name_or_path):
        return None
    trained = load_meta_learner(model_args.model_name_or_path)
    if trained is None or trained.config.method != training_args.method:
        return None
    if trained.config.inner_optimizer != training_args.inner_optimizer:
        logger.info("Not continuing the meta-learner of %s: its rates scale %r steps, this run takes %r steps.",
                    model_args.model_name_or_path, trained.config.inner_optimizer, training_args.inner_optimizer)
        return None
    if trained.config.per_step_rates != training_args.per_step_rates:
        logger.info("Not continuing the meta-learner of %s: its rates are %s, this run learns them %s.",
                    model_args.model_name_or_path, _rates_kind(trained.config.per_step_rates),
                    _rates_kind(training_args.per_step_rates))
        return None
    return trained


def _rates_kind(per_step: bool) -> str:
    return "one per step and element" if per_step else "one per element"


def write_training_summary(training_args, result, metrics: dict, started: float) -> None:
    """``training_summary.json`` in ``output_dir``: method, episodes, wall time, hardware, final losses."""
    from ..training.hardware import hardware_description

    summary = {
        "method": training_args.method, "steps": int(result.global_step) if result is not None else None,
        "wall_seconds": round(time.monotonic() - started, 1), "hardware": hardware_description(),
        "processes": training_args.world_size,
        "train_metrics": dict(result.metrics) if result is not None else {}, "eval_metrics": metrics,
        "tasks_per_step": training_args.tasks_per_step, "shots": training_args.shots,
        "query_shots": training_args.query_shots, "inner_steps": training_args.inner_steps,
        "first_order": training_args.first_order, "learning_rate": training_args.learning_rate,
        "outer_update": training_args.outer_update,
    }
    with open(os.path.join(training_args.output_dir, "training_summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=float)


def set_default_voice_to_mean_speaker(model) -> None:
    """After multi-speaker pretraining, the voice used without speaker ids (``voice.speaker_vector``, where
    adaptation starts) becomes the mean row of the speaker table instead of its untrained initial value."""
    table = getattr(model.voice, "speaker_table", None)
    if table is not None:
        with torch.no_grad():
            model.voice.speaker_vector.copy_(table.weight.mean(dim=0))


def _meta_train(args) -> int:
    model_args, data_args, training_args = parse_config(args.config)
    if args.output_dir:
        training_args.output_dir = args.output_dir
    if args.seed is not None:
        training_args.seed = args.seed
    if args.model_name_or_path:
        if not os.path.isdir(args.model_name_or_path):
            raise FileNotFoundError(f"--model-name-or-path {args.model_name_or_path} is not a folder: give the "
                                    "output folder of the run this one continues.")
        model_args.model_name_or_path = args.model_name_or_path
    run_meta_training(model_args, data_args, training_args)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``meta-train`` to an argparse subparsers object (``func=callable(args) -> int``)."""
    parser = subparsers.add_parser(
        "meta-train", help="meta-train (maml | metasgd | meta_lstm) or pretrain the baseline from a JSON config",
        description="Meta-train from a JSON config of MetaModelArguments, MetaDataArguments and "
        "MetaTrainingArguments (see examples/configs/). For several processes, use "
        "`accelerate launch examples/meta_train.py --config FILE` (docs/meta_learning.md).",
    )
    parser.add_argument("--config", required=True, help="JSON config file")
    parser.add_argument("--output-dir", default=None, help="override output_dir of the config")
    parser.add_argument("--seed", type=int, default=None,
                        help="override seed of the config: another draw of the same recipe (weights, episodes)")
    parser.add_argument("--model-name-or-path", default=None,
                        help="override model_name_or_path of the config: the run a continuation starts from (with "
                        "--seed and --output-dir, another draw of a recipe in several runs)")
    parser.set_defaults(func=_meta_train)
    return parser
