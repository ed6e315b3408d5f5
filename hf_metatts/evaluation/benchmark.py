"""Adaptation benchmark: held-out tasks x methods x shots x adaptation steps -> speaker similarity, EER,
speaker identification accuracy, MCD, WER.

For every held-out test task (a value of the task column) the rows are shuffled with a seed: the last
``heldout`` rows are the held-out sentences, the others the support pool (k-shot support = its first k rows,
so larger k extends smaller k). ``languages`` (language-code prefixes, e.g. ``["en"]``) keeps only the rows
whose ``language`` starts with one of them, before the tasks are formed (so the English recogniser's WER means
something). For every method (each from its own checkpoint) and k, the adapted parameters
are captured at every requested step count in ONE adaptation run (steps are cumulative), then the held-out
sentences are synthesised and compared with the target's real recordings of them. Each method's entry records
its checkpoint, settings and ``vocoder``: the checkpoint's ``vocoder_type``, through which all its speech is heard
(a training-run folder speaks through Griffin-Lim; a bundled checkpoint through its trained vocoder).

Upper bounds on the same held-out sentences: ``ground_truth`` (the real recordings themselves; similarity is
to the task's other real utterances) and ``resynthesis`` (real audio -> the feature extractor's log-mel -> the
model's vocoder). EER is pooled over tasks per (method, k, step): every held-out utterance claims its task and
is scored against the centroids of every task's support-pool recordings. Identification accuracy is pooled the
same way: the fraction of held-out utterances whose closest support-pool centroid, among those of all the
benchmark's tasks (``identification_candidates`` of them), is their own task's.

WER is also given relative to the target's own recordings of the same sentences: ``wer_delta`` (difference) and
``wer_ratio`` (quotient; None where the recordings' WER is 0, counted in ``wer_ratio_undefined``) per task, and
in the means ``wer_ratio_pooled``: mean synthesis WER / mean recording WER (``wer_real_pooled``) over the tasks
measured.

The result is a JSON-able dict; see :func:`run_benchmark`. :func:`render_markdown` turns it into tables.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from hf_metatts.configuration_metatts import ALIGNER_DURATION_WEIGHT_RANGE, check_aligner_duration_weight
from hf_metatts.errors import MetaTTSError

from .audio import MismatchedInputsError

logger = logging.getLogger(__name__)

BENCHMARK_METHODS = ("maml", "metasgd", "meta_lstm", "zero_shot", "finetune")
BENCHMARK_METRICS = ("similarity", "eer", "identification", "mcd", "wer", "wer_delta", "wer_ratio")
#: the metrics that can be asked for in ``eval_metrics`` (similarity is always measured)
EVAL_METRICS = ("similarity", "mcd", "wer", "eer", "identification")
#: how the harness gives the support clips' frames to their tokens (``BenchmarkSettings.support_durations``)
SUPPORT_DURATIONS = ("timings", "aligner")
#: the aligner's search: "own", as each checkpoint's config sets it; "skip_marks", marks, spaces and punctuation may
#: take no frame (as the corpus's phone timings give them); "every_token", each token takes at least one frame
ALIGNER_SEARCHES = ("own", "skip_marks", "every_token")
PER_TASK_METRICS = ("similarity", "mcd", "wer", "wer_delta", "wer_ratio", "support_loss")
SCHEMA_VERSION = 1


class BenchmarkConfigError(MetaTTSError, ValueError):
    """The benchmark's settings cannot give a result (no tasks, no method, bad grid)."""


