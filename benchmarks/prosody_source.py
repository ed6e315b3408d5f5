"""Where does adaptation cost intelligibility: in the prosody the adapted voice predicts, or in its spectra?

Each held-out speaker is adapted once (the checkpoint's own adaptation, as the bar harness runs it); its
held-out sentences are then read four ways:

- ``start``: the voice before the steps (for ``zero_shot``: the support encoder's voice);
- ``adapted``: the voice after the steps, as the harness hears it;
- ``adapted_start_durations``: the adapted voice, with the token durations the start voice predicts;
- ``adapted_start_pitch`` / ``adapted_start_energy``: the adapted voice, with the start voice's pitch or energy;
- ``adapted_start_prosody``: the adapted voice, with the start voice's durations, pitch and energy;
- ``adapted_start_contours``: the adapted voice's own durations and its mean pitch and energy per sentence, with
  the start voice's contours around those means (how pitch and energy move from token to token).

These replace the outputs of the variance predictors (``duration_predictor``, ``pitch_predictor``,
``energy_predictor``) by the start voice's for the same text, so what is heard of the adaptation is its decoder
side (and, for the contours, its levels). Per variant the JSON has the mean speaker similarity, the mean WER (the
harness's ASR), the pooled speaker identification among all tasks and the per-task values, and the spread of
the pitch heard in the audio over a sentence (standard deviation of the voiced frames' log-F0 in semitones, by the
feature extractor's WORLD tracker; also for the recordings); for ``start`` and ``adapted`` also the spread of the
predicted pitch over a sentence's tokens::

    python benchmarks/prosody_source.py --checkpoint outputs/default_speaker_embedding_maml_adam --lr 0.02 \\
        --global-variance-weight 0.3 --out benchmarks/results/prosody_source_test.json
"""

import argparse
import logging
import time
from contextlib import contextmanager

import numpy as np
import torch

from hf_metatts.evaluation.adaptation_study import (
    add_study_arguments,
    load_study,
    plot_variants,
    run_study_main,
    study_record,
)
from hf_metatts.evaluation.benchmark import measure, pooled_identification
from hf_metatts.evaluation.voice_eval import synthesize_texts
from hf_metatts.voice_prosody import SEMITONES_PER_LOG

logger = logging.getLogger("prosody_source")
PROSODY = ("duration_predictor", "pitch_predictor", "energy_predictor")
# variant -> (predictors whose outputs the start voice gives, whether only their contour is taken)
REPLAYS = {"adapted_start_durations": (("duration_predictor",), False),
           "adapted_start_pitch": (("pitch_predictor",), False),
           "adapted_start_energy": (("energy_predictor",), False),
           "adapted_start_prosody": (PROSODY, False),
           "adapted_start_contours": (("pitch_predictor", "energy_predictor"), True)}
VARIANTS = ("start", "adapted", *REPLAYS)


