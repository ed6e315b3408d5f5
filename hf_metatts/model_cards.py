"""Model cards for base checkpoints and voices, rendered from the templates in ``model_cards/``.

Cards carry measured results only when they are given (``results``): nothing is made up.
"""

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .evaluation.bar_text import PASS, measured_text, table_cell, verdict_text

logger = logging.getLogger(__name__)

BASE_TEMPLATE = "base_model_card.md"
VOICE_TEMPLATE = "voice_card.md"
DEFAULT_TAGS = ("hf-metatts", "text-to-speech", "few-shot", "meta-learning")
TEMPLATES_ENV = "HF_METATTS_MODEL_CARDS"
#: The training runs of a bundled checkpoint (each run's ``training_summary.json``), the card's training table.
TRAINING_RUNS_FILE = "training_runs.json"
#: What a bundle's card was written from (model-index entries, dataset names, the bars it was checked against), so
#: that pushing the folder writes the same card for its new repo id.
CARD_INPUTS_FILE = "card_inputs.json"
VOCODER_NAMES = {"griffin_lim": "Griffin-Lim", "istft": "the trained iSTFT vocoder",
                 "speecht5_hifigan": "the SpeechT5 HiFi-GAN vocoder"}


class CardResultsError(ValueError):
    """Results given for a card are not model-index entries or a result of ``benchmarks/default_checkpoint.py``."""