@dataclass
class BenchmarkSettings:
    """What to run. ``checkpoints`` maps a method to its checkpoint folder (methods absent are skipped)."""

    corpus: str
    checkpoints: dict[str, str]
    task_column: str = "speaker_id"
    split: str = "test"
    shots: list[int] = field(default_factory=lambda: [1, 5, 10])
    steps: list[int] = field(default_factory=lambda: [0, 1, 5, 10, 20, 50, 100])
    max_tasks: int | None = None
    heldout: int = 1
    seed: int = 0
    lrs: dict[str, float] = field(default_factory=dict)
    #: per method, the weight of the global-variance term in its support loss (``hf_metatts.meta.global_variance``)
    #: in place of its meta-learner's own (absent: the checkpoint's)
    global_variance_weights: dict[str, float] = field(default_factory=dict)
    #: per method, a factor on its meta-learner's step sizes (``MetaLearnerHead.scaled``; absent: 1)
    rate_scales: dict[str, float] = field(default_factory=dict)
    #: per method, Adam steps that adapt the neural vocoder to the support clips after every step count above 0
    #: (``hf_metatts.voice_vocoder``; absent: the checkpoint's ``voice_vocoder_steps``), and their learning rates
    vocoder_steps: dict[str, int] = field(default_factory=dict)
    vocoder_lrs: dict[str, float] = field(default_factory=dict)
    eval_metrics: list[str] = field(default_factory=lambda: ["similarity", "mcd", "wer", "eer", "identification"])
    languages: list[str] | None = None
    #: keep only the tasks whose names start with one of these (None: every task)
    task_prefixes: list[str] | None = None
    #: how the support clips' frames are given to their tokens: "timings", the corpus's phone timings where its rows
    #: have them; "aligner", the model's own aligner for every clip, as ``model.adapt`` reads a user's clips
    support_durations: str = "timings"
    #: the aligner's search for every checkpoint (one of ``ALIGNER_SEARCHES``; `set_aligner_search`)
    aligner_search: str = "own"
    #: ``config.aligner_duration_weight`` for every checkpoint (None: each checkpoint's own)
    aligner_duration_weight: float | None = None

    def validate(self) -> None:
        if not self.shots or min(self.shots) < 1:
            raise BenchmarkConfigError(f"shots={self.shots}: give at least one shot count >= 1.")
        if not self.steps or min(self.steps) < 0:
            raise BenchmarkConfigError(f"steps={self.steps}: give at least one step count >= 0.")
        if self.heldout < 1:
            raise BenchmarkConfigError(f"heldout={self.heldout}: hold out at least one sentence per task.")
        unknown = sorted(set(self.checkpoints) - set(BENCHMARK_METHODS))
        if unknown:
            raise BenchmarkConfigError(f"Unknown methods {unknown}: choose from {list(BENCHMARK_METHODS)}.")
        if not self.checkpoints:
            raise BenchmarkConfigError("No checkpoints given: pass at least one METHOD=DIR.")
        bad = {m: w for m, w in self.global_variance_weights.items() if not (w >= 0 and math.isfinite(w))}
        if bad:
            raise BenchmarkConfigError(f"global_variance_weights={bad}: give finite weights >= 0.")
        bad = {m: f for m, f in self.rate_scales.items() if not (f > 0 and math.isfinite(f))}
        if bad:
            raise BenchmarkConfigError(f"rate_scales={bad}: give finite factors > 0.")
        bad = {m: n for m, n in self.vocoder_steps.items() if isinstance(n, bool) or not isinstance(n, int) or n < 0}
        if bad:
            raise BenchmarkConfigError(f"vocoder_steps={bad}: give whole numbers >= 0.")
        bad = {m: r for m, r in self.vocoder_lrs.items() if not (0 < r < 1)}
        if bad:
            raise BenchmarkConfigError(f"vocoder_lrs={bad}: give learning rates in (0, 1).")
        if self.languages is not None and (not self.languages or not all(
                isinstance(code, str) and code.strip() for code in self.languages)):
            raise BenchmarkConfigError(f"languages={self.languages}: give language-code prefixes such as ['en'], "
                                       "or None for every language.")
        unknown = sorted(set(self.eval_metrics) - set(EVAL_METRICS))
        if unknown:
            raise BenchmarkConfigError(f"Unknown metrics {unknown}: choose from {list(EVAL_METRICS)}.")
        if self.support_durations not in SUPPORT_DURATIONS:
            raise BenchmarkConfigError(f"support_durations={self.support_durations!r}: choose one of "
                                       f"{', '.join(SUPPORT_DURATIONS)}.")
        if self.aligner_search not in ALIGNER_SEARCHES:
            raise BenchmarkConfigError(f"aligner_search={self.aligner_search!r}: choose one of "
                                       f"{', '.join(ALIGNER_SEARCHES)}.")
        if self.aligner_duration_weight is not None:
            try:
                check_aligner_duration_weight(self.aligner_duration_weight)
            except ValueError as error:
                raise BenchmarkConfigError(f"{error} Or None for each checkpoint's own.") from error


