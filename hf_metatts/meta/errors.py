"""Exceptions of the meta-learning package. Each message says what went wrong and what to do."""

from ..errors import MetaTTSError


class MetaLearningError(MetaTTSError, ValueError):
    """Base class of the meta-learning errors (all are ``ValueError`` subclasses)."""


class TaskSplitTooSmallError(MetaLearningError):
    """Some tasks of a split hold fewer utterances than ``shots + query_shots``."""


class UnknownAdaptedParameterError(MetaLearningError):
    """An adapted-subset pattern matches no parameter of the model."""


class SecondOrderUnsupportedError(MetaLearningError):
    """Second-order meta-gradients were requested with a setting that cannot compute them."""


class CheckpointMismatchError(MetaLearningError):
    """A checkpoint was written by a run with another meta-learning configuration."""


class InvalidMetaConfigError(MetaLearningError):
    """A meta-learning argument is out of range or inconsistent with the others."""
