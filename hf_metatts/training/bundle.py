"""``hf-metatts bundle``: assemble a shippable base checkpoint from a trained model and a trained vocoder.

The output folder is a complete ``from_pretrained`` / ``pipeline`` checkpoint: ``model.safetensors`` (acoustic
model + neural vocoder), ``config.json`` with ``auto_map``, the remote-code files, tokenizer and feature
extractor, the meta-learner (Meta-SGD rates or Meta-LSTM) next to it, the training summaries of every run that
produced it, and a card from ``model_cards/base_model_card.md`` with the measured results.

    hf-metatts bundle --model outputs/default_metasgd --vocoder outputs/vocoder \
        --runs outputs/default_pretrain outputs/default_metasgd --results benchmarks/results/adaptation.json \
        --out hf_metatts/checkpoints/default
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil

from ..configuration_metatts import check_aligner_duration_weight
from ..model_cards import TRAINING_RUNS_FILE

logger = logging.getLogger(__name__)

#: The bundled checkpoint must stay small enough to live in the repository.
MAX_BUNDLE_BYTES = 25 * 1024 * 1024
RUNS_FILE = TRAINING_RUNS_FILE


class BundleTooLargeError(ValueError):
    """The assembled checkpoint exceeds the size bound; use a smaller config or vocoder."""


class BundleConfigError(ValueError):
    """A bundle option does not fit the model folder (e.g. ``inner_lr`` for a meta-learner without one rate)."""


def _read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def folder_bytes(folder: str) -> int:
    """Total size of the files in ``folder`` (recursively)."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(folder) for name in files)


def run_summary(run_dir: str) -> dict:
    """The ``training_summary.json`` of a training run folder (meta-training or vocoder), with its folder name."""
    path = os.path.join(run_dir, "training_summary.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} has no training_summary.json: was the run finished?")
    summary = _read_json(path)
    summary.pop("arguments", None)
    return {"run": os.path.basename(os.path.normpath(run_dir)), **summary}


def check_inner_lr_override(model_dir: str, inner_lr: float) -> None:
    """Raise :class:`BundleConfigError` unless ``model_dir`` holds a ``maml`` meta-learner (one fixed step size,
    SGD or Adam direction) and ``inner_lr`` is positive: learned rates and the Meta-LSTM have no one rate."""
    from ..meta.head import META_CONFIG_NAME, read_meta_config

    if not os.path.isfile(os.path.join(model_dir, META_CONFIG_NAME)):
        raise BundleConfigError(f"inner_lr={inner_lr} needs a meta-learner, and {model_dir} has no {META_CONFIG_NAME}.")
    method = read_meta_config(model_dir).method
    if method != "maml":
        raise BundleConfigError(f"inner_lr={inner_lr} replaces the one step size of a 'maml' meta-learner; "
                                f"{model_dir} holds a {method!r} one (learned rates or a learned optimiser): "
                                "bundle it without inner_lr.")
    if not inner_lr > 0:
        raise BundleConfigError(f"inner_lr={inner_lr} must be positive.")


def check_global_variance_override(model_dir: str, weight: float) -> None:
    """Raise :class:`BundleConfigError` unless ``model_dir`` holds a meta-learner (the weight is saved in its
    config) and ``weight`` is a finite number >= 0."""
    from ..meta.head import META_CONFIG_NAME

    if not os.path.isfile(os.path.join(model_dir, META_CONFIG_NAME)):
        raise BundleConfigError(f"global_variance_weight={weight} is saved with the meta-learner, and {model_dir} "
                                f"has no {META_CONFIG_NAME}.")
    if not (weight >= 0 and math.isfinite(weight)):
        raise BundleConfigError(f"global_variance_weight={weight} must be a finite number >= 0.")


def set_adaptation_settings(folder: str, inner_lr: float | None = None,
                            global_variance_weight: float | None = None) -> None:
    """Write the step size (``inner_lr``) and/or the global-variance weight that adaptation uses into the
    meta-learner config saved in ``folder``; None leaves a setting as it was meta-trained."""
    from ..meta.head import read_meta_config, write_meta_config

    config = read_meta_config(folder)
    changes = {}
    if inner_lr is not None:
        logger.info("Step size of the shipped meta-learner: %s (meta-trained with %s).", inner_lr, config.inner_lr)
        changes["inner_lr"] = float(inner_lr)
    if global_variance_weight is not None:
        logger.info("Global-variance weight of the shipped inner loop: %s (meta-trained with %s).",
                    global_variance_weight, config.global_variance_weight)
        changes["global_variance_weight"] = float(global_variance_weight)
    write_meta_config(folder, dataclasses.replace(config, **changes))


