"""Arguments of meta-training: :class:`MetaTrainingArguments` and the data/model arguments of the launcher.

Every constant of the meta-learners lives here (inner-loop defaults, Meta-LSTM initialisation, MAML++
annealing), so that a JSON config read by ``HfArgumentParser`` describes a run completely.
"""

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .errors import InvalidMetaConfigError, SecondOrderUnsupportedError
from .maml import INNER_OPTIMIZERS
from .reptile import OUTER_UPDATES

METHODS = ("maml", "metasgd", "meta_lstm", "pretrain")


@dataclass
class MetaTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the meta-learning settings.

    One optimisation step = one episode of ``tasks_per_step`` tasks per process, each with ``shots`` support
    and ``query_shots`` query utterances. ``max_steps`` must be set (episodes are drawn, not enumerated).
    """

    method: str = field(default="maml", metadata={"help": "maml | metasgd | meta_lstm | pretrain (baseline)."})
    inner_steps: int = field(default=5, metadata={"help": "Gradient steps of the inner loop during meta-training."})
    inner_lr: float = field(default=0.01, metadata={"help": "Inner-loop learning rate (initial value for metasgd)."})
    inner_optimizer: str = field(
        default="sgd",
        metadata={"help": "Direction of an inner step for maml/metasgd: 'sgd' (the gradient) or 'adam' (Adam's "
                  "normalised moments: every parameter moves by about its rate per step, whatever its gradient "
                  "scale). The learned Meta-SGD rates are rates of this direction."},
    )
    first_order: bool = field(default=False, metadata={"help": "Drop second derivatives (FOMAML)."})
    outer_update: str = field(
        default="query_loss",
        metadata={"help": "How the outer loop moves the start: 'query_loss' (MAML: the gradient of the query loss "
                  "after the steps) or 'reptile' (Reptile: toward the parameters the steps reach, method='maml', "
                  "first_order=true; hf_metatts.meta.reptile)."},
    )
    shots: int = field(default=4, metadata={"help": "Support utterances per task (k)."})
    query_shots: int = field(default=4, metadata={"help": "Query utterances per task (q)."})
    tasks_per_step: int = field(default=4, metadata={"help": "Tasks per episode per process (B)."})
    task_column: str = field(default="speaker_id", metadata={"help": "Column that defines a task."})
    adapted_parameters: list[str] | None = field(
        default=None, metadata={"help": "fnmatch patterns of the adapted subset; default: the model's adapted set."}
    )
    multi_step_loss: bool = field(default=False, metadata={"help": "MAML++ multi-step query loss."})
    multi_step_loss_anneal_steps: int = field(
        default=0, metadata={"help": "Steps over which MAML++ weights move to the last step (0: max_steps / 2)."}
    )
    multi_step_loss_min_weight: float = field(
        default=0.03, metadata={"help": "Floor of a non-final MAML++ step weight, times 1/inner_steps."}
    )
    meta_sgd_lr_init: float | None = field(
        default=None, metadata={"help": "Initial Meta-SGD per-parameter learning rate (default: inner_lr)."}
    )
    per_step_rates: bool = field(
        default=False, metadata={"help": "Meta-SGD: learn one rate per inner step and element (a learned step-size "
                                 "schedule), not one per element."}
    )
    meta_lstm_hidden_size: int = field(default=20, metadata={"help": "Hidden size of the Meta-LSTM's first layer."})
    meta_lstm_forget_bias: float = field(
        default=8.0, metadata={"help": "Initial forget-gate bias: sigmoid(8) = 0.9997, i.e. keep the parameters."}
    )
    meta_lstm_init_scale: float = field(
        default=1e-3, metadata={"help": "Uniform range of the initial gate weights (small: start close to SGD)."}
    )
    grad_preprocess_p: float = field(
        default=10.0, metadata={"help": "p of the log/sign gradient preprocessing of Andrychowicz et al."}
    )
    zero_shot_start: bool = field(
        default=False,
        metadata={"help": "Start the inner loop from the support encoder's voice (needs use_voice_encoder)."},
    )
    zero_shot_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Add this weight times the query loss at the start voice (before any step) to the "
                  "meta-objective, so the start is a good voice on its own too: the support encoder's voice with "
                  "zero_shot_start, else the model's own values of the adapted set (an anchor that keeps a plain "
                  "start, such as `hf-metatts centroid-start`'s, from drifting away from every voice)."},
    )
    identity_encoder: str | None = field(
        default=None,
        metadata={"help": "Folder of a speaker encoder from `hf-metatts train-identity-encoder`, for the identity term "
                  "of the meta-objective (identity_loss_weight)."},
    )
    identity_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Add this weight times 1 - cos(identity_encoder(predicted query mels), identity_encoder("
                  "target query mels)) to the meta-objective. The inner loop (and model.adapt) keeps the mel loss."},
    )
    content_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Add this weight times the content term (hf_metatts.meta.content: the model's own aligner, "
                  "frozen, reading each predicted query frame as its token) to the meta-objective, so adaptation "
                  "learns to keep speech readable. The inner loop (and model.adapt) keeps its loss."},
    )
    content_loss_at_start: bool = field(
        default=True,
        metadata={"help": "With content_loss_weight and zero_shot_loss_weight: also add the content term to the query "
                  "loss at the start voice. False charges only the voice after the steps, so the term "
                  "asks the steps to keep what the start voice says readable, not the start voice to change."},
    )
    global_variance_weight: float = field(
        default=0.0,
        metadata={"help": "Add this weight times the global-variance term (hf_metatts.meta.global_variance: the log "
                  "per-bin standard deviation over time of the predicted against the target support mels) to the "
                  "inner loop's support loss; saved with the meta-learner, so model.adapt uses it too."},
    )
    eval_inner_steps: int | None = field(
        default=None, metadata={"help": "Steps of the validation adaptation curve (default: inner_steps)."}
    )
    eval_num_tasks: int = field(default=8, metadata={"help": "Validation tasks of the adaptation curve."})
    meta_learner_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Outer learning rate of the meta-learner's own parameters (Meta-SGD rates, Meta-LSTM "
                  "cell, and the support encoder with zero_shot_start); default: learning_rate, the TTS model's."},
    )
    continue_meta_learner: bool = field(
        default=True,
        metadata={"help": "When model_name_or_path holds a meta-learner of this method (learned rates, Meta-LSTM), "
                  "continue from it instead of starting the meta-learner fresh."},
    )
    finetune_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the fine-tuning baseline."})
    episode_seed: int | None = field(default=None, metadata={"help": "Seed of episode sampling (default: seed)."})
    max_utterances_per_batch: int = field(
        default=0, metadata={"help": "Split support/query sets into length-sorted batches of this size (0: one batch)."}
    )
    length_column: str | None = field(
        default=None, metadata={"help": "Column with utterance lengths for length batching (default: len(labels))."}
    )
    log_query_loss_before: bool = field(
        default=True, metadata={"help": "Also compute the query loss before adaptation (one extra forward per task)."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Must stay False: episodes are not rows."})

    def __post_init__(self):
        super().__post_init__()
        validate_meta_arguments(self)

    @property
    def resolved_episode_seed(self) -> int:
        """The episode seed (``episode_seed`` or ``seed``)."""
        return self.seed if self.episode_seed is None else self.episode_seed

    @property
    def resolved_eval_inner_steps(self) -> int:
        """Steps of the validation adaptation curve."""
        return self.inner_steps if self.eval_inner_steps is None else self.eval_inner_steps


def _check_meta_objective_weight(args: MetaTrainingArguments, name: str) -> None:
    """A weight of a term of the meta-objective is a finite number >= 0, and applies to meta-learning methods only."""
    weight = getattr(args, name)
    if weight < 0 or not math.isfinite(weight):
        raise InvalidMetaConfigError(f"{name}={weight} must be a finite number >= 0.")
    if weight > 0 and args.method == "pretrain":
        raise InvalidMetaConfigError(
            f"{name} applies to the meta-objective of maml, metasgd and meta_lstm, not to method='pretrain'."
        )


def _check_outer_update(args: MetaTrainingArguments) -> None:
    """Reptile updates the start of MAML's fixed-rate steps, first order, from the steps alone: no learned rule
    and no term of the query loss can learn from it."""
    if args.outer_update not in OUTER_UPDATES:
        raise InvalidMetaConfigError(
            f"outer_update={args.outer_update!r} is unknown: choose one of {', '.join(OUTER_UPDATES)}.")
    if args.outer_update != "reptile":
        return
    if args.method != "maml":
        raise InvalidMetaConfigError(
            f"outer_update='reptile' moves the start of method='maml'; method={args.method!r} learns "
            "from the query loss (Meta-SGD rates, the Meta-LSTM, the baseline's speakers), which Reptile never "
            "computes. Set method='maml' or outer_update='query_loss'.")
    if not args.first_order:
        raise InvalidMetaConfigError("outer_update='reptile' is first order by definition: set first_order=true.")
    query_terms = [name for name in ("zero_shot_loss_weight", "identity_loss_weight", "content_loss_weight")
                   if getattr(args, name) > 0] + (["multi_step_loss"] if args.multi_step_loss else [])
    if query_terms:
        raise InvalidMetaConfigError(
            f"{', '.join(query_terms)} weigh the query loss, which outer_update='reptile' does not use: set them to "
            "0 / false, or use outer_update='query_loss'.")


def validate_meta_arguments(args: MetaTrainingArguments) -> None:
    """Raise a :class:`InvalidMetaConfigError` / :class:`SecondOrderUnsupportedError` for inconsistent settings."""
    if args.method == "reptile":
        raise InvalidMetaConfigError("method='reptile' is method='maml' with outer_update='reptile' (and "
                                     "first_order=true): Reptile adapts with MAML's steps and updates the start "
                                     "differently.")
    if args.method not in METHODS:
        raise InvalidMetaConfigError(f"method={args.method!r} is unknown: choose one of {', '.join(METHODS)}.")
    _check_outer_update(args)
    for name in ("shots", "query_shots", "tasks_per_step"):
        if getattr(args, name) < 1:
            raise InvalidMetaConfigError(f"{name}={getattr(args, name)} must be at least 1.")
    if args.method != "pretrain" and args.inner_steps < 1:
        raise InvalidMetaConfigError(f"inner_steps={args.inner_steps}: meta-learning needs at least 1 inner step.")
    if args.zero_shot_loss_weight < 0 or not math.isfinite(args.zero_shot_loss_weight):
        raise InvalidMetaConfigError(
            f"zero_shot_loss_weight={args.zero_shot_loss_weight} must be a finite number >= 0."
        )
    if args.zero_shot_loss_weight > 0 and args.method == "pretrain":
        raise InvalidMetaConfigError("zero_shot_loss_weight weighs the start of the inner loop, and method='pretrain' "
                                     "has none: set it to 0 or choose a meta-learning method.")
    if args.identity_loss_weight > 0 and not args.identity_encoder:
        raise InvalidMetaConfigError(
            "identity_loss_weight > 0 needs identity_encoder: the folder of an encoder trained with "
            "`hf-metatts train-identity-encoder`."
        )
    for name in ("identity_loss_weight", "content_loss_weight"):
        _check_meta_objective_weight(args, name)
    if args.global_variance_weight < 0 or not math.isfinite(args.global_variance_weight):
        raise InvalidMetaConfigError(
            f"global_variance_weight={args.global_variance_weight} must be a finite number >= 0."
        )
    if args.global_variance_weight > 0 and args.method == "pretrain":
        raise InvalidMetaConfigError(
            "global_variance_weight applies to the inner loop of maml, metasgd and meta_lstm, not to "
            "method='pretrain' (its fine-tuning baseline keeps the model's loss)."
        )
    if args.inner_optimizer not in INNER_OPTIMIZERS:
        raise InvalidMetaConfigError(
            f"inner_optimizer={args.inner_optimizer!r} is unknown: choose one of {', '.join(INNER_OPTIMIZERS)}."
        )
    if args.inner_optimizer != "sgd" and args.method == "meta_lstm":
        raise InvalidMetaConfigError(
            f"inner_optimizer={args.inner_optimizer!r} does not apply to meta_lstm: the Meta-LSTM is the inner "
            "optimizer. Leave inner_optimizer='sgd', or choose method='metasgd' or 'maml'."
        )
    if args.inner_lr <= 0:
        raise InvalidMetaConfigError(f"inner_lr={args.inner_lr} must be positive.")
    if args.per_step_rates and args.method != "metasgd":
        raise InvalidMetaConfigError(
            f"per_step_rates=true learns Meta-SGD rates per step; method={args.method!r} has no learned rates. "
            "Choose method='metasgd' or leave per_step_rates false."
        )
    if args.meta_learner_learning_rate is not None and args.meta_learner_learning_rate <= 0:
        raise InvalidMetaConfigError(
            f"meta_learner_learning_rate={args.meta_learner_learning_rate} must be positive (or unset: learning_rate)."
        )
    if args.max_steps is None or args.max_steps <= 0:
        raise InvalidMetaConfigError(
            "max_steps must be set to a positive number of episodes: meta-training draws episodes, it has no epochs."
        )
    if not args.first_order and args.method in ("maml", "metasgd", "meta_lstm"):
        reasons = []
        if getattr(args, "activation_checkpointing", False) or args.gradient_checkpointing:
            reasons.append("activation/gradient checkpointing (recomputed activations cannot be differentiated twice)")
        if args.torch_compile:
            reasons.append("torch_compile=True (compiled graphs do not support double backward)")
        if getattr(args, "fsdp", None):
            reasons.append("fsdp (sharded parameters cannot enter torch.func.functional_call twice)")
        if getattr(args, "deepspeed", None):
            reasons.append("deepspeed (its engine does not support torch.autograd.grad with create_graph)")
        if reasons:
            raise SecondOrderUnsupportedError(
                "Second-order meta-gradients cannot be computed with " + "; ".join(reasons)
                + ". Set first_order=true or turn those settings off."
            )


@dataclass
class MetaModelArguments:
    """Which model to meta-train: a pretrained folder/id, or a fresh one from config keyword arguments."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from this checkpoint."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "JSON object of MetaTTSConfig keyword arguments for a fresh model."}
    )
    speaker_embedding_voice_encoder: str | None = field(
        default=None,
        metadata={"help": "Folder of a trained speaker encoder (`hf-metatts train-identity-encoder`): replace the "
                  "model's support encoder with a fresh head on this frozen encoder before training (needs "
                  "zero_shot_start to train the head)."},
    )


@dataclass
class MetaDataArguments:
    """Where the task splits come from (a ``DatasetDict`` saved with ``save_to_disk``)."""

    dataset_path: str = field(default="data/voices", metadata={"help": "load_from_disk folder of the corpus."})
    train_split: str = field(default="train", metadata={"help": "Split of the meta-training tasks."})
    validation_split: str | None = field(default="validation", metadata={"help": "Split of the validation tasks."})
    max_train_tasks: int | None = field(default=None, metadata={"help": "Keep only this many training tasks."})
    train_tasks: list[str] | None = field(
        default=None,
        metadata={"help": "Keep only the training tasks whose name matches one of these fnmatch patterns, e.g. "
                  "'festival:*' 'flite:*' to meta-train on the voices made from recordings (before max_train_tasks)."},
    )
