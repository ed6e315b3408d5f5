"""Exceptions of the voice API. Each names the clip, file or checkpoint at fault and what to do."""

from .errors import CheckpointError, InvalidAudioError, MetaTTSError


class ClipError(InvalidAudioError):
    """A support clip cannot be used for adaptation (``ValueError``). ``clip`` names it."""

    def __init__(self, message: str, clip: str | None = None):
        super().__init__(message)
        self.clip = clip


class NoClipsError(ClipError):
    """No support clips were given."""


class TooManyClipsError(ClipError):
    """More clips were given than `ClipValidation.max_clips` allows."""


class ClipDurationError(ClipError):
    """A clip is shorter or longer than `ClipValidation` allows."""


class SilentClipError(ClipError):
    """A clip is (nearly) silent."""


class ClippedAudioError(ClipError):
    """Too many samples of a clip sit at full scale (the recording clipped)."""


class TranscriptMismatchError(ClipError):
    """A transcript does not fit its audio (the aligner's score is past the error threshold)."""


class TranscriptMismatchWarning(UserWarning):
    """A transcript fits its audio poorly (the aligner's score is past the warning threshold)."""


class VoiceMismatchError(MetaTTSError, ValueError):
    """A voice was applied to a base whose weights differ from the base it was adapted on."""


class AdaptationPrecisionError(MetaTTSError, TypeError):
    """``model.adapt`` was called on a model whose weights are not float32."""


class ExtraParametersError(MetaTTSError, ValueError):
    """``model.adapt(extra_parameters=...)`` names parameters it cannot adapt, or asks for them where they cannot be."""


class VoiceFileError(CheckpointError):
    """A voice folder or repo is incomplete, truncated or tampered with (``OSError``)."""


class VoiceConfigMissingError(VoiceFileError):
    """A voice folder has no ``voice_config.json``."""


__all__ = [
    "ClipError",
    "NoClipsError",
    "TooManyClipsError",
    "ClipDurationError",
    "SilentClipError",
    "ClippedAudioError",
    "TranscriptMismatchError",
    "TranscriptMismatchWarning",
    "VoiceMismatchError",
    "AdaptationPrecisionError",
    "ExtraParametersError",
    "VoiceFileError",
    "VoiceConfigMissingError",
]
