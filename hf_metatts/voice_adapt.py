"""``model.adapt(clips)``: a few (audio, transcript) pairs -> a `MetaTTSVoice`; the model is not changed."""

import collections
import fnmatch
import logging
import os
from collections.abc import Callable

import torch

from .data_collator import MetaTTSDataCollator
from .voice import MetaTTSVoice, VoiceConfig
from .voice_base import base_fingerprint, cast_fingerprints
from .voice_errors import AdaptationPrecisionError, ExtraParametersError, TranscriptMismatchError
from .voice_prosody import match_prosody as fit_prosody
from .voice_prosody import match_rhythm as fit_rhythm
from .voice_validation import ClipValidation, check_alignment, load_clips, transcript_scores
from .voice_vocoder import resolve_vocoder_adaptation, with_adapted_vocoder

logger = logging.getLogger(__name__)

#: Methods of ``model.adapt`` (``metasgd`` is what ``maml`` becomes when the base learned its learning rates).
VOICE_METHODS = ("maml", "metasgd", "meta_lstm", "zero_shot", "finetune")
DEFAULT_LANGUAGE = "en-us"
#: Parameters ``extra_parameters`` may not name: the vocoder is adapted by the vocoder's own steps, and the aligner
#: and the support encoder take no part in the mel loss the steps lower.
NOT_ADAPTABLE = {"vocoder.": "the vocoder is adapted by vocoder_steps",
                 "aligner.": "the aligner takes no part in the mel loss the steps lower",
                 "voice_encoder.": "the support encoder only gives the start voice"}
#: The steps and rate ``extra_parameters`` take unless told otherwise: the recipe measured on people's recordings
#: with ``["decoder.layers.*"]`` (docs/voices.md, "A closer voice: the decoder's layers too").
EXTRA_PARAMETERS_STEPS = 40
EXTRA_PARAMETERS_LR = 1e-3
#: The further parameters measured (on people's recordings, then on synthesiser voices): the decoder's layers.
PERSON_EXTRA_PARAMETERS = ("decoder.layers.*",)


def processor_for(model, processor=None):
    """The model's processor: given, saved with the checkpoint, or built from its config."""
    if processor is not None:
        return processor
    from .processing_metatts import MetaTTSProcessor

    source = getattr(model, "name_or_path", "") or ""
    if source:
        try:
            return MetaTTSProcessor.from_pretrained(source)
        except (OSError, ValueError) as error:
            logger.info("No processor saved with %s (%s): using the default one.", source, error)
    from .feature_extraction_metatts import MetaTTSFeatureExtractor
    from .tokenization_metatts import MetaTTSTokenizer

    return MetaTTSProcessor(MetaTTSFeatureExtractor.from_model_config(model.config), MetaTTSTokenizer())


