"""What every speech source provides: voice descriptions and batch synthesis with optional phone timings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Style", "Synthesis", "VoiceSpec", "NEUTRAL"]


@dataclass(frozen=True)
class Style:
    """A speaking style made with a synthesiser's prosody controls.

    Attributes:
        name: the value of the ``style`` column.
        rate: speaking-rate factor (1.0 = the voice's default; 1.3 = 30% faster).
        pitch: pitch factor applied to the voice's mean F0 (1.0 = unchanged).
        range: pitch-range factor (0.2 = nearly monotone, 2.0 = very lively).
    """

    name: str = "neutral"
    rate: float = 1.0
    pitch: float = 1.0
    range: float = 1.0


NEUTRAL = Style()


@dataclass(frozen=True)
class VoiceSpec:
    """One synthesiser voice, as a source can render it.

    Attributes:
        source: ``espeak``, ``flite`` or ``festival``.
        voice: the synthesiser's own voice name (``en-us+m3``, ``slt``, ``kal_diphone``).
        language: espeak-ng language code of the text it reads (``en-us``, ``cs``, ...).
        text_encoding: the encoding the synthesiser reads text in (festival voices differ).
    """

    source: str
    voice: str
    language: str
    text_encoding: str = "utf-8"

    @property
    def key(self) -> str:
        """A file-system-safe unique name: ``espeak-en-us+m3`` -> ``espeak_en-us_m3``."""
        safe = self.voice.replace("+", "_").replace("/", "_").replace(" ", "_")
        return f"{self.source}_{safe}"


@dataclass
class Synthesis:
    """The result of synthesising one sentence.

    Attributes:
        audio: mono float32 waveform at ``sampling_rate``.
        sampling_rate: its rate in Hz.
        phone_timings: ``[{"phone", "start", "end"}]`` in seconds (empty when the source reports none).
    """

    audio: np.ndarray
    sampling_rate: int
    phone_timings: list[dict] = field(default_factory=list)