def check_adaptation_overrides(model_dir: str, inner_lr: float | None, global_variance_weight: float | None) -> None:
    """:func:`check_inner_lr_override` and :func:`check_global_variance_override` for the settings that are given."""
    if inner_lr is not None:
        check_inner_lr_override(model_dir, inner_lr)
    if global_variance_weight is not None:
        check_global_variance_override(model_dir, global_variance_weight)


def stage_model_folder(model, model_dir: str, output_dir: str, inner_lr: float | None = None,
                       global_variance_weight: float | None = None, extra_files: tuple[str, ...] = ()) -> str:
    """Write ``model``, the processor of ``model_dir``, its meta-learner files (with the given adaptation settings
    replaced) and ``extra_files`` of ``model_dir`` into a fresh ``<output_dir>.partial`` folder; returns its path
    (:func:`publish_staged_folder` moves it into place)."""
    from .. import MetaTTSProcessor
    from ..meta.head import META_CONFIG_NAME, META_WEIGHTS_NAME

    staging = output_dir.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    MetaTTSProcessor.from_pretrained(model_dir).save_pretrained(staging)
    names = (META_CONFIG_NAME, META_WEIGHTS_NAME) if os.path.isfile(os.path.join(model_dir, META_CONFIG_NAME)) else ()
    for name in names + tuple(extra_files):
        if os.path.isfile(os.path.join(model_dir, name)):
            shutil.copy2(os.path.join(model_dir, name), staging)
    if inner_lr is not None or global_variance_weight is not None:
        set_adaptation_settings(staging, inner_lr, global_variance_weight)
    return staging


def refuse_taken_output_folder(output_dir: str, overwrite: bool, error: type[Exception]) -> None:
    """Raise ``error`` when ``output_dir`` already holds files and ``overwrite`` is not set (commands that write a
    whole checkpoint folder check this before they write anything)."""
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise error(f"{output_dir} already holds files; choose another --out or pass --overwrite to replace it.")


def publish_staged_folder(staging: str, output_dir: str) -> None:
    """Replace ``output_dir`` with the staged folder."""
    shutil.rmtree(output_dir, ignore_errors=True)
    os.replace(staging, output_dir)


