"""Model cards for base checkpoints and voices, rendered from the templates in ``model_cards/``.

Cards carry measured results only when they are given (``results``): nothing is made up.
"""

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

BASE_TEMPLATE = "base_model_card.md"
VOICE_TEMPLATE = "voice_card.md"
DEFAULT_TAGS = ("hf-metatts", "text-to-speech", "few-shot", "meta-learning")
TEMPLATES_ENV = "HF_METATTS_MODEL_CARDS"


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
                    training_runs: Sequence[Mapping] | None = None) -> ModelCard:
    """The card of a base checkpoint: metadata (``library_name``, ``pipeline_tag``, tags, datasets, base model,
    ``model-index`` from ``results``), a description from ``config`` (a `MetaTTSConfig`) and, when given, the
    training runs (``training_summary.json`` of each: method, steps, wall time, hardware)."""
    evals = eval_results(results)
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
        hop_length=config.hop_length, meta_method=meta_method, zero_shot_start=zero_shot_start,
        adam_steps=inner_optimizer == "adam", inner_lr=inner_lr, global_variance_weight=global_variance_weight,
        per_step_rates=per_step_rates,
        adapted_floats=_adapted_floats(config, adapted),
        num_parameters=f"{num_parameters:,}" if num_parameters else "see config.json",
        datasets=list(datasets or []), results=[vars(r) for r in evals] if evals else None,
        training_runs=[_describe_run(run) for run in training_runs or []])


def _describe_run(run: Mapping) -> dict:
    """One row of the card's training table from a ``training_summary.json``."""
    hardware = run.get("hardware") or {}
    machine = hardware.get("gpu") or f"{hardware.get('cpu', 'CPU')} ({hardware.get('torch_threads', '?')} threads)"
    return {"run": run.get("run", "?"), "method": run.get("method", "vocoder"), "steps": run.get("steps"),
            "minutes": round(float(run.get("wall_seconds", 0.0)) / 60, 1), "hardware": machine,
            "processes": run.get("processes", 1)}


def _adapted_floats(config, patterns) -> str:
    """Size of the adapted set from the config: speaker vector + conditional-norm biases (a few thousand)."""
    if not patterns:
        return "a few thousand"
    hidden, layers = config.hidden_size, config.decoder_layers
    return f"{config.speaker_dim + (4 * layers + 2) * hidden:,}"


def voice_card(voice_config, repo_id: str | None = None, num_floats: int | None = None,
               intended_use: str | None = None, tags: Sequence[str] = ()) -> ModelCard:
    """The card of a voice from its `VoiceConfig`."""
    base = voice_config.base_model
    hub_base = base if base and not os.path.isabs(base) and not os.path.exists(base) else None
    data = ModelCardData(
        library_name="hf-metatts", pipeline_tag="text-to-speech", tags=sorted({*DEFAULT_TAGS, "voice", *tags}),
        base_model=hub_base, language=[voice_config.language.split("-")[0]] if voice_config.language else None)
    title = (repo_id or "MetaTTS voice").split("/")[-1]
    values = dict(vars(voice_config))
    values.pop("adapted_parameter_names", None)
    return ModelCard.from_template(
        data, template_path=template_path(VOICE_TEMPLATE), title=title, repo_id=repo_id or "path/to/voice",
        num_floats=f"{num_floats:,}" if num_floats else "a few thousand",
        intended_use=intended_use, **values)


__all__ = ["base_model_card", "voice_card", "eval_results", "template_path"]
