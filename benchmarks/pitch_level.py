"""Is the adapted voice's pitch level what keeps it from being identified? Each held-out speaker is adapted once
(the checkpoint's own adaptation, as the bar harness runs it), then its held-out sentences are synthesised four
times, with four pitch levels:

- ``plain``: the adapted voice as it is;
- ``support_measured``: shifted by the mean log-F0 of the 5 support recordings minus that of the adapted voice
  reading the same 5 support texts (WORLD harvest on the audio of both);
- ``support_predicted``: shifted by the mean, over the voiced support frames, of the recorded pitch minus the
  pitch predictor's value for the frame's token (inside the model, no vocoder involved);
- ``oracle``: shifted by the held-out recordings' mean log-F0 minus the plain synthesis' (a bound: it reads the
  very recordings the voice is scored against).

The shift is ``pitch_shift`` of the model's ``forward`` (semitones, added to the predicted pitch). Per variant the
JSON has the mean speaker similarity, the speaker identification among all tasks, the shifts per task, and, for
``plain``, every misidentified utterance with the task it was taken for and whether both are one recorded voice's
pitch/formant family (the name before ``~``)::

    python benchmarks/pitch_level.py --checkpoint outputs/default_speaker_embedding_maml_adam --lr 0.02 \\
        --global-variance-weight 0.3 --out benchmarks/results/pitch_level_test.json
"""

import argparse
import logging
import math
import time

import numpy as np
import torch

from hf_metatts.evaluation.adaptation_study import (
    add_study_arguments,
    load_study,
    plot_variants,
    run_study_main,
    study_record,
)
from hf_metatts.evaluation.benchmark import TaskAudio
from hf_metatts.evaluation.speaker import cosine_similarity, embed_utterances, speaker_centroids
from hf_metatts.evaluation.voice_eval import synthesize_texts
from hf_metatts.modeling_metatts import _durations_to_path
from hf_metatts.voice_prosody import SEMITONES_PER_LOG, predictor_outputs

logger = logging.getLogger("pitch_level")
VARIANTS = ("plain", "support_measured", "support_predicted", "oracle")
F0_RANGE_HZ = (60.0, 500.0)
MAX_SHIFT = 24.0  # the model's pitch_shift range


def mean_log_f0(waves: list[np.ndarray], rate: int) -> float:
    """Mean natural-log F0 (Hz) over the voiced frames of all ``waves`` (each ``(samples,)``); NaN when none is
    voiced."""
    import pyworld

    voiced = []
    for wave in waves:
        f0, _ = pyworld.harvest(np.asarray(wave, dtype=np.float64), rate, frame_period=10.0,
                                f0_floor=F0_RANGE_HZ[0], f0_ceil=F0_RANGE_HZ[1])
        voiced.append(np.log(f0[f0 > 0]))
    values = np.concatenate(voiced)
    return float(values.mean()) if len(values) else float("nan")


def predicted_pitch_gap(model, params: dict, support: dict) -> float:
    """Log-F0 gap from the pitch predictor to the recorded pitch on the support clips.

    ``support`` is one collated batch with ``pitch`` ``(B, T)`` (log Hz, 0 unvoiced). Each voiced frame compares
    its normalised recorded pitch with the prediction ``(B, N)`` for the token the aligner gives it (the
    ``(B, T, N)`` path of its durations); the mean difference, back in natural-log Hz, is returned (0 without a
    voiced frame).
    """
    durations = model.compute_durations(**support)
    predicted = predictor_outputs(model, params, {**support, "durations": durations})["pitch_predictor"]
    config, pitch = model.config, support["pitch"]
    path = _durations_to_path(durations.long(), pitch.shape[1]).to(predicted.dtype)  # (B, T, N)
    frame_prediction = torch.einsum("btn,bn->bt", path, predicted)
    voiced = (pitch > 0) & support["labels_attention_mask"].bool() & path.sum(-1).bool()
    if not bool(voiced.any()):
        return 0.0
    normalised = (pitch - config.pitch_mean) / config.pitch_std
    return float((normalised - frame_prediction)[voiced].mean()) * config.pitch_std


def shift_of(log_gap: float) -> float:
    """A log-F0 gap -> semitones within the model's range (0 when the gap could not be measured)."""
    return 0.0 if not math.isfinite(log_gap) else float(np.clip(log_gap * SEMITONES_PER_LOG, -MAX_SHIFT, MAX_SHIFT))