def bundle_checkpoint(model_dir: str, vocoder_dir: str | None, output_dir: str, runs: list[str] = (),
                      results: list[dict] | None = None, repo_id: str = "hf-metatts/metatts-default",
                      datasets: list[str] | None = None, max_bytes: int = MAX_BUNDLE_BYTES,
                      inner_lr: float | None = None, global_variance_weight: float | None = None,
                      keep_runs: bool = False, evaluation: dict | None = None,
                      voice_vocoder: dict | None = None, aligner_skips_marks: bool | None = None,
                      aligner_duration_weight: float | None = None) -> dict:
    """Write the checkpoint; returns ``{"bytes", "num_parameters", "files"}``.

    Args:
        model_dir: a meta-training output folder (model + processor + meta-learner).
        vocoder_dir: a ``hf-metatts train-vocoder`` output folder, or a checkpoint that owns a trained vocoder
            (e.g. ``hf_metatts.DEFAULT_CHECKPOINT``, to hear another run through the shipped vocoder); None keeps
            the trained vocoder that ``model_dir`` already owns (re-bundling a bundle, e.g. with another step size
            or new results).
        runs: training run folders whose ``training_summary.json`` go into the card and ``training_runs.json``;
            none given: the ``training_runs.json`` of ``model_dir``, when it has one (a bundle's), is kept.
        keep_runs: keep the ``training_runs.json`` of ``model_dir`` and add the summaries of ``runs`` after it
            (re-bundling a bundle with one more run, e.g. a fine-tuned vocoder).
        results: ``[{"dataset_name", "dataset_type", "metric_type", "metric_value", ...}]`` for ``model-index``.
        evaluation: a result of ``benchmarks/default_checkpoint.py`` (its ``bars``, machine, command and the
            vocoder each method was heard through), for the card's table of requirements.
        datasets: dataset names for the card; None keeps those of ``model_dir``'s card when it is a bundle.
            Its results and bars are not kept (they were measured on the checkpoint before this bundling): give
            them again. What the card was written from is saved as ``card_inputs.json``, so pushing the folder
            writes the same card (``hf_metatts.hub.push_base_to_hub``).
        inner_lr: the step size the shipped meta-learner adapts with, in place of the one it was meta-trained
            with (a fixed-rate ``maml`` meta-learner only; choose it on validation tasks).
        global_variance_weight: the weight of the global-variance term in the shipped inner loop
            (``hf_metatts.meta.global_variance``), in place of the one it was meta-trained with.
        voice_vocoder: how ``model.adapt`` adapts the vocoder by default (``hf_metatts.voice_vocoder``):
            ``{"steps", "learning_rate", "batch_size", "segment_frames", "parameters"}`` (any subset) set the
            config's ``voice_vocoder_*`` fields; None keeps those of ``model_dir``.
        aligner_skips_marks: True lets the aligner's search give no frame to the tokens the corpus's phone timings
            give none (``config.aligner_skippable_token_ids`` from the tokenizer of ``model_dir``, as
            ``hf_metatts.data.durations.skippable_token_ids`` lists them), so that ``model.adapt`` reads a user's
            clips as the model was trained on its corpus; False makes every token take a frame; None keeps
            ``model_dir``'s setting.
        aligner_duration_weight: how strongly the search that reads a user's clips for ``model.adapt`` holds each
            token's log-duration to the duration predictor's (``config.aligner_duration_weight``; 0: the aligner
            alone); None keeps ``model_dir``'s setting.
    Raises:
        BundleTooLargeError: the folder would exceed ``max_bytes`` (nothing is left in ``output_dir``).
        BundleConfigError: no ``vocoder_dir`` for a model that owns no trained vocoder; ``inner_lr`` is given for
            a folder without a fixed-rate ``maml`` meta-learner, or is not positive; ``global_variance_weight`` for
            a folder without a meta-learner, or is negative; ``aligner_duration_weight`` outside [0, 1000] (all
            checked before anything is written).
        CardResultsError: ``evaluation`` has no bars, or a bar lacks its requirement, measurements or status
            (checked before anything is written).
    """
    from .. import MetaTTSForTextToSpeech
    from ..model_cards import (
        base_model_card,
        evaluation_summary,
        meta_learner_card_fields,
        read_card_inputs,
        read_training_runs,
        write_card_inputs,
    )
    from .vocoder import attach_trained_vocoder

    check_adaptation_overrides(model_dir, inner_lr, global_variance_weight)
    if aligner_duration_weight is not None:
        try:
            check_aligner_duration_weight(aligner_duration_weight)
        except ValueError as error:
            raise BundleConfigError(f"{error} (0: the aligner alone)") from error
    if evaluation is not None:
        evaluation_summary(evaluation)  # a broken evaluation is refused before anything is written
    earlier_card = read_card_inputs(model_dir)
    if datasets is None:
        datasets = earlier_card.get("datasets")
    dropped = [name for name, given in (("results", results), ("evaluation", evaluation))
               if given is None and earlier_card.get(name)]
    if dropped:
        logger.warning("The card of %s had %s; they are not carried into a checkpoint bundled anew: give --results "
                       "again if they still hold for it.", model_dir, " and ".join(dropped))
    model = MetaTTSForTextToSpeech.from_pretrained(model_dir)
    if vocoder_dir is not None:
        attach_trained_vocoder(model, vocoder_dir)
    if aligner_skips_marks is not None:
        set_aligner_skippable(model.config, model_dir, aligner_skips_marks)
    if aligner_duration_weight is not None:
        model.config.aligner_duration_weight = float(aligner_duration_weight)
    if voice_vocoder:
        set_voice_vocoder(model.config, voice_vocoder)
    elif model.config.vocoder_type != "istft":
        raise BundleConfigError(f"{model_dir} owns no trained neural vocoder (vocoder_type="
                                f"{model.config.vocoder_type!r}): give the folder of `hf-metatts train-vocoder`.")
    summaries = [run_summary(run) for run in runs]
    kept = read_training_runs(model_dir) if keep_runs or not summaries else None
    if kept is not None:
        added = {summary["run"] for summary in summaries}
        summaries = [summary for summary in kept if summary.get("run") not in added] + summaries
    staging = stage_model_folder(model, model_dir, output_dir, inner_lr, global_variance_weight)
    with open(os.path.join(staging, RUNS_FILE), "w") as handle:
        json.dump(summaries, handle, indent=2)
    num_parameters = sum(p.numel() for p in model.parameters())
    card = base_model_card(model.config, repo_id, results=results, datasets=datasets,
                           **meta_learner_card_fields(staging), num_parameters=num_parameters,
                           training_runs=summaries, evaluation=evaluation)
    card.save(os.path.join(staging, "README.md"))
    write_card_inputs(staging, results, datasets, evaluation)
    size = folder_bytes(staging)
    if size > max_bytes:
        shutil.rmtree(staging)
        raise BundleTooLargeError(f"The checkpoint would take {size / 2**20:.1f} MiB, over the "
                                  f"{max_bytes / 2**20:.0f} MiB bound: train a smaller config or vocoder.")
    publish_staged_folder(staging, output_dir)
    files = sorted(os.listdir(output_dir))
    logger.info("bundled %s (%.1f MiB, %d parameters): %s", output_dir, size / 2**20, num_parameters, files)
    return {"bytes": size, "num_parameters": num_parameters, "files": files}


