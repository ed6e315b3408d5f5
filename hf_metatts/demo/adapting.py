"""Adaptation with a loss curve: ``model.adapt`` reporting each step's support loss.

The demo uses the ``on_step(step, total, loss)`` reports for its progress bar and its adaptation curve.
"""

from collections.abc import Callable

from ..voice import MetaTTSVoice
from ..voice_adapt import adapt_model
from ..voice_validation import ClipValidation

StepReport = Callable[[int, int, float], None]


def adapt_with_curve(model, clips, method: str = "maml", steps: int | None = None, lr: float | None = None,
                     validation: ClipValidation | None = None, language: str | None = None,
                     on_step: StepReport | None = None, processor=None, meta_learner=None,
                     match_prosody: bool = False, match_rhythm: bool = False,
                     extra_parameters=None) -> tuple[MetaTTSVoice, list[float]]:
    """Adapt ``model`` to ``clips`` with `adapt_model` and return ``(voice, losses)``.

    ``losses[i]`` is the support loss after step ``i + 1``. ``match_prosody``: refit the voice's rate and pitch to the
    clips after the steps; ``match_rhythm``: refit its token durations (`hf_metatts.voice_prosody`);
    ``extra_parameters``: further parameters the steps adapt (`adapt_model`). The model's
    weights are not changed. Raises the ``ClipError`` family of :mod:`hf_metatts.voice_errors` for bad clips, before
    anything is adapted.
    """
    losses: list[float] = []

    def record(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        if on_step is not None:
            on_step(step, total, loss)

    voice = adapt_model(model, clips, method=method, steps=steps, lr=lr, meta_learner=meta_learner,
                        language=language, processor=processor, validation=validation, progress=False,
                        callback=record, match_prosody=match_prosody, match_rhythm=match_rhythm,
                        extra_parameters=extra_parameters)
    return voice, losses
