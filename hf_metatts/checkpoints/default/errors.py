"""Exceptions raised by hf-metatts. Each message says what went wrong and what to do.

This file travels with saved checkpoints (remote code), so it imports nothing but the standard library.
"""


class MetaTTSError(Exception):
    """Base class of every hf-metatts error."""


class InvalidTextError(MetaTTSError, ValueError):
    """The text cannot be synthesised: empty, whitespace-only or without pronounceable content."""


class UnsupportedLanguageError(MetaTTSError, ValueError):
    """The language code is unknown to espeak-ng."""


class InvalidAudioError(MetaTTSError, ValueError):
    """Audio is empty, not finite, or cannot be decoded."""


class CheckpointError(MetaTTSError, OSError):
    """A checkpoint folder is missing files or holds corrupted weights."""