def set_aligner_skippable(config, model_dir: str, skips_marks: bool) -> None:
    """Set ``config.aligner_skippable_token_ids``: the skippable tokens of ``model_dir``'s tokenizer, or None."""
    from .. import MetaTTSProcessor
    from ..data.durations import skippable_token_ids

    config.aligner_skippable_token_ids = (
        skippable_token_ids(MetaTTSProcessor.from_pretrained(model_dir).tokenizer) if skips_marks else None)
    logger.info("The aligner's search %s.", f"may leave {len(config.aligner_skippable_token_ids)} mark, space and "
                "punctuation tokens without frames" if skips_marks else "gives every token at least one frame")


VOICE_VOCODER_FIELDS = ("steps", "learning_rate", "batch_size", "segment_frames", "parameters", "adapt_phase",
                        "clip_context")


def set_voice_vocoder(config, settings: dict) -> None:
    """Set ``config.voice_vocoder_<field>`` for each of ``settings`` (fields of ``VOICE_VOCODER_FIELDS``); raise
    :class:`BundleConfigError` naming the problem, leaving ``config`` unchanged, when one is unknown or invalid."""
    from ..voice_vocoder import VocoderAdaptation

    unknown = sorted(set(settings) - set(VOICE_VOCODER_FIELDS))
    if unknown:
        raise BundleConfigError(f"Unknown vocoder adaptation settings {unknown}: choose from {VOICE_VOCODER_FIELDS}.")
    before = {name: getattr(config, f"voice_vocoder_{name}") for name in VOICE_VOCODER_FIELDS}
    for name, value in settings.items():
        setattr(config, f"voice_vocoder_{name}", list(value) if name == "parameters" else value)
    try:
        config.validate_metatts()
        VocoderAdaptation.from_config(config)  # settings that only make sense together, e.g. clip_context
        if settings.get("steps") and config.vocoder_type != "istft":
            raise ValueError(f"vocoder adaptation needs the trained iSTFT vocoder, not {config.vocoder_type!r}")
    except ValueError as error:
        for name, value in before.items():
            setattr(config, f"voice_vocoder_{name}", value)
        raise BundleConfigError(f"Vocoder adaptation settings {settings}: {error}") from error