@dataclass
class Task:
    """One held-out task: support pool rows and held-out rows (``audio`` undecoded, ``text``, ``language``)."""

    name: str
    pool: list[dict]
    heldout: list[dict]


def language_matches(language, prefixes: list[str] | None) -> bool:
    """Whether a row's language code starts with one of ``prefixes`` (case-insensitive); None keeps every row."""
    if prefixes is None:
        return True
    code = str(language or "").strip().lower()
    return any(code.startswith(prefix.strip().lower()) for prefix in prefixes)


def load_tasks(settings: BenchmarkSettings) -> list[Task]:
    """The test tasks of the corpus (rows of ``languages`` only, names starting with one of ``task_prefixes``; first
    ``max_tasks`` in sorted order), split into pool and held-out rows."""
    from datasets import Audio, load_from_disk

    corpus = load_from_disk(settings.corpus)
    if settings.split not in corpus:
        raise BenchmarkConfigError(f"{settings.corpus} has no split {settings.split!r} (has {list(corpus)}).")
    split = corpus[settings.split]
    if settings.task_column not in split.column_names:
        raise BenchmarkConfigError(f"Split {settings.split!r} has no column {settings.task_column!r} "
                                   f"(columns: {split.column_names}).")
    if settings.languages is not None and "language" not in split.column_names:
        raise BenchmarkConfigError(f"languages={settings.languages} needs a 'language' column; split "
                                   f"{settings.split!r} has {split.column_names}.")
    split = split.cast_column("audio", Audio(decode=False))
    groups: dict[str, list[dict]] = {}
    other_languages: set[str] = set()
    for row in split:
        if not language_matches(row.get("language"), settings.languages):
            other_languages.add(str(row.get("language")))
            continue
        groups.setdefault(str(row[settings.task_column]), []).append(row)
    if not groups:
        raise BenchmarkConfigError(f"No {settings.task_column} task of split {settings.split!r} has rows in "
                                   f"languages {settings.languages} (the split's languages: "
                                   f"{sorted(other_languages)}).")
    if other_languages:
        logger.info("languages=%s: rows in %s left out", settings.languages, sorted(other_languages))
    if settings.task_prefixes:
        named = {name: rows for name, rows in groups.items() if name.startswith(tuple(settings.task_prefixes))}
        if not named:
            raise BenchmarkConfigError(f"No {settings.task_column} task of split {settings.split!r} starts with one of "
                                       f"{settings.task_prefixes} (its tasks: {sorted(groups)}).")
        groups = named
    names = sorted(groups)[: settings.max_tasks] if settings.max_tasks else sorted(groups)
    tasks = []
    for name in names:
        rows = list(groups[name])
        random.Random(f"{settings.seed}:{name}").shuffle(rows)
        if len(rows) <= settings.heldout:
            logger.warning("Task %s has %d rows: too few for %d held-out sentences and support; skipped.",
                           name, len(rows), settings.heldout)
            continue
        tasks.append(Task(name, rows[: -settings.heldout], rows[-settings.heldout:]))
    if not tasks:
        raise BenchmarkConfigError(f"No usable {settings.task_column} task in split {settings.split!r}: each needs "
                                   f"more than heldout={settings.heldout} rows.")
    return tasks


