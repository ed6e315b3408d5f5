"""Adaptation with a loss curve: ``model.adapt`` step by step, reporting each step's support loss.

This follows :func:`hf_metatts.voice_adapt.adapt_model` (same checks, same defaults, same voice) and adds a
``on_step(step, total, loss)`` callback, which the demo uses for its progress bar and its adaptation curve.
"""

import collections
import logging
import os
from collections.abc import Callable

from ..voice import MetaTTSVoice, VoiceConfig
from ..voice_adapt import (
    DEFAULT_LANGUAGE,
    VOICE_METHODS,
    _hub_revision,
    collate,
    meta_learner_for,
    prepare_support,
    processor_for,
)
from ..voice_base import base_fingerprint
from ..voice_validation import ClipValidation, alignment_scores, check_alignment, load_clips

logger = logging.getLogger(__name__)

StepReport = Callable[[int, int, float], None]


def adapt_with_curve(model, clips, method: str = "maml", steps: int | None = None, lr: float | None = None,
                     validation: ClipValidation | None = None, language: str | None = None,
                     on_step: StepReport | None = None, processor=None,
                     meta_learner=None) -> tuple[MetaTTSVoice, list[float]]:
    """Adapt ``model`` to ``clips`` like ``model.adapt`` and return ``(voice, losses)``.

    ``losses[i]`` is the support loss after step ``i + 1``. The model's weights are not changed. Raises the
    ``ClipError`` family of :mod:`hf_metatts.voice_errors` for bad clips, before anything is adapted.
    """
    from .. import __version__
    from ..meta import adapt_parameters

    if method not in VOICE_METHODS:
        raise ValueError(f"method={method!r} is unknown: choose one of {', '.join(VOICE_METHODS)}.")
    validation = validation or ClipValidation()
    processor = processor_for(model, processor)
    rate = model.config.sampling_rate
    support = load_clips(clips, rate, validation, language=language)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses: list[float] = []
    try:
        examples = prepare_support(support, processor, validation, device)
        check_alignment([clip.name for clip in support], alignment_scores(model, examples), validation)
        if meta_learner is None and method != "finetune":
            meta_learner = meta_learner_for(model)
        inner = method
        if method == "maml" and meta_learner is not None and meta_learner.config.method == "metasgd":
            inner = "metasgd"
        if steps is None:
            steps = 0 if method == "zero_shot" else (meta_learner.config.inner_steps if meta_learner else 5)

        def record(step, loss, _params):
            losses.append(float(loss))
            if on_step is not None:
                on_step(step, steps, float(loss))

        params = adapt_parameters(model, collate(examples, validation.max_clips_per_batch), method=inner,
                                  steps=steps, lr=lr, meta_learner=meta_learner if inner != "finetune" else None,
                                  callback=record)
    finally:
        model.train(was_training)
    source = getattr(model, "name_or_path", "") or None
    if source and os.path.isdir(source):
        source = os.path.abspath(source)
    languages = collections.Counter(clip.language or DEFAULT_LANGUAGE for clip in support)
    config = VoiceConfig(
        base_model=source, base_revision=_hub_revision(source), base_fingerprint=base_fingerprint(model),
        method=inner, steps=int(steps),
        shots=len(support), language=languages.most_common(1)[0][0], sampling_rate=rate,
        support_seconds=round(sum(clip.seconds for clip in support), 3), learning_rate=lr,
        library_version=__version__)
    logger.info("Adapted a voice (%s, %d steps, %d clips).", inner, steps, len(support))
    return MetaTTSVoice(params, config, processor=processor, base_config=model.config.to_dict()), losses
