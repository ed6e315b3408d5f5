"""What the demo shares between browser sessions (the base model, behind a lock) and what it keeps per session."""

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)


class ModelHost:
    """The base model and its processor, loaded once and shared by every session.

    Adaptation and synthesis temporarily swap module parameters (``torch.func.functional_call``), so every model
    call goes through :attr:`lock`: one session's voice can never leak into another's audio. The base weights
    are never changed.
    """

    def __init__(self, model, processor, source: str):
        self.model = model.eval()
        self.processor = processor
        self.source = source
        self.lock = threading.Lock()

    @classmethod
    def load(cls, source: str) -> "ModelHost":
        """Load a checkpoint folder or Hub id (the processor saved with it, else the default one)."""
        from ..modeling_metatts import MetaTTSForTextToSpeech
        from ..voice_adapt import processor_for

        logger.info("Loading the demo's base model from %s", source)
        model = MetaTTSForTextToSpeech.from_pretrained(source)
        return cls(model, processor_for(model), source)

    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    def synthesize(self, text: str, voice=None, language: str | None = None) -> np.ndarray:
        """``text`` -> ``(samples,)`` float32 waveform at :attr:`sampling_rate`, in ``voice`` (None: the base)."""
        kwargs = {"language": language} if language else {}
        inputs = self.processor(text=text, return_tensors="pt", **kwargs)
        with self.lock, torch.no_grad():
            output = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], voice=voice)
        return output.waveform[0].detach().cpu().float().numpy()


@dataclass
class DemoSession:
    """One browser session's voice: kept in ``gr.State``, so sessions never share it."""

    voice: object | None = None
    losses: list[float] = field(default_factory=list)
    method: str | None = None
    clip_names: list[str] = field(default_factory=list)

    @property
    def has_voice(self) -> bool:
        return self.voice is not None