def meta_learner_for(model):
    """The meta-learner saved next to the model's checkpoint (folder or cached Hub repo), or None."""
    from .meta import load_meta_learner
    from .meta.head import META_CONFIG_NAME, META_WEIGHTS_NAME

    source = getattr(model, "name_or_path", "") or ""
    if not source:
        return None
    if os.path.isdir(source):
        return load_meta_learner(source)
    from transformers.utils import cached_file

    revision = _hub_revision(source)
    flags = dict(_raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    paths = [cached_file(source, name, revision=revision, **flags) for name in (META_CONFIG_NAME, META_WEIGHTS_NAME)]
    if any(path is None for path in paths):
        return None
    return load_meta_learner(os.path.dirname(paths[0]))


def _hub_revision(source: str | None) -> str | None:
    """The commit of the cached Hub snapshot that ``source``'s config comes from (None for local folders)."""
    if not source or os.path.isdir(source):
        return None
    from transformers.utils.hub import cached_file, extract_commit_hash

    path = cached_file(source, "config.json", _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    return extract_commit_hash(path, None) if path else None


def _pitch_available() -> bool:
    try:
        import pyworld  # noqa: F401
    except ImportError:
        return False
    return True


def prepare_support(clips, processor, validation: ClipValidation, device) -> list[dict]:
    """Tokenize and featurize each clip: one example per clip (``input_ids`` ``(1, N)``, ``labels`` ``(1, T, M)``,
    masks, ``pitch`` ``(1, T)`` when pyworld is installed). Raises `TranscriptMismatchError` when a clip has
    fewer mel frames than its transcript has phonemes."""
    with_pitch = _pitch_available()
    examples = []
    for clip in clips:
        ids = processor.tokenizer(clip.text, language=clip.language or DEFAULT_LANGUAGE)["input_ids"]
        features = processor.feature_extractor(clip.audio, sampling_rate=clip.sampling_rate, return_pitch=with_pitch)
        frames = features["input_features"].shape[1]
        if frames < len(ids):
            raise TranscriptMismatchError(
                f"The transcript of clip {clip.name} has {len(ids)} phonemes but its {clip.seconds:.2f} s of audio "
                f"hold only {frames} frames: the transcript does not match the audio.", clip=clip.name)
        example = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                   "labels": torch.from_numpy(features["input_features"]),
                   "labels_attention_mask": torch.from_numpy(features["attention_mask"])}
        if with_pitch:
            example["pitch"] = torch.from_numpy(features["pitch"])
        examples.append({key: value.to(device) for key, value in example.items()})
    return examples


def collate(examples: list[dict], per_batch: int) -> list[dict]:
    """Pad examples into batches of at most ``per_batch`` clips."""
    collator = MetaTTSDataCollator()
    rows = [{key: value[0].cpu() for key, value in example.items() if key in ("input_ids", "labels", "pitch")}
            for example in examples]
    device = examples[0]["input_ids"].device
    batches = [collator(rows[start:start + per_batch]) for start in range(0, len(rows), per_batch)]
    return [{key: value.to(device) for key, value in batch.items()} for batch in batches]


def resolve_adaptation(method: str, meta_learner, steps: int | None) -> tuple[str, int]:
    """The inner method and step count `adapt_model` runs for ``method`` with ``meta_learner`` (may be None):
    ``maml`` on a Meta-SGD meta-learner takes its learned rates (``metasgd``); ``zero_shot`` defaults to 0 steps
    (the encoder alone); otherwise the meta-learner's ``inner_steps``, else 5."""
    inner = method
    if method == "maml" and meta_learner is not None and meta_learner.config.method == "metasgd":
        inner = "metasgd"
    if steps is None and method == "zero_shot":
        steps = 0
    if steps is None:
        steps = meta_learner.config.inner_steps if meta_learner is not None else 5
    return inner, steps


def adapted_names_with(model, method: str, meta_learner, steps: int, extra_parameters) -> list[str] | None:
    """The adapted set `adapt_model` steps on: None (the meta-learner's set, else the model's) without
    ``extra_parameters``, else that set followed by every further parameter the fnmatch patterns name.

    Raises:
        ExtraParametersError: (a ``ValueError``) ``extra_parameters`` is not a pattern or a list of them, a pattern
            matches no parameter or one of :data:`NOT_ADAPTABLE`, ``method`` has a learned rule (``metasgd``,
            ``meta_lstm``: it knows only the set it was meta-trained on), or there are no steps to take.
    """
    if extra_parameters is None:
        return None
    patterns = [extra_parameters] if isinstance(extra_parameters, str) else extra_parameters
    if not isinstance(patterns, (list, tuple)) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ExtraParametersError(f"extra_parameters={extra_parameters!r} must be an fnmatch pattern or a list of "
                                   "them, e.g. ['decoder.layers.*'].")
    if method in ("metasgd", "meta_lstm"):
        raise ExtraParametersError(f"extra_parameters cannot be adapted with method={method!r}: its learned rule "
                                   "knows only the parameters it was meta-trained on. Use method='maml' (one rate for "
                                   "all) or 'finetune'.")
    if steps == 0:
        raise ExtraParametersError("extra_parameters needs steps > 0: without steps they would only be copied into "
                                   "the voice.")
    names = {name for name, _ in model.named_parameters()}
    for pattern in patterns:
        refused = sorted({why for prefix, why in NOT_ADAPTABLE.items()
                          if any(n.startswith(prefix) and fnmatch.fnmatchcase(n, pattern) for n in names)})
        if refused:
            raise ExtraParametersError(f"extra_parameters pattern {pattern!r} names parameters the steps cannot adapt "
                                       f"({'; '.join(refused)}): name acoustic-model parameters such as "
                                       "'decoder.layers.*'.")
    try:
        extra = model.adapted_parameter_names(list(patterns))
    except ValueError as error:  # a pattern that matches no parameter
        raise ExtraParametersError(f"extra_parameters: {error}") from error
    from .meta.adapt import default_adapted_names

    # the set adapt_parameters would take without them (fine-tuning is given no meta-learner)
    base = default_adapted_names(model, meta_learner if method != "finetune" else None)
    return base + [name for name in extra if name not in base]


def check_float32(model) -> None:
    """Raise `AdaptationPrecisionError` unless every floating weight of ``model`` is float32: a few gradient steps
    on a handful of clips need its precision (and some of the steps' operations have no half-precision kernels)."""
    other = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()
                    if p.is_floating_point() and p.dtype != torch.float32})
    if other:
        raise AdaptationPrecisionError(
            f"model.adapt runs in float32, but this model's weights are {', '.join(other)}: load it in float32 to "
            "adapt (the default of from_pretrained), or model.float(). The voice then also applies to the base "
            "loaded with dtype=torch.float16 or torch.bfloat16.")