def load_method(method: str, checkpoint: str | None):
    """``(model, processor, meta_learner, None)`` or ``(None, None, None, reason)`` when the method cannot run."""
    import os

    from ..meta import load_meta_learner
    from ..modeling_metatts import MetaTTSForTextToSpeech
    from ..processing_metatts import MetaTTSProcessor

    if not checkpoint:
        return None, None, None, "no checkpoint given"
    if not os.path.isdir(checkpoint):
        return None, None, None, f"checkpoint folder {checkpoint} does not exist"
    model = MetaTTSForTextToSpeech.from_pretrained(checkpoint).eval()
    processor = MetaTTSProcessor.from_pretrained(checkpoint)
    head = load_meta_learner(checkpoint) if method != "finetune" else None
    if method in ("metasgd", "meta_lstm") and (head is None or head.config.method != method):
        found = "no meta-learner" if head is None else f"a {head.config.method} meta-learner"
        return None, None, None, f"{method} needs the meta-learner of a {method} run; {checkpoint} has {found}"
    if method == "zero_shot" and getattr(model, "voice_encoder", None) is None:
        return None, None, None, f"{checkpoint} has no support encoder (config.use_voice_encoder is false)"
    return model, processor, head, None


def set_aligner_search(model, processor, search: str, duration_weight: float | None = None) -> None:
    """Give ``model``'s aligner the ``search`` of ``ALIGNER_SEARCHES`` (``config.aligner_skippable_token_ids``;
    "own" leaves the config as loaded) and, unless None, ``config.aligner_duration_weight``."""
    from ..data.durations import skippable_token_ids

    if search not in ALIGNER_SEARCHES:
        raise BenchmarkConfigError(f"aligner search {search!r}: choose one of {', '.join(ALIGNER_SEARCHES)}.")
    if search != "own":
        model.config.aligner_skippable_token_ids = (skippable_token_ids(processor.tokenizer)
                                                    if search == "skip_marks" else None)
    if duration_weight is not None:
        model.config.aligner_duration_weight = float(duration_weight)


def meta_learner_summary(head) -> dict | None:
    """How a method's meta-learner was trained (what a bar needs to know of it): ``{method, inner_optimizer,
    inner_lr, zero_shot_start}``, or None without one (fine-tuning)."""
    if head is None:
        return None
    cfg = head.config
    return {"method": cfg.method, "inner_optimizer": cfg.inner_optimizer, "inner_lr": cfg.inner_lr,
            "zero_shot_start": bool(cfg.zero_shot_start)}


# ------------------------------------------------------------------------------------------------------
class TaskAudio:
    """Per-task real audio and its measurements, computed once and shared by every method."""

    def __init__(self, task: Task, processor, rate: int, with_wer: bool):
        from ..data import decode_audio
        from .asr import asr_word_error_rate
        from .speaker import embed_utterances

        self.task = task
        self.texts = [row["text"] for row in task.heldout]
        self.languages = [row.get("language") for row in task.heldout]
        self.real = [decode_audio(row["audio"], rate) for row in task.heldout]
        self.pool_audio = [decode_audio(row["audio"], rate) for row in task.pool]
        self.real_emb = embed_utterances(self.real, rate)
        self.pool_emb = embed_utterances(self.pool_audio, rate)
        self.real_wer = asr_word_error_rate(self.real, self.texts, rate).wer if with_wer else None


def support_batch(rows: list[dict], processor) -> dict:
    """Collate support rows (the corpus's dataset rows: ``audio``, ``text``, ...) into the batch that
    ``adapt_parameters`` takes, as the meta-training collator builds it: ``input_ids`` and ``attention_mask``
    (B, T), ``labels`` (B, frames, num_mel_bins) and ``labels_attention_mask`` (B, frames), and ``pitch``
    (B, frames) where the rows carry it."""
    from ..data_collator import MetaTTSDataCollator, prepare_example

    return MetaTTSDataCollator()([prepare_example(row, processor) for row in rows])


def measure(waves: list[np.ndarray], audio: TaskAudio, rate: int, metrics: list[str]) -> tuple[dict, np.ndarray]:
    """Similarity, MCD, WER of synthesised held-out sentences against the real ones -> (values, embeddings)."""
    from .asr import asr_word_error_rate
    from .mcd import mel_cepstral_distortion
    from .speaker import embed_utterances

    emb = embed_utterances(waves, rate)
    values: dict = {"similarity": float(np.mean(np.sum(emb * audio.real_emb, axis=1)))}
    if "mcd" in metrics:
        values["mcd"] = float(np.mean(mel_cepstral_distortion(audio.real, waves, sampling_rate=rate)))
    if "wer" in metrics:
        values["wer"] = asr_word_error_rate(waves, audio.texts, rate).wer
        values["wer_delta"] = values["wer"] - audio.real_wer
        values["wer_ratio"] = wer_ratio(values["wer"], audio.real_wer)
    return values, emb