def _run(args) -> int:
    from ..model_cards import read_card_results

    results, evaluation = read_card_results(args.results) if args.results else (None, None)
    bundle_checkpoint(args.model, args.vocoder, args.out, runs=args.runs or [], results=results,
                      repo_id=args.repo_id, datasets=args.datasets, inner_lr=args.inner_lr,
                      global_variance_weight=args.global_variance_weight, keep_runs=args.keep_runs,
                      evaluation=evaluation, voice_vocoder=voice_vocoder_arguments(args),
                      aligner_skips_marks=args.aligner_skips_marks,
                      aligner_duration_weight=args.aligner_duration_weight)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``bundle`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "bundle", help="assemble a base checkpoint from a trained model and vocoder",
        description="Attach a trained vocoder to a trained model and write a complete checkpoint with its "
        "processor, meta-learner, training summaries and card (at most 25 MiB).",
    )
    parser.add_argument("--model", required=True, help="meta-training output folder")
    parser.add_argument("--vocoder", default=None,
                        help="train-vocoder output folder, or a checkpoint that owns a trained vocoder (e.g. the "
                        "bundled default); omit it to keep the vocoder that --model already owns (re-bundling a "
                        "bundle, whose training_runs.json is kept too unless --runs are given)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--runs", nargs="*", help="training run folders to describe in the card")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep the training_runs.json of --model (a bundle) and add the --runs after it")
    parser.add_argument("--results", default=None,
                        help="JSON list of model-index results, or a dict with a 'model_index' list; a result of "
                        "benchmarks/default_checkpoint.py also puts its bars in the card")
    parser.add_argument("--repo-id", default="hf-metatts/metatts-default", help="name used in the card")
    parser.add_argument("--datasets", nargs="*", default=None, help="dataset names for the card metadata")
    parser.add_argument("--inner-lr", type=float, default=None,
                        help="step size the shipped meta-learner adapts with, in place of its meta-training one "
                        "(fixed-rate maml meta-learners only; choose it on validation tasks)")
    parser.add_argument("--global-variance-weight", type=float, default=None,
                        help="weight of the global-variance term in the shipped inner loop "
                        "(hf_metatts.meta.global_variance), in place of its meta-training one")
    parser.add_argument("--voice-vocoder-steps", type=int, default=None,
                        help="vocoder steps model.adapt takes by default (hf_metatts.voice_vocoder; 0: off)")
    parser.add_argument("--voice-vocoder-lr", type=float, default=None, help="their learning rate")
    parser.add_argument("--voice-vocoder-batch-size", type=int, default=None, help="support segments per step")
    parser.add_argument("--voice-vocoder-segment-frames", type=int, default=None, help="segment length in frames")
    parser.add_argument("--voice-vocoder-parameters", nargs="+", default=None,
                        help="fnmatch patterns of the vocoder parameters that adapt")
    parser.add_argument("--voice-vocoder-keep-phase", dest="voice_vocoder_adapt_phase", action="store_const",
                        const=False, default=None,
                        help="the steps keep the phase rows of the vocoder's output layer (magnitudes only)")
    parser.add_argument("--voice-vocoder-adapt-phase", dest="voice_vocoder_adapt_phase", action="store_const",
                        const=True, help="the steps change the phase rows too (the default of a new config)")
    parser.add_argument("--voice-vocoder-clip-context", dest="voice_vocoder_clip_context", action="store_const",
                        const=True, default=None,
                        help="the steps train the output layer on segments of whole-clip hidden states (faster; "
                        "the parameters must lie in head.*, final_norm.*)")
    parser.add_argument("--voice-vocoder-segment-context", dest="voice_vocoder_clip_context", action="store_const",
                        const=False, help="the steps run the whole vocoder on each segment (the default of a new "
                        "config)")
    parser.add_argument("--aligner-skip-marks", dest="aligner_skips_marks", action="store_const", const=True,
                        default=None, help="the aligner may give no frame to stress and length marks, spaces and "
                        "punctuation, as the corpus's phone timings do (model.adapt reads a user's clips that way)")
    parser.add_argument("--aligner-every-token", dest="aligner_skips_marks", action="store_const", const=False,
                        help="the aligner gives every token at least one frame (the default of a new config)")
    parser.add_argument("--aligner-duration-weight", type=float, default=None, metavar="W",
                        help="how strongly the search that reads a user's clips holds each token's log-duration to "
                        "the duration predictor's, stretched to the clip (config.aligner_duration_weight; 0: the "
                        "aligner alone; default: keep the model folder's)")
    parser.set_defaults(func=_run)
    return parser


def voice_vocoder_arguments(args) -> dict:
    """The ``--voice-vocoder-*`` options given, as :func:`set_voice_vocoder` settings."""
    given = {"steps": args.voice_vocoder_steps, "learning_rate": args.voice_vocoder_lr,
             "batch_size": args.voice_vocoder_batch_size, "segment_frames": args.voice_vocoder_segment_frames,
             "parameters": args.voice_vocoder_parameters, "adapt_phase": args.voice_vocoder_adapt_phase,
             "clip_context": args.voice_vocoder_clip_context}
    return {name: value for name, value in given.items() if value is not None}