@contextmanager
def recorded(model, names: tuple[str, ...], store: dict[str, list]):
    """Append every output of the named submodules of ``model`` to ``store[name]`` while the block runs."""
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: store[name].append(output.detach().clone())) for name in names]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def replayed(model, names: tuple[str, ...], store: dict[str, list], contour_only: bool = False):
    """Replace the outputs of the named submodules by ``store[name]``, in the order they were recorded.

    The submodules are variance predictors, called as ``predictor(encoded, text_mask)`` and returning ``(B, N)``.
    With ``contour_only`` the recorded values are moved to the running output's mean over each row's tokens
    (``text_mask``): the running voice keeps its level and takes the recorded contour. The recorded outputs must
    come from the same texts in the same order, so every replaced output has the shape the running forward
    expects; a mismatch raises ``RuntimeError``.
    """
    queues = {name: list(store[name]) for name in names}

    def replace(module, inputs, output, name):
        recorded_output = queues[name].pop(0)
        if recorded_output.shape != output.shape:
            raise RuntimeError(f"{name}: recorded output {tuple(recorded_output.shape)} does not fit "
                               f"{tuple(output.shape)}; replay the same texts in the same order.")
        if contour_only:
            mask = inputs[1].to(output.dtype)
            return recorded_output - token_mean(recorded_output, mask) + token_mean(output, mask)
        return recorded_output

    hooks = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: replace(module, inputs, output, name)) for name in names]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` ``(B, N)`` over each row's tokens (``mask`` ``(B, N)``, 1 for a token) -> ``(B, 1)``."""
    return (values * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)


def pitch_spread(outputs: list[torch.Tensor], config) -> float:
    """Mean over the recorded pitch-predictor outputs (each ``(1, N)``, normalised log-F0 of one sentence) of
    their standard deviation over tokens, in semitones."""
    return float(np.mean([float(o.std()) * config.pitch_std * SEMITONES_PER_LOG for o in outputs]))


def f0_spread(waves: list[np.ndarray], feature_extractor) -> float:
    """Mean over ``waves`` (each ``(samples,)``) of the standard deviation of their voiced frames' log-F0, in
    semitones (the feature extractor's ``log_f0``); NaN when no wave has two voiced frames."""
    spreads = []
    for wave in waves:
        log_f0 = feature_extractor.log_f0(np.asarray(wave), len(wave) // feature_extractor.hop_length + 1)
        voiced = log_f0[log_f0 > 0]
        if len(voiced) > 1:
            spreads.append(float(voiced.std()) * SEMITONES_PER_LOG)
    return float(np.mean(spreads)) if spreads else float("nan")


def run(args) -> dict:
    study = load_study(args, eval_metrics=["similarity", "wer"])
    model, processor, audios, rate = study.model, study.processor, study.audios, study.rate
    tokenizer = processor.tokenizer
    per_task = {v: {} for v in VARIANTS}
    embeddings = {v: {} for v in VARIANTS}
    spreads = {"start": [], "adapted": []}
    heard_spreads = {v: [] for v in ("recordings", *VARIANTS)}
    started = time.perf_counter()
    for task in study.tasks:
        audio = audios[task.name]
        support = study.support(task, args.shots)
        voices = {"start": study.adapt(support, args, steps=0), "adapted": study.adapt(support, args)}
        store = {name: [] for name in PROSODY}
        with recorded(model, PROSODY, store):
            waves = {"start": synthesize_texts(model, tokenizer, audio.texts, voices["start"], audio.languages)}
        adapted_store = {"pitch_predictor": []}
        with recorded(model, ("pitch_predictor",), adapted_store):
            waves["adapted"] = synthesize_texts(model, tokenizer, audio.texts, voices["adapted"], audio.languages)
        spreads["start"].append(pitch_spread(store["pitch_predictor"], model.config))
        spreads["adapted"].append(pitch_spread(adapted_store["pitch_predictor"], model.config))
        for variant, (names, contour_only) in REPLAYS.items():
            with replayed(model, names, store, contour_only):
                waves[variant] = synthesize_texts(model, tokenizer, audio.texts, voices["adapted"], audio.languages)
        heard_spreads["recordings"].append(f0_spread(audio.real, processor.feature_extractor))
        for variant in VARIANTS:
            heard_spreads[variant].append(f0_spread(waves[variant], processor.feature_extractor))
            values, embeddings[variant][task.name] = measure(waves[variant], audio, rate, ["wer"])
            per_task[variant][task.name] = {"similarity": values["similarity"], "wer": values["wer"],
                                            "seconds": float(sum(len(w) for w in waves[variant]) / rate)}
        logger.info("%s: %s", task.name, {v: (round(per_task[v][task.name]["similarity"], 3),
                                              round(per_task[v][task.name]["wer"], 3)) for v in VARIANTS})
    results = {}
    for variant in VARIANTS:
        accuracy, candidates, _ = pooled_identification(embeddings[variant], audios)
        cells = per_task[variant].values()
        results[variant] = {"similarity": float(np.mean([c["similarity"] for c in cells])),
                            "wer": float(np.mean([c["wer"] for c in cells])),
                            "seconds_per_utterance": float(np.mean([c["seconds"] for c in cells])) / args.heldout,
                            "identification": accuracy, "identification_candidates": candidates,
                            "f0_spread_semitones": float(np.nanmean(heard_spreads[variant])),
                            "per_task": per_task[variant]}
        if variant in spreads:
            results[variant]["pitch_spread_semitones"] = float(np.mean(spreads[variant]))
        logger.info("%s: similarity %.4f, WER %.4f, identification %.4f", variant, results[variant]["similarity"],
                    results[variant]["wer"], accuracy)
    return {**study_record(args, study), "recordings_wer": float(np.mean([a.real_wer for a in audios.values()])),
            "recordings_f0_spread_semitones": float(np.nanmean(heard_spreads["recordings"])), "results": results,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    plot_variants(result, ("similarity", "wer", "identification"),
                  f"{result['split']} speakers: prosody of the start voice, spectra of the adapted one", path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="prosody_source", description=__doc__.split("\n")[0])
    add_study_arguments(parser, "benchmarks/results/prosody_source.json")
    run_study_main(parser, run, plot, argv)


if __name__ == "__main__":
    main()