def adapt_model(model, clips, method: str = "maml", steps: int | None = None, lr: float | None = None,
                meta_learner=None, language: str | None = None, sampling_rate: int | None = None,
                processor=None, validation: ClipValidation | None = None, progress: bool = True,
                base_model: str | None = None, base_revision: str | None = None, text_column: str = "text",
                audio_column: str = "audio", language_column: str = "language",
                callback: Callable[[int, int, float], None] | None = None, vocoder_steps: int | None = None,
                vocoder_lr: float | None = None, match_prosody: bool = False,
                match_rhythm: bool = False, extra_parameters: str | list[str] | None = None) -> MetaTTSVoice:
    """Adapt the model's adapted parameter set to a few clips of a new voice; the model is not changed.

    Args:
        clips: (audio, transcript) pairs (audio: array, path, bytes or a `datasets` audio dict), a
            `datasets.Dataset` with ``audio_column``, ``text_column`` (and optionally ``language_column``), or the
            path of a clip folder: sidecar ``.txt`` transcripts, an audiofolder ``metadata.csv``/``.jsonl``
            (``file_name`` and ``text_column``) or LJSpeech ``metadata.csv`` (`hf_metatts.clip_folders`).
        method: ``maml`` (gradient steps from the meta-learned start, with the base's learned per-parameter
            learning rates when it has them), ``metasgd``, ``meta_lstm`` (the learned optimiser), ``zero_shot``
            (the support encoder; ``steps`` default 0: the encoder alone) or ``finetune`` (Adam, the baseline).
        steps: gradient steps (default: the meta-learner's, else 5; 0 for zero_shot).
        lr: learning rate (default: the meta-learner's, else 0.01; finetune 1e-3).
        meta_learner: default: the one saved next to the checkpoint (``hf_metatts.meta.load_meta_learner``).
        language: espeak-ng code of the transcripts (default ``en-us``; a dataset's column wins).
        sampling_rate: rate of bare-array clips (default: the model's, with a warning).
        processor: default: the checkpoint's `MetaTTSProcessor`.
        validation: clip-check thresholds, the cut of each clip's leading and trailing silence and the speech
            level each clip is scaled to (`ClipValidation`).
        progress: show a progress bar over the steps.
        base_model, base_revision: the base's id and revision to record (default: where the model was loaded).
        callback: ``callback(step, total_steps, support_loss)`` after each step (progress bars, loss curves).
        vocoder_steps: Adam steps that then adapt a copy of the model's neural vocoder to the support clips
            (`hf_metatts.voice_vocoder`; default: the config's ``voice_vocoder_steps``, 0 = off). The voice then
            also holds the adapted vocoder parameters. Needs the trained iSTFT vocoder when above 0.
        vocoder_lr: their learning rate (default: the config's ``voice_vocoder_learning_rate``).
        match_prosody: after the steps, refit the voice's duration and pitch predictors' output layers to the
            clips' rate, pitch level and pitch range (`hf_metatts.voice_prosody`): for clips in a speaking style
            (faster, livelier, flatter) that the steps alone carry little of. The voice then also holds those
            layers (162 floats on the bundled checkpoint) and its config records what matching did
            (``prosody_match``).
        match_rhythm: after the steps (and before prosody matching, when both are asked for), refit the duration
            predictor's output layer to the clips' token durations (`hf_metatts.voice_prosody.match_rhythm`): for a
            language the model never trained on, whose rhythm the steps alone do not learn. The voice then also
            holds that layer (161 floats on the bundled checkpoint) and its config records the fit
            (``rhythm_match``).
        extra_parameters: fnmatch patterns of further parameters the steps adapt beside the checkpoint's set, e.g.
            ``["decoder.layers.*"]`` (1.17 M floats on the bundled checkpoint: a 5.5 MB voice with the vocoder's
            layer) for a closer voice (docs/voices.md, "A closer voice: the decoder's layers too"). With
            them ``steps`` defaults to :data:`EXTRA_PARAMETERS_STEPS` (40) and ``lr`` to
            :data:`EXTRA_PARAMETERS_LR` (1e-3), the measured recipe. Not with ``metasgd`` or ``meta_lstm``.

    Returns:
        A `MetaTTSVoice`. Raises the `ClipError` family for bad clips, before anything is adapted.
    """
    from tqdm.auto import tqdm

    from . import __version__
    from .meta import adapt_parameters
    from .meta.maml import with_fixed_alignment

    if method not in VOICE_METHODS:
        raise ValueError(f"method={method!r} is unknown: choose one of {', '.join(VOICE_METHODS)}.")
    for name, value in (("match_prosody", match_prosody), ("match_rhythm", match_rhythm)):
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be True or False.")
    check_float32(model)
    vocoder_adaptation = resolve_vocoder_adaptation(model, vocoder_steps, vocoder_lr)
    if extra_parameters is not None:
        steps = EXTRA_PARAMETERS_STEPS if steps is None else steps
        lr = EXTRA_PARAMETERS_LR if lr is None else lr
    if meta_learner is None and method != "finetune":
        meta_learner = meta_learner_for(model)
    inner, steps = resolve_adaptation(method, meta_learner, steps)
    adapted_names = adapted_names_with(model, inner, meta_learner, steps, extra_parameters)
    validation = validation or ClipValidation()
    processor = processor_for(model, processor)
    rate = model.config.sampling_rate
    support = load_clips(clips, rate, validation, array_sampling_rate=sampling_rate, language=language,
                         text_column=text_column, audio_column=audio_column, language_column=language_column)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        examples = prepare_support(support, processor, validation, device)
        forward_sums, paths = transcript_scores(model, examples)
        check_alignment([clip.name for clip in support], forward_sums, validation, paths)
        # the aligner's durations once: the acoustic steps and the vocoder's teacher-forced read both use them
        batches = with_fixed_alignment(model, collate(examples, validation.max_clips_per_batch))
        bar = tqdm(total=steps, desc=f"Adapting voice ({inner})", disable=not progress or steps == 0, leave=False)

        def on_step(step, loss, _params):
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if callback is not None:
                callback(step, steps, float(loss))

        try:
            params = adapt_parameters(model, batches, method=inner, steps=steps, lr=lr,
                                      meta_learner=meta_learner if inner != "finetune" else None,
                                      callback=on_step, adapted_names=adapted_names)
        finally:
            bar.close()
        prosody = rhythm = None
        if match_rhythm:
            params, rhythm = fit_rhythm(model, params, batches)
        if match_prosody:
            params, prosody = fit_prosody(model, params, batches)
        vocoder_report = None
        if vocoder_adaptation.steps:
            params, vocoder_report = with_adapted_vocoder(model, params, batches, [clip.audio for clip in support],
                                                          vocoder_adaptation)
    finally:
        model.train(was_training)
    source = base_model or (getattr(model, "name_or_path", "") or None)
    if source and os.path.isdir(source):
        source = os.path.abspath(source)
    languages = collections.Counter(clip.language or DEFAULT_LANGUAGE for clip in support)
    config = VoiceConfig(
        base_model=source,
        base_revision=base_revision or _hub_revision(source),
        base_fingerprint=base_fingerprint(model), base_fingerprints_by_dtype=cast_fingerprints(model),
        method=inner, steps=int(steps), shots=len(support), language=languages.most_common(1)[0][0],
        sampling_rate=rate, support_seconds=round(sum(clip.seconds for clip in support), 3),
        learning_rate=lr, library_version=__version__, vocoder_steps=vocoder_adaptation.steps,
        vocoder_learning_rate=vocoder_adaptation.learning_rate if vocoder_adaptation.steps else None,
        vocoder_support_loss=vocoder_report and {"before": vocoder_report["before"]["mel_l1"],
                                                 "after": vocoder_report["after"]["mel_l1"]},
        prosody_match=prosody.to_dict() if prosody is not None else None,
        rhythm_match=rhythm.to_dict() if rhythm is not None else None)
    base_config = model.config.to_dict()
    return MetaTTSVoice(params, config, processor=processor, base_config=base_config)


__all__ = ["adapt_model", "adapted_names_with", "VOICE_METHODS", "NOT_ADAPTABLE", "EXTRA_PARAMETERS_STEPS",
           "EXTRA_PARAMETERS_LR", "PERSON_EXTRA_PARAMETERS", "prepare_support", "processor_for", "meta_learner_for"]