def wer_ratio(wer: float | None, real_wer: float | None) -> float | None:
    """WER of synthesis / WER of the real recordings of the same sentences; None when either is missing or the
    recordings' WER is 0."""
    if wer is None or not real_wer:
        return None
    return float(wer / real_wer)


def pooled_wer(per_task: dict[str, dict], audios: dict[str, TaskAudio]) -> dict:
    """Over the tasks with both a synthesis WER and a recording WER: ``wer_real_pooled`` (mean recording WER),
    ``wer_ratio_pooled`` (mean synthesis WER / that; None when it is 0 or no task has both),
    ``wer_ratio_tasks`` (how many tasks) and ``wer_ratio_undefined`` (tasks whose own ratio is None because
    their recordings' WER is 0)."""
    names = [n for n, v in per_task.items() if v.get("wer") is not None and audios[n].real_wer is not None]
    synth = float(np.mean([per_task[n]["wer"] for n in names])) if names else None
    real = float(np.mean([audios[n].real_wer for n in names])) if names else None
    return {"wer_ratio_pooled": wer_ratio(synth, real), "wer_real_pooled": real, "wer_ratio_tasks": len(names),
            "wer_ratio_undefined": sum(1 for n in names if audios[n].real_wer == 0)}


def pooled_eer(trials: dict[str, np.ndarray], audios: dict[str, TaskAudio]) -> tuple[float | None, str | None]:
    """EER of held-out trials of every task against every task's support-pool centroid -> (eer, reason)."""
    from .speaker import speaker_verification_eer

    if len(trials) < 2:
        return None, f"EER needs at least 2 tasks; got {len(trials)}"
    names = list(trials)
    trial_emb = np.concatenate([trials[n] for n in names])
    trial_labels = [n for n in names for _ in range(len(trials[n]))]
    ref_emb = np.concatenate([audios[n].pool_emb for n in names])
    ref_labels = [n for n in names for _ in range(len(audios[n].pool_emb))]
    return speaker_verification_eer(trial_emb, trial_labels, ref_emb, ref_labels).eer, None


def pooled_identification(trials: dict[str, np.ndarray], audios: dict[str, TaskAudio]
                          ) -> tuple[float | None, int, str | None]:
    """Speaker identification of held-out trials among every task's support-pool centroid (all tasks of the
    benchmark are candidates, also those without trials) -> (accuracy, number of candidates, reason)."""
    from .speaker import speaker_identification_accuracy

    candidates = list(audios)
    if len(candidates) < 2:
        return None, len(candidates), f"identification needs at least 2 candidate tasks; got {len(candidates)}"
    names = [n for n in trials if len(trials[n])]
    if not names:
        return None, len(candidates), "no synthesised utterance to identify"
    trial_emb = np.concatenate([trials[n] for n in names])
    trial_labels = [n for n in names for _ in range(len(trials[n]))]
    ref_emb = np.concatenate([audios[n].pool_emb for n in candidates])
    ref_labels = [n for n in candidates for _ in range(len(audios[n].pool_emb))]
    return speaker_identification_accuracy(trial_emb, trial_labels, ref_emb, ref_labels), len(candidates), None


def pooled_means(mean: dict, per_task: dict[str, dict], trials: dict[str, np.ndarray],
                 audios: dict[str, TaskAudio], metrics: list[str]) -> dict:
    """Add the measures pooled over tasks to ``mean``: EER, identification, pooled WER ratio (as asked)."""
    if "eer" in metrics:
        mean["eer"], reason = pooled_eer(trials, audios)
        if reason:
            mean["eer_note"] = reason
    if "identification" in metrics:
        mean["identification"], mean["identification_candidates"], reason = pooled_identification(trials, audios)
        if reason:
            mean["identification_note"] = reason
    if "wer" in metrics:
        mean.update(pooled_wer(per_task, audios))
    return mean


def _mean(cells: list[dict], key: str) -> float | None:
    values = [c[key] for c in cells if c.get(key) is not None]
    return float(np.mean(values)) if values else None


