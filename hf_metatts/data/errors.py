"""Errors raised by the data layer. Each message says what went wrong and what to do."""

from ..errors import InvalidAudioError, MetaTTSError

__all__ = [
    "CorpusBuildError",
    "InvalidAudioError",
    "MetaTTSError",
    "MissingColumnError",
    "NoSentencesError",
    "SourceUnavailableError",
    "TooFewTasksError",
]


class MissingColumnError(MetaTTSError, KeyError):
    """A dataset lacks a column that the loader was told to use."""

    def __init__(self, column: str, role: str, present: list[str]):
        self.column, self.role, self.present = column, role, list(present)
        super().__init__(
            f"column {column!r} (the {role} column) is not in the dataset; columns present: {sorted(present)}. "
            f"Pass {role}_column=<one of those> or a preset that matches the dataset."
        )

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return self.args[0]


class SourceUnavailableError(MetaTTSError, RuntimeError):
    """A speech synthesiser is not installed or cannot run."""


class NoSentencesError(MetaTTSError, RuntimeError):
    """No usable sentences were found for a language."""


class TooFewTasksError(MetaTTSError, ValueError):
    """After filtering, there are not enough tasks to make the requested splits."""


class CorpusBuildError(MetaTTSError, RuntimeError):
    """The corpus build cannot go on (for example the output folder holds a different build)."""
