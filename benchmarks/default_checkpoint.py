"""Bar report of the default checkpoint: the adaptation benchmark once per method (each with its own steps
grid, in parallel worker processes), merged into one result, then the bars checked against it.

    python benchmarks/default_checkpoint.py --out benchmarks/results/default_checkpoint.json \
        --speed-json benchmarks/results/synthesis_speed.json benchmarks/results/voice_adaptation_speed.json

Defaults: corpus ``data/voices``, split ``test``, English rows only (``--languages en``, so the English
recogniser's WER means something), 5 shots, 3 held-out sentences per speaker, and

    --checkpoints finetune=outputs/default_pretrain metasgd=outputs/default_metasgd \
                  meta_lstm=outputs/default_meta_lstm zero_shot=outputs/default_zero_shot \
                  maml=outputs/default_metasgd
    --steps finetune=0,5,100 metasgd=0,5 meta_lstm=0,5 zero_shot=0,5 maml=0,5

``maml`` from the Meta-SGD checkpoint adapts with plain SGD (its ``inner_lr``, or ``--lr maml=LR``);
``--global-variance-weight METHOD=W`` adds the global-variance term of weight W to that method's support loss
(``hf_metatts.meta.global_variance``; default: its meta-learner's own weight); ``--vocoder-steps METHOD=N``
(and ``--vocoder-lr METHOD=LR``) adapts the checkpoint's neural vocoder to the support clips after every step
count above 0, as ``model.adapt(..., vocoder_steps=N)`` does (``hf_metatts.voice_vocoder``; default: the
checkpoint's ``voice_vocoder_steps``);
``zero_shot`` starts from the support encoder's voice and refines with the checkpoint's learned rule. A
``--steps`` item replaces that method's default grid only. Each method runs in its own process ("spawn",
one torch thread each, ``--workers`` at a time); the merged JSON has the schema of
:func:`hf_metatts.evaluation.benchmark.run_benchmark` (``methods`` merged, ``upper_bounds`` from the first
method in ``--checkpoints`` order that ran, ``method_settings`` the settings of each run) plus ``bars``,
``model_index`` (for ``hf-metatts bundle --results``), ``machine`` and ``command``. The bars:

- ``intelligible``: ``--best`` (default metasgd) after 5 steps, pooled WER <= 1.5 x the pooled WER of the
  same speakers' recordings;
- ``adaptation_maml``: similarity of MAML after 5 steps >= fine-tuning after 100 steps: ``metasgd`` (MAML with
  learned learning rates) or ``maml`` on a checkpoint meta-trained as maml, each from its meta-learned start
  (a run that starts from the support encoder's voice, or ``maml`` steps on a Meta-SGD checkpoint, is
  reported beside it and does not count: :func:`maml_bar_exclusion`);
- ``adaptation_meta_lstm``: similarity of Meta-LSTM or of zero_shot after 5 steps > fine-tuning after 100 steps;
- ``identification``: speaker identification accuracy of ``--best`` after 5 steps >= 0.90;
- ``no_naturalness_loss``: WER of ``--best`` after 5 steps <= its WER before adapting (0 steps);
- ``rtf`` and ``adaptation_seconds``: from the JSON of ``benchmarks/synthesis_speed.py`` (RTF <= 0.05) and of
  ``benchmarks/voice_adaptation_speed.py`` (5-shot 5-step adaptation <= 2 s), when given with ``--speed-json``.

``--reuse EARLIER.json`` merges in the methods of an earlier result that are not run now (e.g. the 100-step
fine-tuning baseline when only a new meta-trained checkpoint changed); it must have the same corpus, split,
seed, shots and held-out sentences, and the result names it under ``reused``.

``--support-durations aligner`` gives the support clips the model's own aligner's token durations, as
``model.adapt`` reads a user's clips (which come without phone timings), in place of the corpus's phone timings
(the default, and what every result before this option ran with).

The comparative bars (``adaptation_maml``, ``adaptation_meta_lstm``, ``no_naturalness_loss``) also report the
paired per-task difference of their two numbers with a 95% bootstrap interval over the speakers
(``hf_metatts.evaluation.paired``) and how many speakers lie above zero; the verdict stays the point estimates'.
``--rescore EARLIER.json`` checks the bars of an earlier result again without running any method. Each method's
entry records the vocoder its speech was heard through (``vocoder``); ``--rescore ... --heard-through
METHOD=VOCODER`` records it for results measured before that, refused where it contradicts the method's record or
its checkpoint folder's ``config.json``. ``hf-metatts bundle --results`` puts the bars into a checkpoint's card.

A bar whose numbers are missing (a method not run, a step not in its grid, a metric not measured) is
"not measured", with the reason. The markdown (``.md`` beside the JSON) holds the bar table and the full
tables; the PNG curves go beside it too. Nothing is written when no method could run.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hf_metatts.evaluation.bar_text import (  # noqa: E402
    FAIL,
    NOT_MEASURED,
    PASS,
    measured_text,
    table_cell,
    verdict_text,
)
from hf_metatts.evaluation.benchmark import add_support_reading_arguments  # noqa: E402
from hf_metatts.evaluation.cli import script_command  # noqa: E402

logger = logging.getLogger("default_checkpoint")

DEFAULT_CHECKPOINTS = {"finetune": "outputs/default_pretrain", "metasgd": "outputs/default_metasgd",
                       "meta_lstm": "outputs/default_meta_lstm", "zero_shot": "outputs/default_zero_shot",
                       "maml": "outputs/default_metasgd"}
DEFAULT_STEPS = {"finetune": [0, 5, 100], "metasgd": [0, 5], "meta_lstm": [0, 5], "zero_shot": [0, 5],
                 "maml": [0, 5]}
#: Settings that must agree for an earlier run's methods to be merged into this one (``--reuse``).
REUSE_KEYS = ("corpus", "task_column", "split", "shots", "max_tasks", "heldout", "seed", "eval_metrics", "languages",
              "support_durations", "aligner_search", "aligner_duration_weight")
#: what a result written before a setting existed ran with
REUSE_DEFAULTS = {"support_durations": "timings", "aligner_search": "own", "aligner_duration_weight": None}
METRICS = ["similarity", "mcd", "wer", "eer", "identification"]

BAR_SHOTS = 5
META_STEPS = 5
FINETUNE_STEPS = 100
BEST_META = "metasgd"  # default of --best: the method whose adapted speech the product bars judge
MAML_BAR_METHODS = ("metasgd", "maml")  # "maml after 5 steps", from its meta-learned start (maml_bar_exclusion)
SECOND_BAR_METHODS = ("meta_lstm", "zero_shot")  # "meta_lstm or zero_shot + 5 steps beats the baseline"
WER_RATIO_BAR = 1.5
IDENTIFICATION_BAR = 0.90
RTF_BAR = 0.05
ADAPTATION_SECONDS_BAR = 2.0


# ------------------------------------------------------------------------------------------------------
# bars: pure functions of the merged result
def result_cell(result: dict, method: str, shots: int, step: int):
    """``(cell, None)``: one cell (``{"mean", "per_task", "skipped_tasks"}``) of the merged result, or ``(None,
    reason)`` when that method, shot count or step was not run."""
    entry = (result.get("methods") or {}).get(method)
    if entry is None:
        return None, f"{method} was not run"
    if entry.get("status") != "ok":
        return None, f"{method} {entry.get('status', 'not run')}: {entry.get('reason', 'no reason given')}"
    by_step = (entry.get("results") or {}).get(str(shots))
    if by_step is None:
        return None, f"{method} was not run with k={shots} shots"
    cell = by_step.get(str(step))
    if cell is None:
        return None, f"{method} was not run to {step} steps (its steps: {sorted(int(s) for s in by_step)})"
    return cell, None


def cell_value(result: dict, method: str, shots: int, step: int, key: str):
    """``(value, None)`` of one mean of the merged result, or ``(None, reason)`` when it was not measured."""
    cell, reason = result_cell(result, method, shots, step)
    if cell is None:
        return None, reason
    value = (cell.get("mean") or {}).get(key)
    if value is None:
        note = (cell.get("mean") or {}).get(f"{key}_note")
        skipped = cell.get("skipped_tasks") or {}
        why = note or (f"every task skipped ({next(iter(skipped.values()))})" if skipped and not cell.get("per_task")
                       else f"{key} not measured")
        return None, f"{method} at {step} steps: {why}"
    return value, None


def per_task_values(result: dict, method: str, shots: int, step: int, key: str) -> dict[str, float]:
    """``{task: value}`` of one cell of the merged result (empty when the cell or its per-task values are missing)."""
    cell = result_cell(result, method, shots, step)[0] or {}
    return {task: values[key] for task, values in (cell.get("per_task") or {}).items()
            if isinstance(values, dict) and values.get(key) is not None}


def paired_measures(result: dict, shots: int, first: tuple[str, int], second: tuple[str, int], key: str) -> dict:
    """The paired per-task difference ``first - second`` (each ``(method, step)``) of ``key`` for a bar's
    ``measured``: ``difference`` (its mean), ``difference_ci95`` (bootstrap over the tasks,
    :func:`hf_metatts.evaluation.paired.paired_difference`) and ``tasks_above_zero`` (tasks whose difference is
    positive); empty when fewer than 2 tasks have both values (e.g. a result without per-task numbers)."""
    from hf_metatts.evaluation.paired import PairedComparisonError, paired_difference

    try:
        paired = paired_difference(per_task_values(result, first[0], shots, first[1], key),
                                   per_task_values(result, second[0], shots, second[1], key))
    except PairedComparisonError:
        return {}
    return {"difference": _round(paired.mean), "difference_ci95": [_round(paired.low), _round(paired.high)],
            "tasks_above_zero": f"{paired.above}/{paired.tasks}"}


def _bar(requirement: str, threshold: str, measured: dict, status: str, reason: str | None = None) -> dict:
    return {"requirement": requirement, "threshold": threshold, "measured": measured, "status": status,
            "reason": reason}


def _not_measured(requirement: str, threshold: str, measured: dict, reasons: list[str | None]) -> dict:
    return _bar(requirement, threshold, measured, NOT_MEASURED, "; ".join(dict.fromkeys(r for r in reasons if r)))


def _round(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def bar_intelligible(result: dict, shots: int, best: str = BEST_META) -> dict:
    requirement = (f"{best} after {META_STEPS} steps ({shots}-shot): pooled WER of the adapted speech <= "
                   f"{WER_RATIO_BAR} x pooled WER of the same speakers' own recordings")
    threshold = f"wer <= {WER_RATIO_BAR} x recordings' wer"
    wer, why = cell_value(result, best, shots, META_STEPS, "wer")
    real, why_real = cell_value(result, best, shots, META_STEPS, "wer_real_pooled")
    ratio, _ = cell_value(result, best, shots, META_STEPS, "wer_ratio_pooled")
    tasks, _ = cell_value(result, best, shots, META_STEPS, "wer_ratio_tasks")
    measured = {"wer": _round(wer), "recordings_wer": _round(real), "ratio": _round(ratio), "tasks": tasks}
    if wer is None or real is None:
        return _not_measured(requirement, threshold, measured, [why, why_real if why is None else None])
    return _bar(requirement, threshold, measured, PASS if wer <= WER_RATIO_BAR * real else FAIL)


def bar_similarity_over_finetune(result: dict, shots: int, methods: tuple[str, ...], strict: bool,
                                 also: tuple[str, ...] = (), excluded=None) -> dict:
    """Speaker similarity of any of ``methods`` after 5 steps against fine-tuning after 100 steps; ``also``:
    methods reported beside them that do not count; ``excluded(result, method) -> reason or None``: a method of
    ``methods`` whose run does not count here (reported beside, with the reason in ``{method}_note``)."""
    sign = ">" if strict else ">="
    named = " or ".join(methods)
    requirement = (f"speaker similarity of {named} after {META_STEPS} steps {sign} finetune after "
                   f"{FINETUNE_STEPS} steps ({shots}-shot)")
    threshold = " or ".join(f"{method}@{META_STEPS}" for method in methods) + f" {sign} finetune@{FINETUNE_STEPS}"
    base, why_base = cell_value(result, "finetune", shots, FINETUNE_STEPS, "similarity")
    measured, found, reasons = {}, [], []
    for method in methods:
        value, why = cell_value(result, method, shots, META_STEPS, "similarity")
        measured[f"{method}_{META_STEPS}_steps"] = _round(value)
        not_counted = excluded(result, method) if excluded is not None and value is not None else None
        if value is None or not_counted:
            reasons.append(why or f"{method} does not count: {not_counted}")
            if len(methods) > 1 or not_counted:
                measured[f"{method}_note"] = why or f"not counted: {not_counted}"
        else:
            found.append((value, method))
    measured[f"finetune_{FINETUNE_STEPS}_steps"] = _round(base)
    for other in also:
        value, why_other = cell_value(result, other, shots, META_STEPS, "similarity")
        measured[f"{other}_{META_STEPS}_steps"] = _round(value)
        if why_other:
            measured[f"{other}_note"] = why_other
    if not found or base is None:  # with one counted method, only the baseline's reason is the bar's
        return _not_measured(requirement, threshold, measured, [*(reasons if not found else []), why_base])
    ours, best = max(found)
    measured.update(paired_measures(result, shots, (best, META_STEPS), ("finetune", FINETUNE_STEPS), "similarity"))
    passed = ours > base if strict else ours >= base
    return _bar(requirement, threshold, measured, PASS if passed else FAIL)


def maml_bar_exclusion(result: dict, method: str) -> str | None:
    """Why a ``metasgd`` or ``maml`` run does not count for ``adaptation_maml`` ("maml after 5 steps"), or None.

    That bar asks it of MAML from its meta-learned start: a run that starts from the support encoder's voice
    (``zero_shot_start``) counts for the zero_shot bar instead, and ``maml`` counts only on a checkpoint
    meta-trained with method ``maml`` (plain SGD steps on a Meta-SGD checkpoint are reported beside). Results
    written before runs recorded their meta-learner count their ``metasgd`` (those runs had a plain start) and
    not their ``maml`` (those ran on the Meta-SGD checkpoint).
    """
    summary = ((result.get("methods") or {}).get(method) or {}).get("meta_learner")
    if summary is None:
        return None if method == "metasgd" else "its run recorded no meta-learner (a result from before they did)"
    if summary.get("zero_shot_start"):
        return "it starts from the support encoder's voice (zero_shot_start), which the zero_shot bar judges"
    if method == "maml" and summary.get("method") != "maml":
        return f"plain SGD steps on a {summary.get('method')} checkpoint, not a checkpoint meta-trained as maml"
    return None


def bar_identification(result: dict, shots: int, best: str = BEST_META) -> dict:
    requirement = (f"speaker identification accuracy of {best} after {META_STEPS} steps ({shots}-shot) >= "
                   f"{IDENTIFICATION_BAR:.2f}")
    threshold = f"accuracy >= {IDENTIFICATION_BAR:.2f}"
    accuracy, why = cell_value(result, best, shots, META_STEPS, "identification")
    candidates, _ = cell_value(result, best, shots, META_STEPS, "identification_candidates")
    measured = {"accuracy": _round(accuracy), "candidates": candidates,
                "chance": _round(1 / candidates) if candidates else None}
    if accuracy is None:
        return _not_measured(requirement, threshold, measured, [why])
    return _bar(requirement, threshold, measured, PASS if accuracy >= IDENTIFICATION_BAR else FAIL)


def bar_no_naturalness_loss(result: dict, shots: int, best: str = BEST_META) -> dict:
    requirement = f"WER of {best} after {META_STEPS} steps <= its WER before adapting ({shots}-shot)"
    threshold = f"wer@{META_STEPS} <= wer@0"
    after, why = cell_value(result, best, shots, META_STEPS, "wer")
    before, why_before = cell_value(result, best, shots, 0, "wer")
    measured = {f"wer_{META_STEPS}_steps": _round(after), "wer_0_steps": _round(before)}
    if after is None or before is None:
        return _not_measured(requirement, threshold, measured, [why, why_before])
    measured.update(paired_measures(result, shots, (best, META_STEPS), (best, 0), "wer"))
    return _bar(requirement, threshold, measured, PASS if after <= before else FAIL)


def classify_speed_json(data: dict) -> str | None:
    """``"rtf"`` for synthesis_speed.py's output, ``"adaptation_seconds"`` for voice_adaptation_speed.py's."""
    if isinstance(data, dict) and "metatts_istft_rtf" in data:
        return "rtf"
    if isinstance(data, dict) and (data.get("benchmark") == "voice_adaptation_speed"
                                   or isinstance(data.get("maml"), dict) and "median_s" in data["maml"]):
        return "adaptation_seconds"
    return None


def bar_rtf(speed: dict | None) -> dict:
    requirement = f"real-time factor of synthesis (iSTFT vocoder, CPU) <= {RTF_BAR}"
    threshold = f"rtf <= {RTF_BAR}"
    if not speed or "data" not in speed:
        reason = (speed or {}).get("reason") or "not measured here: give --speed-json with the JSON of " \
                                               "benchmarks/synthesis_speed.py"
        return _bar(requirement, threshold, {}, NOT_MEASURED, reason)
    data = speed["data"]
    rtf = data.get("metatts_istft_rtf")
    measured = {"rtf": _round(rtf, 5), "threads": (data.get("machine") or {}).get("threads"),
                "model": data.get("checkpoint"), "source": speed["path"]}
    if rtf is None:
        return _bar(requirement, threshold, measured, NOT_MEASURED, f"{speed['path']} has no metatts_istft_rtf")
    return _bar(requirement, threshold, measured, PASS if rtf <= RTF_BAR else FAIL)


def bar_adaptation_seconds(speed: dict | None) -> dict:
    requirement = f"wall time of a {BAR_SHOTS}-shot {META_STEPS}-step adaptation (CPU) <= {ADAPTATION_SECONDS_BAR:g} s"
    threshold = f"seconds <= {ADAPTATION_SECONDS_BAR}"
    if not speed or "data" not in speed:
        reason = (speed or {}).get("reason") or "not measured here: give --speed-json with the JSON of " \
                                               "benchmarks/voice_adaptation_speed.py"
        return _bar(requirement, threshold, {}, NOT_MEASURED, reason)
    data = speed["data"]
    seconds = (data.get("maml") or {}).get("median_s")
    measured = {"seconds": _round(seconds), "shots": data.get("shots"), "steps": data.get("steps"),
                "threads": data.get("threads"), "model": data.get("config"), "source": speed["path"]}
    if (data.get("vocoder_adaptation") or {}).get("steps"):
        measured["vocoder_steps"] = data["vocoder_adaptation"]["steps"]  # included in the seconds
    if seconds is None:
        return _bar(requirement, threshold, measured, NOT_MEASURED, f"{speed['path']} has no maml.median_s")
    if (data.get("shots"), data.get("steps")) != (BAR_SHOTS, META_STEPS):
        return _bar(requirement, threshold, measured, NOT_MEASURED,
                    f"{speed['path']} timed a {data.get('shots')}-shot {data.get('steps')}-step adaptation, "
                    f"the bar is {BAR_SHOTS}-shot {META_STEPS}-step")
    return _bar(requirement, threshold, measured, PASS if seconds <= ADAPTATION_SECONDS_BAR else FAIL)


def evaluate_bars(result: dict, shots: int = BAR_SHOTS, speed: dict | None = None, best: str = BEST_META) -> dict:
    """Every bar from a merged result: ``{name: {requirement, threshold, measured, status, reason}}``.

    ``best``: the method whose adapted speech the intelligibility, identification and naturalness bars judge
    (the one the bundled checkpoint adapts with).

    ``speed`` maps ``"rtf"`` / ``"adaptation_seconds"`` to ``{"path", "data"}`` (a speed script's JSON) or to
    ``{"reason"}`` (why it could not be read); a bar without an entry is "not measured here".
    """
    speed = speed or {}
    return {
        "intelligible": bar_intelligible(result, shots, best),
        "adaptation_maml": bar_similarity_over_finetune(result, shots, MAML_BAR_METHODS, strict=False,
                                                       excluded=maml_bar_exclusion),
        "adaptation_meta_lstm": bar_similarity_over_finetune(result, shots, SECOND_BAR_METHODS, strict=True),
        "identification": bar_identification(result, shots, best),
        "no_naturalness_loss": bar_no_naturalness_loss(result, shots, best),
        "rtf": bar_rtf(speed.get("rtf")),
        "adaptation_seconds": bar_adaptation_seconds(speed.get("adaptation_seconds")),
    }


def render_bars(bars: dict) -> str:
    """The bars as a markdown table."""
    lines = ["| bar | requirement | measured | threshold | result |", "|---|---|---|---|---|"]
    for name, bar in bars.items():
        cells = [name, bar["requirement"], measured_text(bar["measured"]), f"`{bar['threshold']}`", verdict_text(bar)]
        lines.append("| " + " | ".join(table_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def model_index(result: dict, shots: int, dataset_id: str, best: str = BEST_META) -> list[dict]:
    """``model-index`` entries (``hf-metatts bundle --results``) of the best meta method after 5 steps."""
    settings = result.get("settings") or {}
    speakers = len(result.get("tasks") or [])
    name = (f"held-out speakers of {os.path.basename(str(settings.get('corpus', 'the corpus')).rstrip('/'))} "
            f"({settings.get('split', 'test')} split, {speakers} speakers, {shots}-shot)")
    entries = []
    for key, metric_type, label in (("similarity", "speaker_similarity", "speaker similarity"),
                                    ("eer", "eer", "speaker-verification EER"),
                                    ("identification", "accuracy", "speaker identification accuracy"),
                                    ("mcd", "mcd", "MCD (dB)"), ("wer", "wer", "ASR WER")):
        value, _ = cell_value(result, best, shots, META_STEPS, key)
        if value is not None:
            entries.append({"dataset_name": name, "dataset_type": dataset_id,
                            "dataset_split": settings.get("split", "test"), "metric_type": metric_type,
                            "metric_name": f"{label} after {META_STEPS} {best} steps",
                            "metric_value": round(float(value), 4)})
    return entries


# ------------------------------------------------------------------------------------------------------
# runs
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s")


def run_one(job: dict) -> dict:
    """One method's benchmark in a worker: ``{"method", "status": "ok", "result"}`` or ``{..., "reason"}``."""
    from hf_metatts.evaluation.benchmark import BenchmarkConfigError, BenchmarkSettings, load_method, run_benchmark

    method = job["method"]
    checkpoint = job["settings"]["checkpoints"][method]
    started = time.perf_counter()
    logger.info("%s: start (steps %s, checkpoint %s)", method, job["settings"]["steps"], checkpoint)
    try:
        result = run_benchmark(BenchmarkSettings(**job["settings"]))
    except BenchmarkConfigError as error:
        reason = str(error)
        if reason.startswith("No method could run"):  # the run's only method: say why it alone could not
            reason = load_method(method, checkpoint)[3] or reason
        logger.warning("%s skipped: %s", method, reason)
        return {"method": method, "status": "skipped", "reason": reason}
    except Exception as error:  # one method failing leaves the others' bars
        logger.exception("%s failed", method)
        return {"method": method, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    logger.info("%s: done in %.0f s", method, time.perf_counter() - started)
    return {"method": method, "status": "ok", "result": result}


def merge(runs: list[dict], checkpoints: dict[str, str], steps: dict[str, list[int]]) -> dict:
    """One result from per-method runs (``runs`` in ``--checkpoints`` order); None when none ran."""
    ok = [run for run in runs if run["status"] == "ok"
          and run["result"]["methods"][run["method"]].get("status") == "ok"]
    if not ok:
        return None
    first = ok[0]["result"]
    methods, method_settings = {}, {}
    for run in runs:
        method = run["method"]
        if run["status"] != "ok":
            methods[method] = {"status": run["status"], "reason": run["reason"], "checkpoint": checkpoints[method]}
            continue
        methods[method] = run["result"]["methods"][method]
        method_settings[method] = run["result"]["settings"]
        if run["result"]["tasks"] != first["tasks"]:
            logger.warning("%s ran on other tasks than %s: its numbers are not comparable", method, ok[0]["method"])
    all_steps = sorted({s for method in checkpoints for s in steps[method]})
    settings = {**first["settings"], "checkpoints": dict(checkpoints), "steps": all_steps,
                "steps_per_method": {m: sorted(set(steps[m])) for m in checkpoints},
                "lrs": {m: s["lrs"][m] for m, s in method_settings.items() if m in s["lrs"]},
                "global_variance_weights": {m: s["global_variance_weights"][m] for m, s in method_settings.items()
                                            if m in s.get("global_variance_weights", {})},
                "rate_scales": {m: s["rate_scales"][m] for m, s in method_settings.items()
                                if m in s.get("rate_scales", {})},
                **{key: {m: s[key][m] for m, s in method_settings.items() if m in s.get(key, {})}
                   for key in ("vocoder_steps", "vocoder_lrs")}}
    return {
        "schema_version": first["schema_version"],
        "settings": settings,
        "method_settings": method_settings,
        "library_version": first["library_version"],
        "tasks": first["tasks"],
        "upper_bounds": first["upper_bounds"],
        "upper_bounds_from": ok[0]["method"],
        "methods": methods,
    }


def check_reusable(earlier: dict, settings: dict, path: str) -> None:
    """Raise ValueError unless ``earlier`` (a result of this script) ran with the same ``REUSE_KEYS`` settings."""
    before = {**REUSE_DEFAULTS, **(earlier.get("settings") or {})}
    settings = {**REUSE_DEFAULTS, **settings}
    differ = [f"{key}: {before.get(key)!r} there, {settings.get(key)!r} now" for key in REUSE_KEYS
              if _comparable(before.get(key)) != _comparable(settings.get(key))]
    if differ:
        raise ValueError(f"--reuse {path} ran with other settings ({'; '.join(differ)}): rerun those methods instead.")


def _comparable(value):
    return sorted(value) if isinstance(value, list) else value


def add_reused(result: dict, earlier: dict, path: str) -> list[str]:
    """Copy into ``result`` every method of ``earlier`` that ran there and not here; returns their names.

    Raises ValueError when the two runs drew other tasks (speakers, held-out sentences).
    """
    if earlier.get("tasks") != result.get("tasks"):
        raise ValueError(f"--reuse {path} drew other tasks or held-out sentences than this run: rerun its methods.")
    reused = [m for m, entry in (earlier.get("methods") or {}).items()
              if m not in result["methods"] and entry.get("status") == "ok"]
    for method in reused:
        result["methods"][method] = earlier["methods"][method]
        result["settings"]["checkpoints"][method] = earlier["settings"]["checkpoints"][method]
        steps = earlier["settings"].get("steps_per_method", {}).get(method, earlier["settings"]["steps"])
        result["settings"]["steps_per_method"][method] = steps
        result["settings"]["steps"] = sorted(set(result["settings"]["steps"]) | set(steps))
        if method in (earlier.get("method_settings") or {}):
            result["method_settings"][method] = earlier["method_settings"][method]
    # where each reused method was measured: the earlier run, or the run that one reused it from
    before = earlier.get("reused") or {}
    measured_by = {m: (before.get("measured_by") or {}).get(m)
                   or (before.get("command") if m in (before.get("methods") or []) else earlier.get("command"))
                   for m in reused}
    result["reused"] = {"from": path, "command": earlier.get("command"), "methods": reused,
                        "measured_by": measured_by, "library_version": earlier.get("library_version")}
    return reused


def _parse_steps(items: list[str]) -> dict[str, list[int]]:
    from hf_metatts.evaluation.benchmark import parse_pairs

    parsed = {}
    for method, value in parse_pairs(items).items():
        try:
            parsed[method] = sorted({int(s) for s in value.split(",") if s.strip()})
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"--steps {method}={value}: give comma-separated integers") from error
    return parsed


def _read_speed(paths: list[str]) -> dict:
    speed = {}
    for path in paths or []:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            logger.warning("--speed-json %s could not be read: %s", path, error)
            for kind in ("rtf", "adaptation_seconds"):
                speed.setdefault(kind, {"reason": f"could not read {path}: {error}"})
            continue
        kind = classify_speed_json(data)
        if kind is None:
            logger.warning("--speed-json %s is neither synthesis_speed.py's nor voice_adaptation_speed.py's JSON",
                           path)
            continue
        speed[kind] = {"path": path, "data": data}
    return speed


def machine() -> dict:
    from hf_metatts.training.hardware import hardware_description

    return {**hardware_description(), "platform": platform.platform(), "processor": platform.processor(),
            "machine": platform.machine(), "python": sys.version.split()[0]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/voices", help="DatasetDict folder (hf-metatts build-corpus)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--task-column", default="speaker_id")
    parser.add_argument("--languages", nargs="*", default=["en"], metavar="PREFIX",
                        help="language-code prefixes of the rows kept (default: en); none given: every language")
    parser.add_argument("--shots", type=int, default=BAR_SHOTS, help="support utterances per speaker")
    parser.add_argument("--heldout", type=int, default=3, help="held-out sentences per speaker")
    parser.add_argument("--checkpoints", nargs="+", metavar="METHOD=DIR",
                        default=[f"{m}={d}" for m, d in DEFAULT_CHECKPOINTS.items()],
                        help="the methods to run and their checkpoints (default: %(default)s)")
    parser.add_argument("--steps", nargs="+", metavar="METHOD=S1,S2",
                        default=[f"{m}={','.join(map(str, s))}" for m, s in DEFAULT_STEPS.items()],
                        help="steps grid per method; an item replaces that method's default (%(default)s)")
    parser.add_argument("--lr", nargs="*", default=[], metavar="METHOD=LR", help="learning rate per method")
    parser.add_argument("--global-variance-weight", nargs="*", default=[], metavar="METHOD=W",
                        help="weight of the global-variance term in a method's support loss, in place of its "
                        "meta-learner's own (hf_metatts.meta.global_variance)")
    parser.add_argument("--rate-scale", nargs="*", default=[], metavar="METHOD=S",
                        help="a factor on a method's meta-learned step sizes (every Meta-SGD rate, or the maml rate); "
                        "choose it on validation tasks (benchmarks/adaptation_rules.py 'scaled:S')")
    parser.add_argument("--vocoder-steps", nargs="*", default=[], metavar="METHOD=N",
                        help="Adam steps adapting a method's neural vocoder to the support clips after its steps "
                        "(hf_metatts.voice_vocoder; default: the checkpoint's voice_vocoder_steps)")
    parser.add_argument("--vocoder-lr", nargs="*", default=[], metavar="METHOD=LR",
                        help="learning rate of those vocoder steps (default: the checkpoint's)")
    parser.add_argument("--max-tasks", type=int, default=None, help="first N speakers (sorted) only")
    parser.add_argument("--metrics", nargs="+", default=METRICS, choices=METRICS, help="similarity is always on")
    parser.add_argument("--seed", type=int, default=0)
    add_support_reading_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="methods run at a time, one process each")
    parser.add_argument("--speed-json", nargs="+", default=[], metavar="PATH",
                        help="JSON of benchmarks/synthesis_speed.py and/or benchmarks/voice_adaptation_speed.py")
    parser.add_argument("--dataset-id", default="hf-metatts/voices-default",
                        help="dataset name in the model_index entries")
    parser.add_argument("--best", default=None, choices=["maml", "metasgd", "meta_lstm", "zero_shot"],
                        help="the method whose 5-step speech the intelligibility, identification and naturalness "
                        f"bars judge: the one the bundled checkpoint adapts with (default: {BEST_META}; with "
                        "--rescore, the earlier result's)")
    parser.add_argument("--reuse", default=None, metavar="JSON",
                        help="an earlier result of this script: its methods that are not run now are merged in "
                        "(same corpus, split, seed, shots and tasks required)")
    parser.add_argument("--rescore", default=None, metavar="JSON",
                        help="check the bars of an earlier result of this script again, running no method (its "
                        "--best and speed JSONs unless given now), and write it to --out with its .md and .png")
    parser.add_argument("--heard-through", nargs="*", default=[], metavar="METHOD=VOCODER",
                        help="with --rescore: the vocoder (griffin_lim, istft, speecht5_hifigan) a method of an "
                        "earlier result spoke through, for results measured before the harness recorded it; "
                        "refused where it contradicts the method's record or its checkpoint folder's config.json")
    parser.add_argument("--out", default="benchmarks/results/default_checkpoint.json",
                        help="JSON path; .md and .png are written beside it")
    return parser


def main(argv=None) -> int:
    from hf_metatts.evaluation.benchmark import BENCHMARK_METHODS, parse_pairs

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s")
    if args.rescore:
        return rescore(args, parser, argv)
    if args.heard_through:
        parser.error("--heard-through annotates an earlier result: give it with --rescore (a run records it)")
    checkpoints = parse_pairs(args.checkpoints)
    try:
        steps = {**DEFAULT_STEPS, **_parse_steps(args.steps)}
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    unknown = sorted(set(checkpoints) - set(BENCHMARK_METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}: choose from {list(BENCHMARK_METHODS)}")
    without_steps = sorted(set(checkpoints) - set(steps))
    if without_steps:
        parser.error(f"give --steps for {without_steps} (e.g. {without_steps[0]}=0,5)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    lrs = parse_pairs(args.lr, float)
    gv_weights = parse_pairs(args.global_variance_weight, float)
    bad = {m: w for m, w in gv_weights.items() if not (w >= 0 and w < float("inf"))}
    if bad:
        parser.error(f"--global-variance-weight {bad}: give finite weights >= 0")
    rate_scales = parse_pairs(args.rate_scale, float)
    bad = {m: f for m, f in rate_scales.items() if not (f > 0 and f < float("inf"))}
    if bad:
        parser.error(f"--rate-scale {bad}: give finite factors > 0")
    try:
        vocoder_steps = parse_pairs(args.vocoder_steps, int)
        vocoder_lrs = parse_pairs(args.vocoder_lr, float)
    except ValueError as error:
        parser.error(f"--vocoder-steps takes METHOD=N (a whole number), --vocoder-lr METHOD=LR: {error}")
    bad = {m: n for m, n in vocoder_steps.items() if n < 0}
    if bad:
        parser.error(f"--vocoder-steps {bad}: give whole numbers >= 0")
    bad = {m: r for m, r in vocoder_lrs.items() if not 0 < r < 1}
    if bad:
        parser.error(f"--vocoder-lr {bad}: give learning rates in (0, 1)")
    common = {"corpus": args.corpus, "task_column": args.task_column, "split": args.split, "shots": [args.shots],
              "max_tasks": args.max_tasks, "heldout": args.heldout, "seed": args.seed,
              "eval_metrics": sorted(set(args.metrics) | {"similarity"}), "languages": args.languages or None,
              "support_durations": args.support_durations, "aligner_search": args.aligner_search,
              "aligner_duration_weight": args.aligner_duration_weight}
    earlier = None
    if args.reuse:
        try:
            earlier = json.loads(Path(args.reuse).read_text())
            check_reusable(earlier, common, args.reuse)
        except (OSError, ValueError) as error:
            parser.error(str(error))
    jobs = [{"method": m, "settings": {**common, "checkpoints": {m: checkpoints[m]}, "steps": steps[m],
                                       "lrs": {m: lrs[m]} if m in lrs else {},
                                       "global_variance_weights": {m: gv_weights[m]} if m in gv_weights else {},
                                       "rate_scales": {m: rate_scales[m]} if m in rate_scales else {},
                                       "vocoder_steps": {m: vocoder_steps[m]} if m in vocoder_steps else {},
                                       "vocoder_lrs": {m: vocoder_lrs[m]} if m in vocoder_lrs else {}}}
            for m in checkpoints]
    # the longest grids first, so that the workers finish together
    order = sorted(range(len(jobs)), key=lambda i: -max(jobs[i]["settings"]["steps"]))
    started = time.perf_counter()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    os.environ["MKL_NUM_THREADS"] = "1"
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(processes=min(args.workers, len(jobs)), initializer=_init_worker)
    try:
        finished = pool.map(run_one, [jobs[i] for i in order], chunksize=1)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    by_method = {run["method"]: run for run in finished}
    result = merge([by_method[m] for m in checkpoints], checkpoints, steps)
    if result is None:
        logger.error("No method could run: %s", "; ".join(
            f"{run['method']}: {run.get('reason') or run['result']['methods'][run['method']].get('reason')}"
            for run in finished))
        return 1
    if earlier is not None:
        try:
            logger.info("reused from %s: %s", args.reuse, add_reused(result, earlier, args.reuse))
        except ValueError as error:
            logger.error("%s", error)
            return 1
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["workers"] = args.workers
    result["machine"] = machine()
    result["command"] = script_command(__file__, argv)
    result["best"] = args.best or BEST_META
    result["bars"] = evaluate_bars(result, args.shots, _read_speed(args.speed_json), best=result["best"])
    result["model_index"] = model_index(result, args.shots, args.dataset_id, best=result["best"])
    write_report(result, args.out)
    return 0


def rescore(args, parser: argparse.ArgumentParser, argv=None) -> int:
    """``--rescore EARLIER.json``: the bars and model-index entries of an earlier result checked again (e.g. after
    this script learned a new measure), its methods untouched; the command is recorded as ``rescore_command``."""
    try:
        result = json.loads(Path(args.rescore).read_text())
    except (OSError, ValueError) as error:
        parser.error(f"--rescore {args.rescore}: {error}")
    if not isinstance(result, dict) or not isinstance(result.get("methods"), dict):
        parser.error(f"--rescore {args.rescore}: not a result of this script (it has no 'methods')")
    shots = (result.get("settings") or {}).get("shots") or [args.shots]
    shots = shots[0] if isinstance(shots, list) else shots
    best = args.best or result.get("best") or BEST_META
    speed_paths = args.speed_json or [bar["measured"]["source"] for bar in (result.get("bars") or {}).values()
                                      if (bar.get("measured") or {}).get("source")]
    from hf_metatts.evaluation.benchmark import parse_pairs

    try:
        record_vocoders(result, parse_pairs(args.heard_through))
    except ValueError as error:
        parser.error(f"--heard-through: {error}")
    result["best"] = best
    result["bars"] = evaluate_bars(result, shots, _read_speed(speed_paths), best=best)
    result["model_index"] = model_index(result, shots, args.dataset_id, best=best)
    result["rescore_command"] = script_command(__file__, argv)
    write_report(result, args.out)
    return 0


def record_vocoders(result: dict, vocoders: dict[str, str]) -> None:
    """Write ``vocoders`` (``{method: vocoder_type}``) into the methods of ``result`` that spoke through them.

    Raises:
        ValueError: an unknown vocoder type or a method that did not run; a vocoder that contradicts the one the
            method recorded, or the ``vocoder_type`` of its checkpoint folder's ``config.json`` (when it is there).
    """
    from hf_metatts.configuration_metatts import VOCODER_TYPES, MetaTTSConfig

    for method, vocoder in vocoders.items():
        entry = result["methods"].get(method) or {}
        if vocoder not in VOCODER_TYPES:
            raise ValueError(f"{method}={vocoder}: the vocoder is one of {', '.join(VOCODER_TYPES)}.")
        if entry.get("status") != "ok":
            raise ValueError(f"{method} has no measurement in this result.")
        config = Path(entry.get("checkpoint") or "") / "config.json"
        found = entry.get("vocoder") or (MetaTTSConfig.from_pretrained(config.parent).vocoder_type
                                         if config.is_file() else None)
        if found not in (None, vocoder):
            raise ValueError(f"{method}={vocoder}, but {method} spoke through {found} (its record or {config}).")
    for method, vocoder in vocoders.items():
        result["methods"][method]["vocoder"] = vocoder


def write_report(result: dict, out: str) -> None:
    """The result's JSON at ``out``, and beside it the markdown (bars, then every table) and the curves' PNG."""
    from hf_metatts.evaluation.cli import write_json_atomic
    from hf_metatts.evaluation.curves import plot_curves, render_markdown

    table = render_bars(result["bars"])
    stem = os.path.splitext(out)[0]
    write_json_atomic(out, result)
    plot_curves(result, stem + ".png")
    with open(stem + ".md", "w", encoding="utf-8") as stream:
        stream.write(f"## Bars of the default checkpoint\n\n{table}\n\n{render_markdown(result)}\n")
    logger.info("bars:\n%s", table)
    logger.info("wrote %s, %s.md, %s.png (%s s of benchmark)", out, stem, stem, result.get("seconds"))


if __name__ == "__main__":
    sys.exit(main())