def read_card_results(path: str) -> tuple[list[dict], dict | None]:
    """The ``--results`` file of ``hf-metatts bundle`` and ``hf-metatts push``: a JSON list of model-index entries,
    or a dict with a ``model_index`` list; a result of ``benchmarks/default_checkpoint.py`` (a dict with
    ``bars``) is also the card's evaluation (:func:`evaluation_summary`). Returns ``(model_index, evaluation or
    None)``.

    Raises:
        CardResultsError: the file is not JSON, or a dict without a ``model_index`` list.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
    except ValueError as error:
        raise CardResultsError(f"{path} is not JSON: {error}") from error
    if isinstance(results, dict):
        if not isinstance(results.get("model_index"), list):
            raise CardResultsError(f"{path} has no 'model_index' list: give a result of "
                                   "benchmarks/default_checkpoint.py or a JSON list of model-index entries.")
        return results["model_index"], (results if "bars" in results else None)
    return results, None


def write_card_inputs(folder: str, results: Sequence[Mapping] | None, datasets: Sequence[str] | None,
                      evaluation: Mapping | None) -> None:
    """Save what the card of ``folder`` is written from (``CARD_INPUTS_FILE``): the model-index entries, the
    dataset names and, of ``evaluation`` (a harness result), only what the card reads (bars, command, machine,
    each method's status and vocoder)."""
    kept = None
    if evaluation:
        methods = {name: {"status": (entry or {}).get("status"), "vocoder": (entry or {}).get("vocoder")}
                   for name, entry in (evaluation.get("methods") or {}).items()}
        settings = evaluation.get("settings") or {}
        kept = {"bars": evaluation["bars"], "command": evaluation.get("command"),
                "machine": evaluation.get("machine"), "methods": methods,
                "settings": {key: settings[key] for key in SUPPORT_SETTINGS if key in settings}}
    inputs = {"results": list(results) if results else None, "datasets": list(datasets) if datasets else None,
              "evaluation": kept}
    with open(os.path.join(folder, CARD_INPUTS_FILE), "w", encoding="utf-8") as handle:
        json.dump(inputs, handle, indent=2)


def read_training_runs(folder: str) -> list[dict] | None:
    """The ``TRAINING_RUNS_FILE`` of ``folder`` (a bundle: every run that produced it), or None without one."""
    path = os.path.join(folder, TRAINING_RUNS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_card_inputs(folder: str) -> dict:
    """``{"results", "datasets", "evaluation"}`` saved by :func:`write_card_inputs`, or ``{}`` without the file."""
    path = os.path.join(folder, CARD_INPUTS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def template_path(name: str) -> str:
    """Path of a card template: ``$HF_METATTS_MODEL_CARDS``, the repository's ``model_cards/`` or the package's."""
    here = Path(__file__).resolve().parent
    candidates = [Path(os.environ[TEMPLATES_ENV])] if os.environ.get(TEMPLATES_ENV) else []
    candidates += [here.parent / "model_cards", here / "model_cards"]
    for folder in candidates:
        if (folder / name).is_file():
            return str(folder / name)
    raise FileNotFoundError(f"Model card template {name} not found in {[str(c) for c in candidates]}.")


def eval_results(results: Sequence[Mapping] | None) -> list[EvalResult] | None:
    """``[{"dataset_name", "dataset_type", "metric_type", "metric_value", ...}]`` -> `EvalResult`s (the
    ``model-index`` block). ``task_type`` defaults to ``text-to-speech``."""
    if not results:
        return None
    converted = []
    for entry in results:
        entry = dict(entry)
        missing = [key for key in ("dataset_name", "dataset_type", "metric_type", "metric_value") if key not in entry]
        if missing:
            raise ValueError(f"A result lacks {missing}: give dataset_name, dataset_type, metric_type, metric_value.")
        entry.setdefault("task_type", "text-to-speech")
        converted.append(EvalResult(**entry))
    return converted


def meta_learner_card_fields(folder: str) -> dict:
    """``meta_method``, ``zero_shot_start``, ``inner_optimizer``, ``inner_lr``, ``global_variance_weight`` and
    ``per_step_rates`` for :func:`base_model_card`, from the meta-learner saved in ``folder``
    (``meta_learner_config.json``); None, False, "sgd", None, 0 and False when it has none."""
    from .meta.head import META_CONFIG_NAME, read_meta_config

    if not os.path.isfile(os.path.join(folder, META_CONFIG_NAME)):
        return {"meta_method": None, "zero_shot_start": False, "inner_optimizer": "sgd", "inner_lr": None,
                "global_variance_weight": 0.0, "per_step_rates": False}
    config = read_meta_config(folder)
    return {"meta_method": config.method, "zero_shot_start": config.zero_shot_start,
            "inner_optimizer": config.inner_optimizer, "inner_lr": config.inner_lr,
            "global_variance_weight": config.global_variance_weight, "per_step_rates": config.per_step_rates}


def base_model_card(config, repo_id: str, results: Sequence[Mapping] | None = None,
                    datasets: Sequence[str] | None = None, base_model: str | None = None,
                    meta_method: str | None = None, zero_shot_start: bool = False, inner_optimizer: str = "sgd",
                    inner_lr: float | None = None, global_variance_weight: float = 0.0,
                    per_step_rates: bool = False, num_parameters: int | None = None, license: str = "apache-2.0",
                    language: Sequence[str] | None = None, tags: Sequence[str] = (),
                    training_runs: Sequence[Mapping] | None = None,
                    evaluation: Mapping | None = None) -> ModelCard:
    """The card of a base checkpoint: metadata (``library_name``, ``pipeline_tag``, tags, datasets, base model,
    ``model-index`` from ``results``), a description from ``config`` (a `MetaTTSConfig`) and, when given, the
    training runs (``training_summary.json`` of each: method, steps, wall time, hardware, losses) and the bars
    the checkpoint was checked against (``evaluation``: a result of ``benchmarks/default_checkpoint.py``, see
    :func:`evaluation_summary`)."""
    evals = eval_results(results)
    checked = evaluation_summary(evaluation) if evaluation else None
    name = repo_id.split("/")[-1]
    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-to-speech", license=license,
        tags=sorted({*DEFAULT_TAGS, "custom_code", *tags}), datasets=list(datasets) if datasets else None,
        base_model=base_model, language=list(language) if language else None,
        model_name=name if evals else None, eval_results=evals)
    adapted = getattr(config, "adapted_parameters", None)
    return ModelCard.from_template(
        data, template_path=template_path(BASE_TEMPLATE), title=name, repo_id=repo_id,
        vocoder_type=config.vocoder_type, sampling_rate=config.sampling_rate, num_mel_bins=config.num_mel_bins,
        voice_vocoder_steps=getattr(config, "voice_vocoder_steps", 0) if config.vocoder_type == "istft" else 0,
        voice_vocoder_learning_rate=getattr(config, "voice_vocoder_learning_rate", None),
        voice_vocoder_parameters=list(getattr(config, "voice_vocoder_parameters", None) or ["*"]),
        voice_vocoder_adapt_phase=getattr(config, "voice_vocoder_adapt_phase", True),
        voice_vocoder_clip_context=getattr(config, "voice_vocoder_clip_context", False),
        hop_length=config.hop_length, meta_method=meta_method, zero_shot_start=zero_shot_start,
        adam_steps=inner_optimizer == "adam", inner_lr=inner_lr, global_variance_weight=global_variance_weight,
        per_step_rates=per_step_rates,
        adapted_floats=_adapted_floats(config, adapted),
        num_parameters=f"{num_parameters:,}" if num_parameters else "see config.json",
        datasets=list(datasets or []), results=[vars(r) for r in evals] if evals else None,
        training_runs=[_describe_run(run) for run in training_runs or []], evaluation=checked)


def describe_hardware(hardware: Mapping | None) -> str:
    """``{"cpu": "AMD EPYC", "torch_threads": 2, "gpu": None}`` -> ``"AMD EPYC (2 threads)"``; the GPU when there is
    one."""
    hardware = hardware or {}
    if hardware.get("gpu"):
        return str(hardware["gpu"])
    threads = hardware.get("torch_threads", "?")
    return f"{hardware.get('cpu', 'CPU')} ({threads} thread{'' if threads == 1 else 's'})"


def _describe_run(run: Mapping) -> dict:
    """One row of the card's training table from a ``training_summary.json`` (a Reptile run's method reads
    ``maml (Reptile)``)."""
    method = run.get("method", "vocoder")
    if run.get("outer_update") == "reptile":
        method = f"{method} (Reptile)"
    return {"run": run.get("run", "?"), "method": method, "steps": run.get("steps"),
            "minutes": round(float(run.get("wall_seconds", 0.0)) / 60, 1),
            "hardware": describe_hardware(run.get("hardware")), "processes": run.get("processes", 1),
            "training_loss": _rounded((run.get("train_metrics") or {}).get("train_loss")),
            "validation": _validation_text(run)}


def _rounded(value, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _validation_text(run: Mapping) -> str:
    """A run's validation in a few words: the query loss before -> after the inner steps (meta-training), or the
    vocoder's held-out mel L1 (and on the model's own aligned mels, when it was fine-tuned on them)."""
    metrics = run.get("eval_metrics") or {}
    if "eval_query_loss_before" in metrics and "eval_query_loss_after" in metrics:
        steps = run.get("inner_steps")
        after = f" after {steps} step{'' if steps == 1 else 's'}" if steps else ""
        return (f"query loss {_rounded(metrics['eval_query_loss_before'])} -> "
                f"{_rounded(metrics['eval_query_loss_after'])}{after}")
    validation = run.get("validation") or {}
    if "mel_l1" in validation:
        aligned = (validation.get("aligned") or {}).get("mel_l1")
        return f"mel L1 {_rounded(validation['mel_l1'])}" + (f" (own mels {_rounded(aligned)})" if aligned else "")
    return "-"


def evaluation_summary(result: Mapping) -> dict:
    """What a card says of the bars a checkpoint was checked against, from a result of
    ``benchmarks/default_checkpoint.py`` (``bars``, ``methods``, ``machine``, ``command``):
    ``{"bars": [{"name", "requirement", "measured", "result"}], "passed", "command", "machine", "heard_through"}``.

    Raises:
        CardResultsError: ``result`` has no ``bars`` mapping, or a bar lacks its requirement, measurements or status.
    """
    bars = result.get("bars") if isinstance(result, Mapping) else None
    if not isinstance(bars, Mapping) or not bars:
        raise CardResultsError("The evaluation has no 'bars': give a result of benchmarks/default_checkpoint.py.")
    rows = []
    for name, bar in bars.items():
        missing = [key for key in ("requirement", "measured", "status")
                   if not isinstance(bar, Mapping) or key not in bar]
        if missing:
            raise CardResultsError(f"Bar {name!r} of the evaluation lacks {missing}: give a result of "
                                   "benchmarks/default_checkpoint.py (or check its bars again with --rescore).")
        rows.append({"name": table_cell(name), "requirement": table_cell(bar["requirement"]),
                     "measured": table_cell(measured_text(bar["measured"])), "result": table_cell(verdict_text(bar))})
    return {"bars": rows, "passed": sum(bar["status"] == PASS for bar in bars.values()),
            "command": result.get("command"), "machine": _machine_text(result.get("machine")),
            "heard_through": heard_through_text(result.get("methods") or {}),
            "support_clips": support_clips_text(result.get("settings") or {})}


#: the harness settings that say how the support clips' frames were given to their tokens
SUPPORT_SETTINGS = ("support_durations", "aligner_search", "aligner_duration_weight")


def support_clips_text(settings: Mapping) -> str:
    """How the bars' support clips were read (``support_durations``, ``aligner_search`` and
    ``aligner_duration_weight`` of the harness's settings; a result from before they were recorded read the corpus's
    phone timings with each model's own search)."""
    if settings.get("support_durations", "timings") == "timings":
        return ("The support clips were read on the corpus's phone timings; `model.adapt` gives a user's clips the "
                "model's own aligner's durations, which reaches less (BENCHMARKS.md of hf-metatts measures both).")
    search = {"skip_marks": ", with stress and length marks, spaces and punctuation free to take no frame",
              "every_token": ", with every token taking at least one frame"}.get(settings.get("aligner_search"), "")
    weight = settings.get("aligner_duration_weight")
    if weight:
        search += (f", each token's log-duration held to the duration predictor's with weight {weight:g}")
    elif weight == 0:
        search += ", without the duration predictor"
    return f"The support clips were read by each model's own aligner{search}, as `model.adapt` reads a user's clips."


def _machine_text(machine: Mapping | None) -> str | None:
    """``"AMD EPYC (2 cores, 2 threads)"``, or the GPU."""
    if not machine:
        return None
    if machine.get("gpu") or not machine.get("cpu_count"):
        return describe_hardware(machine)
    threads = machine.get("torch_threads", "?")
    return (f"{machine.get('cpu', 'CPU')} ({machine['cpu_count']} cores, {threads} "
            f"thread{'' if threads == 1 else 's'})")


def heard_through_text(methods: Mapping) -> str | None:
    """Which vocoder each measured method spoke through (the ``vocoder`` the harness records per method):
    ``"Every method was heard through Griffin-Lim."``, or per method with the ones not recorded named."""
    measured = {name: entry for name, entry in methods.items() if (entry or {}).get("status") == "ok"}
    recorded = {name: entry["vocoder"] for name, entry in measured.items() if entry.get("vocoder")}
    if not recorded:
        return None
    if len(set(recorded.values())) == 1 and len(recorded) == len(measured):
        return f"Every method was heard through {vocoder_name(next(iter(recorded.values())))}."
    text = "Heard through: " + ", ".join(f"{name} {vocoder_name(v)}" for name, v in recorded.items())
    unrecorded = [name for name in measured if name not in recorded]
    return text + (f" (not recorded for {', '.join(unrecorded)})." if unrecorded else ".")


def vocoder_name(vocoder_type: str) -> str:
    """A ``MetaTTSConfig.vocoder_type`` as readers know it."""
    return VOCODER_NAMES.get(vocoder_type, vocoder_type)


def _adapted_floats(config, patterns) -> str:
    """Size of the adapted set from the config: speaker vector + conditional-norm biases (a few thousand)."""
    if not patterns:
        return "a few thousand"
    hidden, layers = config.hidden_size, config.decoder_layers
    return f"{config.speaker_dim + (4 * layers + 2) * hidden:,}"


def adapted_parts(names: Sequence[str], floats: dict[str, int] | None = None) -> str:
    """What a voice adapted, by module, from the adapted parameter ``names`` (grouped by their first two name parts,
    in order of first appearance) and, where given, each name's number of ``floats``; for the bundled checkpoint
    with ``extra_parameters=["decoder.layers.*"]``: ```voice.speaker_vector` (1 tensor, 64 floats),
    `decoder.layers` (48 tensors, 1,172,832 floats), `decoder.final_norm` (2 tensors, 320 floats), ...``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(".".join(name.split(".")[:2]), []).append(name)
    parts = []
    for group, members in groups.items():
        count = f"{len(members)} tensor{'s' if len(members) != 1 else ''}"
        if floats:
            count += f", {sum(floats.get(name, 0) for name in members):,} floats"
        parts.append(f"`{group}` ({count})")
    return ", ".join(parts)


def voice_card(voice_config, repo_id: str | None = None, num_floats: int | None = None,
               intended_use: str | None = None, tags: Sequence[str] = (),
               floats_by_name: dict[str, int] | None = None) -> ModelCard:
    """The card of a voice from its `VoiceConfig` (``floats_by_name``: each adapted tensor's size, for the card's
    list of what was adapted)."""
    base = voice_config.base_model
    hub_base = base if base and not os.path.isabs(base) and not os.path.exists(base) else None
    data = ModelCardData(
        library_name="hf-metatts", pipeline_tag="text-to-speech", tags=sorted({*DEFAULT_TAGS, "voice", *tags}),
        base_model=hub_base, language=[voice_config.language.split("-")[0]] if voice_config.language else None)
    title = (repo_id or "MetaTTS voice").split("/")[-1]
    values = dict(vars(voice_config))
    names = values.pop("adapted_parameter_names", None) or []
    values["adapted_parts"] = adapted_parts(names, floats_by_name) if names else None
    return ModelCard.from_template(
        data, template_path=template_path(VOICE_TEMPLATE), title=title, repo_id=repo_id or "path/to/voice",
        num_floats=f"{num_floats:,}" if num_floats else "a few thousand",
        intended_use=intended_use, **values)


__all__ = ["CARD_INPUTS_FILE", "TRAINING_RUNS_FILE", "CardResultsError", "base_model_card", "describe_hardware",
           "eval_results", "evaluation_summary", "heard_through_text", "read_card_inputs", "read_card_results",
           "read_training_runs", "support_clips_text", "adapted_parts",
           "template_path", "vocoder_name", "voice_card", "write_card_inputs"]
