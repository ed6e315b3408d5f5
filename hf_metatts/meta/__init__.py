"""Meta-learning for few-shot TTS: episodes, MAML / Meta-SGD / Reptile, Meta-LSTM, zero-shot start, the baseline,
``MetaTrainer`` and the adaptation entry point used by the voice API.

Quick reference::

    from hf_metatts.meta import MetaTrainer, MetaTrainingArguments, adapt_parameters, load_meta_learner

    trainer = MetaTrainer(model, MetaTrainingArguments(output_dir="out", method="maml", max_steps=1000),
                          train_dataset=train, eval_dataset=val, data_collator=collator)
    trainer.train(); trainer.save_model()
    head = load_meta_learner("out")                      # None when the folder has no meta-learner
    voice = adapt_parameters(model, support_batch, method="maml", steps=5, meta_learner=head)
"""

from .adapt import ADAPT_METHODS, adapt_parameters
from .arguments import (
    METHODS,
    MetaDataArguments,
    MetaModelArguments,
    MetaTrainingArguments,
)
from .episodes import EpisodeDataset, EpisodeIndices, EpisodeSampler
from .errors import (
    CheckpointMismatchError,
    InvalidMetaConfigError,
    MetaLearningError,
    SecondOrderUnsupportedError,
    TaskSplitTooSmallError,
    UnknownAdaptedParameterError,
)
from .head import (
    MetaLearnerConfig,
    MetaLearnerHead,
    load_meta_learner,
    resolve_adapted_names,
)
from .identity import IdentityObjective, SpeakerIdentityEncoder, identity_loss, load_identity_encoder
from .learner import MetaLearner, MetaOutput
from .maml import (
    InnerLoopResult,
    SGDRule,
    inner_loop,
    make_loss_fn,
    maml_adapt,
    multi_step_loss_weights,
)
from .meta_lstm import MetaLSTMOptimizer, preprocess
from .reptile import OUTER_UPDATES, reptile_loss
from .trainer import MetaTrainer

__all__ = [
    "ADAPT_METHODS",
    "METHODS",
    "OUTER_UPDATES",
    "CheckpointMismatchError",
    "EpisodeDataset",
    "EpisodeIndices",
    "EpisodeSampler",
    "IdentityObjective",
    "InnerLoopResult",
    "InvalidMetaConfigError",
    "MetaDataArguments",
    "MetaLSTMOptimizer",
    "MetaLearner",
    "SpeakerIdentityEncoder",
    "identity_loss",
    "load_identity_encoder",
    "MetaLearnerConfig",
    "MetaLearnerHead",
    "MetaLearningError",
    "MetaModelArguments",
    "MetaOutput",
    "MetaTrainer",
    "MetaTrainingArguments",
    "SGDRule",
    "SecondOrderUnsupportedError",
    "TaskSplitTooSmallError",
    "UnknownAdaptedParameterError",
    "adapt_parameters",
    "inner_loop",
    "load_meta_learner",
    "make_loss_fn",
    "maml_adapt",
    "multi_step_loss_weights",
    "preprocess",
    "reptile_loss",
    "resolve_adapted_names",
]
