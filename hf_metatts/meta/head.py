"""The meta-learner state that is not the TTS model, and how it is saved.

``MetaLearnerConfig`` (method, inner steps and lr, adapted names, first-order flag, ...) goes to
``meta_learner_config.json``; the learned tensors of :class:`MetaLearnerHead` (Meta-SGD learning rates,
Meta-LSTM weights) go to ``meta_learner.safetensors``. JSON and safetensors only, never pickle.
"""

import dataclasses
import fnmatch
import json
import logging
import os
from dataclasses import asdict, dataclass, field

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import InvalidMetaConfigError, UnknownAdaptedParameterError
from .maml import inner_rule
from .meta_lstm import MetaLSTMOptimizer

logger = logging.getLogger(__name__)

META_CONFIG_NAME = "meta_learner_config.json"
META_WEIGHTS_NAME = "meta_learner.safetensors"
META_FORMAT_VERSION = 1


@dataclass
class MetaLearnerConfig:
    """Everything needed to rebuild the inner loop of a meta-trained checkpoint."""

    method: str = "maml"
    inner_steps: int = 5
    inner_lr: float = 0.01
    inner_optimizer: str = "sgd"
    first_order: bool = False
    #: ``"query_loss"`` (MAML's outer gradient) or ``"reptile"`` (:mod:`hf_metatts.meta.reptile`); training only
    outer_update: str = "query_loss"
    adapted_parameter_names: list[str] = field(default_factory=list)
    multi_step_loss: bool = False
    multi_step_loss_min_weight: float = 0.03
    zero_shot_start: bool = False
    zero_shot_loss_weight: float = 0.0
    global_variance_weight: float = 0.0
    meta_lstm_hidden_size: int = 20
    meta_lstm_forget_bias: float = 8.0
    meta_lstm_init_scale: float = 1e-3
    grad_preprocess_p: float = 10.0
    meta_sgd_lr_init: float | None = None
    #: Meta-SGD only: one learned rate per inner step and element (``(inner_steps, *shape)``), not one per element
    per_step_rates: bool = False
    finetune_lr: float = 1e-3
    task_column: str = "speaker_id"
    shots: int = 4
    query_shots: int = 4
    tasks_per_step: int = 4
    task_names: list[str] = field(default_factory=list)
    format_version: int = META_FORMAT_VERSION

    @classmethod
    def from_training_args(cls, args, adapted_parameter_names: list[str], task_names=()) -> "MetaLearnerConfig":
        keys = set(cls.__dataclass_fields__) - {"adapted_parameter_names", "task_names", "format_version"}
        values = {k: getattr(args, k) for k in keys if hasattr(args, k)}
        names = list(adapted_parameter_names)
        return cls(**values, adapted_parameter_names=names, task_names=[str(t) for t in task_names])

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def weighs_start(self) -> bool:
        """Whether the meta-objective also scores the start voice before any step: the support encoder's voice
        with ``zero_shot_start``, else the model's own values of the adapted set."""
        return self.zero_shot_loss_weight > 0

    # Settings that must agree for a checkpoint to be resumed by another run.
    RESUME_KEYS = (
        "method", "inner_steps", "inner_lr", "inner_optimizer", "first_order", "adapted_parameter_names",
        "multi_step_loss", "zero_shot_start", "meta_lstm_hidden_size", "task_column", "shots", "query_shots",
        "tasks_per_step", "task_names", "per_step_rates", "outer_update",
    )