def family(task: str) -> str:
    return task.split("~")[0]


def identification(embeddings: dict[str, np.ndarray], audios: dict[str, TaskAudio]) -> tuple[float, list[dict]]:
    """Accuracy among every task's support centroid, and the misidentified utterances."""
    names = list(audios)
    references = np.concatenate([audios[n].pool_emb for n in names])
    labels, centroids = speaker_centroids(references, [n for n in names for _ in range(len(audios[n].pool_emb))])
    labels = [str(label) for label in labels]
    hits, misses = 0, []
    for task, utterances in embeddings.items():
        for index, scores in enumerate(cosine_similarity(utterances, centroids)):
            taken = labels[int(np.argmax(scores))]
            hits += taken == task
            if taken != task:
                misses.append({"task": task, "utterance": index, "taken_for": taken,
                               "same_family": family(taken) == family(task),
                               "score_taken": float(scores.max()), "score_target": float(scores[labels.index(task)])})
    return hits / sum(len(e) for e in embeddings.values()), misses


def summarise_variants(embeddings: dict[str, dict[str, np.ndarray]], similarity: dict[str, dict[str, float]],
                       audios: dict[str, TaskAudio], log: logging.Logger | None = None) -> dict[str, dict]:
    """Per variant (``embeddings[variant][task]`` ``(utterances, D)``, ``similarity[variant][task]``): the mean
    similarity, the identification among every task's centroid, how many misses stay within a voice family, and
    for ``plain`` the misses themselves; each variant logged to ``log`` (default: this study's logger)."""
    log = log or logger
    results = {}
    for variant in embeddings:
        accuracy, misses = identification(embeddings[variant], audios)
        results[variant] = {"similarity": float(np.mean(list(similarity[variant].values()))),
                            "identification": accuracy, "misidentified": len(misses),
                            "misidentified_same_family": sum(m["same_family"] for m in misses),
                            "similarity_per_task": similarity[variant]}
        if variant == "plain":
            results[variant]["misses"] = misses
        log.info("%s: similarity %.4f, identification %.4f (%d missed, %d within a family)", variant,
                    results[variant]["similarity"], accuracy, len(misses),
                    results[variant]["misidentified_same_family"])
    return results


def run(args) -> dict:
    study = load_study(args, eval_metrics=["similarity"])
    model, audios, rate, tokenizer = study.model, study.audios, study.rate, study.processor.tokenizer
    similarity = {v: {} for v in VARIANTS}
    embeddings = {v: {} for v in VARIANTS}
    shifts = {}
    started = time.perf_counter()
    for task in study.tasks:
        audio, support_rows = audios[task.name], task.pool[: args.shots]
        support = study.support(task, args.shots)
        params = study.adapt(support, args)
        plain = synthesize_texts(model, tokenizer, audio.texts, params, audio.languages)
        support_speech = synthesize_texts(model, tokenizer, [r["text"] for r in support_rows], params,
                                          [r.get("language") for r in support_rows])
        shifts[task.name] = {
            "support_measured": shift_of(mean_log_f0(audio.pool_audio[: args.shots], rate)
                                         - mean_log_f0(support_speech, rate)),
            "support_predicted": shift_of(predicted_pitch_gap(model, params, support)),
            "oracle": shift_of(mean_log_f0(audio.real, rate) - mean_log_f0(plain, rate)),
        }
        for variant in VARIANTS:
            waves = plain if variant == "plain" else synthesize_texts(
                model, tokenizer, audio.texts, params, audio.languages, pitch_shift=shifts[task.name][variant])
            embeddings[variant][task.name] = embed_utterances(waves, rate)
            similarity[variant][task.name] = float(np.mean(np.sum(embeddings[variant][task.name] * audio.real_emb, 1)))
        logger.info("%s: shifts %s, similarity %s", task.name, {k: round(v, 2) for k, v in shifts[task.name].items()},
                    {v: round(similarity[v][task.name], 3) for v in VARIANTS})
    results = summarise_variants(embeddings, similarity, audios)
    return {**study_record(args, study), "shifts_semitones": shifts, "results": results,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    plot_variants(result, ("similarity", "identification"),
                  f"{result['split']} speakers: pitch level of the adapted voice", path, ylim=(0.0, 1.0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="pitch_level", description=__doc__.split("\n")[0])
    add_study_arguments(parser, "benchmarks/results/pitch_level.json")
    run_study_main(parser, run, plot, argv)


if __name__ == "__main__":
    main()