def upper_bounds(audios: dict[str, TaskAudio], model, rate: int, metrics: list[str]) -> dict:
    """``ground_truth`` and ``resynthesis`` (real audio -> our log-mel -> the model's vocoder)."""
    from ..feature_extraction_metatts import MetaTTSFeatureExtractor

    extractor = MetaTTSFeatureExtractor.from_model_config(model.config)
    truth, resyn, resyn_emb = {}, {}, {}
    for name, audio in audios.items():
        cos = audio.real_emb @ audio.pool_emb.T
        truth[name] = {"similarity": float(np.mean(cos)), "mcd": 0.0 if "mcd" in metrics else None,
                       "wer": audio.real_wer, "wer_delta": 0.0 if audio.real_wer is not None else None,
                       "wer_ratio": wer_ratio(audio.real_wer, audio.real_wer)}
        waves = []
        for wave in audio.real:
            mel = torch.from_numpy(extractor(wave, sampling_rate=rate)["input_features"])
            with torch.no_grad():
                waves.append(model.vocoder(mel).reshape(-1).float().numpy())
        resyn[name], resyn_emb[name] = measure(waves, audio, rate, metrics)
    result = {}
    for label, per_task, trials in (("ground_truth", truth, {n: a.real_emb for n, a in audios.items()}),
                                    ("resynthesis", resyn, resyn_emb)):
        mean = {key: _mean(list(per_task.values()), key)
                for key in ("similarity", "mcd", "wer", "wer_delta", "wer_ratio")}
        result[label] = {"per_task": per_task, "mean": pooled_means(mean, per_task, trials, audios, metrics)}
    return result


def run_method(method: str, model, processor, head, tasks: list[Task], audios: dict[str, TaskAudio],
               settings: BenchmarkSettings) -> dict:
    """Every k and step for one method: ``{"status": "ok", "results": {k: {step: {...}}}, "vocoder_adaptation":
    {steps, learning_rate, parameters} or None}``."""
    from ..meta import adapt_parameters
    from .voice_eval import synthesize_texts

    rate = model.config.sampling_rate
    steps = sorted(set(settings.steps))
    lr = settings.lrs.get(method)
    loss_term = None
    if settings.global_variance_weights.get(method):
        from ..meta.global_variance import global_variance_term

        loss_term = global_variance_term(settings.global_variance_weights[method])
    vocoder_adaptation = method_vocoder_adaptation(method, model, settings)
    results: dict[str, dict] = {}
    for k in sorted(set(settings.shots)):
        cells: dict[int, dict] = {s: {"per_task": {}, "skipped_tasks": {}} for s in steps}
        trials: dict[int, dict[str, np.ndarray]] = {s: {} for s in steps}
        for task in tasks:
            if k > len(task.pool):
                for s in steps:
                    cells[s]["skipped_tasks"][task.name] = f"{len(task.pool)} support rows < k={k}"
                continue
            support = support_batch(task.pool[:k], processor)
            if settings.support_durations == "aligner":
                support.pop("durations", None)  # adapt_parameters and the vocoder's read run the aligner instead
            snapshots: dict[int, tuple[dict, float | None]] = {}
            started = time.perf_counter()
            if 0 in steps:
                snapshots[0] = (adapt_parameters(model, support, method=method, steps=0, meta_learner=head, lr=lr,
                                                 loss_term=loss_term), None)

            def capture(step, loss, params, _snapshots=snapshots):
                if step in steps:
                    _snapshots[step] = ({n: p.detach().clone() for n, p in params.items()}, float(loss))

            if max(steps) > 0:
                adapt_parameters(model, support, method=method, steps=max(steps), meta_learner=head, lr=lr,
                                 callback=capture, loss_term=loss_term)
            vocoder_seconds = 0.0
            if vocoder_adaptation is not None:
                vocoder_seconds = add_vocoder_adaptation(model, snapshots, support, audios[task.name].pool_audio[:k],
                                                         vocoder_adaptation)
            adapt_seconds = time.perf_counter() - started
            for s in steps:
                if s not in snapshots:  # the run stopped early (diverged)
                    cells[s]["skipped_tasks"][task.name] = "adaptation diverged before this step"
                    continue
                params, loss = snapshots[s]
                waves = synthesize_texts(model, processor.tokenizer, audios[task.name].texts, params,
                                         audios[task.name].languages)
                try:
                    values, emb = measure(waves, audios[task.name], rate, settings.eval_metrics)
                except MetaTTSError as error:  # e.g. a silent synthesis: record it, keep the benchmark going
                    cells[s]["skipped_tasks"][task.name] = f"{type(error).__name__}: {error}"
                    continue
                values["support_loss"] = loss
                cells[s]["per_task"][task.name] = values
                trials[s][task.name] = emb
            logger.info("%s k=%d task %s: %d steps in %.1f s (vocoder: %.1f s)", method, k, task.name, max(steps),
                        adapt_seconds, vocoder_seconds)
        by_step = {}
        for s in steps:
            per_task = list(cells[s]["per_task"].values())
            mean = {key: _mean(per_task, key) for key in PER_TASK_METRICS}
            pooled_means(mean, cells[s]["per_task"], trials[s], audios, settings.eval_metrics)
            by_step[str(s)] = {"mean": mean, **cells[s]}
        results[str(k)] = by_step
    summary = None if vocoder_adaptation is None else {
        "steps": vocoder_adaptation.steps, "learning_rate": vocoder_adaptation.learning_rate,
        "parameters": list(vocoder_adaptation.parameters)}
    return {"status": "ok", "results": results, "vocoder_adaptation": summary}