def resolve_adapted_names(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    """Names of the adapted parameter set: the model's own, or those matching ``patterns`` (fnmatch).

    Raises:
        UnknownAdaptedParameterError: a pattern matches no parameter, or the set is empty.
    """
    all_names = [n for n, _ in model.named_parameters()]
    if patterns:
        unknown = [pat for pat in patterns if not fnmatch.filter(all_names, pat)]
        if unknown:
            sample = ", ".join(all_names[:8]) + (", ..." if len(all_names) > 8 else "")
            raise UnknownAdaptedParameterError(
                f"adapted_parameters patterns {unknown} match no parameter of {type(model).__name__} "
                f"(parameters include: {sample}). Fix the patterns (fnmatch syntax, e.g. 'voice.*')."
            )
    if hasattr(model, "adapted_parameter_names"):
        try:
            names = list(model.adapted_parameter_names(patterns) if patterns else model.adapted_parameter_names())
        except ValueError as err:
            raise UnknownAdaptedParameterError(str(err)) from err
    elif patterns:
        names = [n for n in all_names if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    else:
        raise UnknownAdaptedParameterError(
            f"{type(model).__name__} has no adapted_parameter_names(); pass adapted_parameters patterns."
        )
    if not names:
        raise UnknownAdaptedParameterError("The adapted parameter set is empty; name at least one parameter.")
    missing = [n for n in names if n not in all_names]
    if missing:
        raise UnknownAdaptedParameterError(f"Adapted names {missing} are not parameters of the model.")
    return names


def _key(name: str) -> str:
    return name.replace(".", "__")


class MetaLearnerHead(nn.Module):
    """Learned meta-learner tensors: Meta-SGD learning rates (``inner_lrs``) and/or the Meta-LSTM.

    Args:
        config: the meta-learner configuration.
        shapes: name -> shape of the adapted parameters (for Meta-SGD learning rates: a tensor of that shape per
            parameter, or ``(inner_steps, *shape)`` with ``config.per_step_rates``).
    """

    def __init__(self, config: MetaLearnerConfig, shapes: dict[str, torch.Size]):
        super().__init__()
        self.config = config
        self.inner_lrs = nn.ParameterDict()
        self.meta_lstm = None
        if config.method == "metasgd":
            init = config.inner_lr if config.meta_sgd_lr_init is None else config.meta_sgd_lr_init
            steps = (config.inner_steps,) if config.per_step_rates else ()
            for name in config.adapted_parameter_names:
                self.inner_lrs[_key(name)] = nn.Parameter(torch.full(steps + tuple(shapes[name]), float(init)))
        elif config.method == "meta_lstm":
            self.meta_lstm = MetaLSTMOptimizer(
                hidden_size=config.meta_lstm_hidden_size,
                inner_lr=config.inner_lr,
                forget_bias=config.meta_lstm_forget_bias,
                init_scale=config.meta_lstm_init_scale,
                preprocess_p=config.grad_preprocess_p,
            )

    def learning_rates(self) -> dict[str, torch.Tensor] | float:
        """Per-parameter learning rates (Meta-SGD; ``(inner_steps, *shape)`` each with ``per_step_rates``) or the
        scalar ``inner_lr``."""
        if len(self.inner_lrs):
            return {n: self.inner_lrs[_key(n)] for n in self.config.adapted_parameter_names}
        return self.config.inner_lr

    def scaled(self, factor: float) -> "MetaLearnerHead":
        """A copy whose steps are ``factor`` times as large: every Meta-SGD rate (or a maml ``inner_lr``) times
        ``factor``; the config's ``inner_lr`` and ``meta_sgd_lr_init`` follow. ``self`` is unchanged.

        Raises:
            InvalidMetaConfigError: ``factor`` is not a finite number > 0, or the rule is a Meta-LSTM (it has no
                rate to scale).
        """
        factor = float(factor)
        if not 0 < factor < float("inf"):
            raise InvalidMetaConfigError(f"A step-size factor must be a finite number > 0, got {factor}.")
        if self.meta_lstm is not None:
            raise InvalidMetaConfigError("A Meta-LSTM meta-learner has no learning rate to scale: its update is "
                                         "learned as a whole. Scale maml or metasgd meta-learners only.")
        config = dataclasses.replace(
            self.config, inner_lr=self.config.inner_lr * factor,
            meta_sgd_lr_init=None if self.config.meta_sgd_lr_init is None else self.config.meta_sgd_lr_init * factor)
        copy = MetaLearnerHead(config, self.parameter_shapes())
        with torch.no_grad():
            for key, rate in self.inner_lrs.items():
                copy.inner_lrs[key].copy_(rate * factor)
        return copy

    def rule(self, lr: float | None = None, detach: bool = False):
        """The inner update rule this meta-learner was trained with: the Meta-LSTM, or ``inner_optimizer`` (SGD or
        Adam directions) with the learned per-parameter rates (Meta-SGD) or ``inner_lr``; ``lr`` replaces the
        rates with one float (not for the Meta-LSTM); ``detach`` cuts the rates from the graph (adaptation)."""
        if self.meta_lstm is not None and lr is None:
            return self.meta_lstm.rule()
        rates = self.learning_rates() if lr is None else lr
        if detach and isinstance(rates, dict):
            rates = {n: t.detach() for n, t in rates.items()}
        return inner_rule(rates, self.config.inner_optimizer, per_step=self.config.per_step_rates and lr is None)

    def parameter_shapes(self) -> dict[str, torch.Size]:
        """Shapes of the adapted parameters that carry Meta-SGD rates (without the step axis of per-step rates)."""
        return rate_parameter_shapes(self.config, {n: self.inner_lrs[_key(n)].shape for n in
                                                   self.config.adapted_parameter_names if _key(n) in self.inner_lrs})

    def save_pretrained(self, directory: str) -> None:
        """Write ``meta_learner_config.json`` and ``meta_learner.safetensors`` into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        write_meta_config(directory, self.config)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, os.path.join(directory, META_WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: str, shapes: dict[str, torch.Size] | None = None) -> "MetaLearnerHead":
        """Load a head saved by :meth:`save_pretrained`."""
        config = read_meta_config(directory)
        tensors = load_file(os.path.join(directory, META_WEIGHTS_NAME))
        if shapes is None:
            saved = {n: tensors[f"inner_lrs.{_key(n)}"].shape for n in config.adapted_parameter_names
                     if f"inner_lrs.{_key(n)}" in tensors}
            shapes = rate_parameter_shapes(config, saved)
        head = cls(config, shapes)
        head.load_state_dict(tensors, strict=True)
        return head


def rate_parameter_shapes(config: MetaLearnerConfig, rate_shapes: dict[str, torch.Size]) -> dict[str, torch.Size]:
    """Shapes of saved Meta-SGD rate tensors -> shapes of their parameters (per-step rates drop their step axis)."""
    return {n: torch.Size(shape[1:]) if config.per_step_rates else shape for n, shape in rate_shapes.items()}


def write_meta_config(directory: str, config: MetaLearnerConfig) -> None:
    """Write ``config`` as ``meta_learner_config.json`` in ``directory`` (which must exist)."""
    with open(os.path.join(directory, META_CONFIG_NAME), "w", encoding="utf-8") as fh:
        json.dump(config.to_dict(), fh, indent=2, sort_keys=True)


def read_meta_config(directory: str) -> MetaLearnerConfig:
    """Read ``meta_learner_config.json``; raises InvalidMetaConfigError for a newer format."""
    with open(os.path.join(directory, META_CONFIG_NAME), encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("format_version", 1) > META_FORMAT_VERSION:
        raise InvalidMetaConfigError(
            f"{directory} was written by a newer hf-metatts (meta format {data['format_version']}); upgrade it."
        )
    known = set(MetaLearnerConfig.__dataclass_fields__)
    return MetaLearnerConfig(**{k: v for k, v in data.items() if k in known})


def load_meta_learner(directory: str) -> MetaLearnerHead | None:
    """The meta-learner saved next to a model in ``directory``, or None if there is none.

    The result carries ``.config`` (method, inner steps/lr, adapted names, first-order flag) and the learned
    tensors; pass it as ``meta_learner=`` to :func:`hf_metatts.meta.adapt_parameters`.
    """
    if not os.path.isfile(os.path.join(directory, META_CONFIG_NAME)):
        return None
    if not os.path.isfile(os.path.join(directory, META_WEIGHTS_NAME)):
        logger.warning("%s has %s but no %s: ignoring it.", directory, META_CONFIG_NAME, META_WEIGHTS_NAME)
        return None
    return MetaLearnerHead.from_pretrained(directory)