def method_vocoder_adaptation(method: str, model, settings: BenchmarkSettings):
    """The `VocoderAdaptation` a method's voices get, as ``model.adapt`` resolves it from ``settings.vocoder_steps``
    / ``vocoder_lrs`` or the checkpoint's config, or None when its vocoder does not adapt."""
    from ..voice_vocoder import resolve_vocoder_adaptation

    adaptation = resolve_vocoder_adaptation(model, settings.vocoder_steps.get(method), settings.vocoder_lrs.get(method))
    return adaptation if adaptation.steps else None


def add_vocoder_adaptation(model, snapshots: dict[int, tuple[dict, float | None]], support: dict,
                           support_audio: list[np.ndarray], adaptation) -> float:
    """Adapt the vocoder to the support clips for every snapshot after at least one step, as ``model.adapt`` does
    (``snapshots[step] = (params, loss)`` gains the ``vocoder.*`` values); 0 steps stay the voice before any
    adaptation. Returns the seconds the vocoder steps took."""
    from ..voice_vocoder import with_adapted_vocoder

    seconds = 0.0
    for step, (params, loss) in list(snapshots.items()):
        if step == 0:
            continue
        voiced, report = with_adapted_vocoder(model, params, [support], support_audio, adaptation)
        snapshots[step] = (voiced, loss)
        seconds += report["seconds"]
    return seconds


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Run the whole grid; returns the JSON-able result (see the module docstring)."""
    import hf_metatts

    settings.validate()
    started = time.perf_counter()
    tasks = load_tasks(settings)
    methods: dict[str, dict] = {}
    audios: dict[str, TaskAudio] | None = None
    bounds = None
    for method in BENCHMARK_METHODS:
        checkpoint = settings.checkpoints.get(method)
        model, processor, head, reason = load_method(method, checkpoint)
        if reason:
            logger.warning("%s skipped: %s", method, reason)
            methods[method] = {"status": "skipped", "reason": reason, "checkpoint": checkpoint}
            continue
        set_aligner_search(model, processor, settings.aligner_search, settings.aligner_duration_weight)
        if method in settings.rate_scales:
            if head is None:
                raise BenchmarkConfigError(f"rate_scales[{method!r}]: {checkpoint} has no meta-learner whose steps "
                                           "could be scaled.")
            head = head.scaled(settings.rate_scales[method])
        rate = model.config.sampling_rate
        if audios is None:
            audios = {t.name: TaskAudio(t, processor, rate, "wer" in settings.eval_metrics) for t in tasks}
            bounds = upper_bounds(audios, model, rate, settings.eval_metrics)
            bounds["resynthesis"]["checkpoint"] = checkpoint
        method_started = time.perf_counter()
        torch.manual_seed(settings.seed)
        entry = run_method(method, model, processor, head, tasks, audios, settings)
        entry.update(checkpoint=checkpoint, seconds=round(time.perf_counter() - method_started, 1),
                     lr=settings.lrs.get(method), meta_learner=meta_learner_summary(head),
                     global_variance_weight=settings.global_variance_weights.get(method),
                     rate_scale=settings.rate_scales.get(method), vocoder=model.config.vocoder_type,
                     aligner_skips_marks=bool(model.config.aligner_skippable_token_ids),
                     aligner_duration_weight=model.config.aligner_duration_weight)
        methods[method] = entry
    if audios is None:
        raise BenchmarkConfigError("No method could run: " + "; ".join(
            f"{m}: {e['reason']}" for m, e in methods.items()))
    return {
        "schema_version": SCHEMA_VERSION,
        "settings": {**asdict(settings), "shots": sorted(set(settings.shots)), "steps": sorted(set(settings.steps))},
        "library_version": hf_metatts.__version__,
        "tasks": [{"name": t.name, "support_pool": len(t.pool), "heldout": len(t.heldout),
                   "heldout_texts": [r["text"] for r in t.heldout]} for t in tasks],
        "upper_bounds": bounds,
        "methods": methods,
        "seconds": round(time.perf_counter() - started, 1),
    }


def duration_weight_argument(text: str) -> float:
    """``--aligner-duration-weight``'s value: a weight the config accepts (`check_aligner_duration_weight`);
    argparse reports anything else."""
    import argparse

    try:
        weight = float(text)
        check_aligner_duration_weight(weight)
    except ValueError as error:
        low, high = ALIGNER_DURATION_WEIGHT_RANGE
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a weight in [{low:g}, {high:g}] (0: the aligner alone)") from error
    return weight


def add_support_reading_arguments(parser) -> None:
    """Add ``--support-durations``, ``--aligner-search`` and ``--aligner-duration-weight`` (how the support clips'
    frames are given to their tokens: ``BenchmarkSettings.support_durations``, ``aligner_search`` and
    ``aligner_duration_weight``) to an argparse parser."""
    parser.add_argument("--support-durations", choices=SUPPORT_DURATIONS, default="timings",
                        help="how the support clips' frames are given to their tokens: 'timings', the corpus's phone "
                        "timings where it has them (the bars' harness); 'aligner', the model's own aligner for "
                        "every clip, as model.adapt does for a user's clips, which come without timings")
    parser.add_argument("--aligner-search", choices=ALIGNER_SEARCHES, default="own",
                        help="the aligner's search: 'own', as each checkpoint's config sets it; 'skip_marks', stress "
                        "and length marks, spaces and punctuation may take no frame, as the corpus's phone timings "
                        "give them; 'every_token', each token takes at least one frame")
    parser.add_argument("--aligner-duration-weight", type=duration_weight_argument, default=None, metavar="W",
                        help="the aligner's search holds each token's log-duration this strongly to the duration "
                        "predictor's (config.aligner_duration_weight; 0: the aligner alone; default: each "
                        "checkpoint's own)")


def parse_pairs(items: list[str] | None, cast=str) -> dict:
    """``["maml=DIR", ...]`` -> ``{"maml": "DIR"}``; raises `MismatchedInputsError` on an item without '='."""
    pairs = {}
    for item in items or []:
        if "=" not in item:
            raise MismatchedInputsError(f"{item!r} is not METHOD=VALUE (e.g. maml=outputs/tiny_maml).")
        key, value = item.split("=", 1)
        pairs[key.strip()] = cast(value.strip())
    return pairs


__all__ = ["BENCHMARK_METHODS", "BENCHMARK_METRICS", "EVAL_METRICS", "BenchmarkConfigError", "BenchmarkSettings",
           "Task", "language_matches", "load_tasks", "parse_pairs", "pooled_identification", "pooled_wer",
           "run_benchmark", "support_batch", "upper_bounds", "wer_ratio"]
