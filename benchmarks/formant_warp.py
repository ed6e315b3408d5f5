"""Does the adapted voice put its formants where the speaker has them? Each held-out speaker is adapted once (the
checkpoint's own adaptation, as the bar harness runs it); then the adapted model reads its support clips with the
recorded durations, pitch and energy, and the log-mel frequency warp under which that prediction is closest to the
recordings is chosen from a grid. The warp (``warp_log_mel``) moves every formant by one factor, as a vocal tract
that many times shorter would (the one-parameter warp of vocal-tract-length normalisation): each mel bin centred at
``f`` Hz reads the spectrum at ``f / factor``, interpolated between the bins' centres on the mel scale. The held-out
sentences are synthesised once and vocoded three ways:

- ``plain``: the adapted voice as it is;
- ``support``: its log-mels warped by the factor chosen on the 5 support clips (what an adaptation could do);
- ``oracle``: warped by the factor chosen the same way on the held-out recordings themselves (a bound).

Per variant the JSON has the mean speaker similarity, the identification among all tasks (and how many misses
stay within a recorded voice's pitch/formant family), and optionally the WER; per task the chosen factors and the
support distance curve::

    python benchmarks/formant_warp.py --checkpoint outputs/default_speaker_embedding_maml_adam --lr 0.02 \\
        --global-variance-weight 0.3 --out benchmarks/results/formant_warp_test.json
"""

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pitch_level import summarise_variants  # noqa: E402
from hf_metatts.evaluation.adaptation_study import (  # noqa: E402
    add_study_arguments,
    add_variant_wers,
    load_study,
    plot_variants,
    run_study_main,
    study_record,
)
from hf_metatts.evaluation.benchmark import support_batch  # noqa: E402
from hf_metatts.evaluation.speaker import embed_utterances  # noqa: E402

logger = logging.getLogger("formant_warp")
VARIANTS = ("plain", "support", "oracle")
#: The factors ``choose_warp_factor`` tries by default: formants moved by up to about 18% either way.
DEFAULT_WARP_GRID = tuple(round(0.84 + 0.02 * step, 2) for step in range(19))


class WarpFactorError(ValueError):
    """A warp factor that is not a positive finite number, or an empty grid."""


def mel_center_frequencies(num_mel_bins: int, fmin: float, fmax: float) -> np.ndarray:
    """The centre frequencies in Hz ``(num_mel_bins,)`` of the slaney mel filter bank of the feature extractor."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    edges = np.linspace(hertz_to_mel(fmin, mel_scale="slaney"), hertz_to_mel(fmax, mel_scale="slaney"),
                        num_mel_bins + 2)
    return mel_to_hertz(edges[1:-1], mel_scale="slaney")


def _check_factor(factor: float) -> float:
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise WarpFactorError(
            f"A warp factor is a positive number (1 leaves the formants where they are), got {factor}.")
    return factor


def warp_log_mel(log_mel: torch.Tensor, factor: float, fmin: float, fmax: float) -> torch.Tensor:
    """``log_mel`` ``(..., M)`` with its formants moved up by ``factor`` (down when below 1) -> ``(..., M)``."""
    factor = _check_factor(factor)
    if factor == 1.0:
        return log_mel
    from transformers.audio_utils import hertz_to_mel

    bins = log_mel.shape[-1]
    centers = mel_center_frequencies(bins, fmin, fmax)
    center_mels = hertz_to_mel(centers, mel_scale="slaney")
    read_at = hertz_to_mel(centers / factor, mel_scale="slaney")
    position = np.clip((read_at - center_mels[0]) / (center_mels[1] - center_mels[0]), 0.0, bins - 1.0)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, bins - 1)
    weight = torch.as_tensor(position - below, dtype=log_mel.dtype, device=log_mel.device)
    below = torch.as_tensor(below, device=log_mel.device)
    above = torch.as_tensor(above, device=log_mel.device)
    return log_mel[..., below] * (1.0 - weight) + log_mel[..., above] * weight


def warp_distances(predicted: torch.Tensor, recorded: torch.Tensor, mask: torch.Tensor, fmin: float, fmax: float,
                   grid: Sequence[float] = DEFAULT_WARP_GRID) -> dict[float, float]:
    """Mean absolute log-mel difference of ``warp(predicted)`` to ``recorded`` (both ``(B, T, M)``) over the frames
    where ``mask`` ``(B, T)`` is set, for each factor of ``grid`` -> ``{factor: distance}``."""
    if not len(grid):
        raise WarpFactorError("The grid of warp factors is empty: give at least one factor.")
    mask = mask.bool()
    with torch.no_grad():
        return {float(f): float((warp_log_mel(predicted, f, fmin, fmax) - recorded).abs().mean(-1)[mask].mean())
                for f in grid}


def choose_warp_factor(predicted: torch.Tensor, recorded: torch.Tensor, mask: torch.Tensor, fmin: float,
                       fmax: float, grid: Sequence[float] = DEFAULT_WARP_GRID) -> float:
    """The factor of ``grid`` with the smallest :func:`warp_distances` (ties: the one nearest 1)."""
    return closest_factor(warp_distances(predicted, recorded, mask, fmin, fmax, grid))


def closest_factor(distances: dict[float, float]) -> float:
    """The factor of ``{factor: distance}`` with the smallest distance (ties: the one nearest 1)."""
    return min(distances, key=lambda f: (distances[f], abs(f - 1.0)))


def teacher_forced(model, params: dict, batch: dict) -> torch.Tensor:
    """The adapted model's log-mels ``(B, T, M)`` for ``batch``'s clips on their own durations, pitch and energy."""
    durations = model.compute_durations(**batch)
    with torch.no_grad():
        output = functional_call(model, params, args=(), kwargs={**batch, "durations": durations}, strict=False)
    return output.spectrogram


def chosen_factor(model, params: dict, batch: dict) -> tuple[float, dict[float, float]]:
    """The warp factor that brings the teacher-forced prediction closest to ``batch``'s recordings, and the
    distance of every factor tried."""
    config = model.config
    predicted = teacher_forced(model, params, batch)
    labels, mask = batch["labels"], batch["labels_attention_mask"]
    distances = warp_distances(predicted, labels, mask, config.fmin, config.fmax)
    return closest_factor(distances), distances


def read_texts(model, tokenizer, texts, languages, params, factors: dict[str, float]) -> dict[str, list[np.ndarray]]:
    """Each text synthesised once with ``params`` and vocoded once per variant of ``factors`` -> variant -> waves."""
    config = model.config
    waves = {variant: [] for variant in factors}
    for text, language in zip(texts, languages):
        kwargs = {"language": language} if language else {}
        inputs = tokenizer(text, return_tensors="pt", **kwargs)
        with torch.no_grad():
            output = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), voice=params)
            for variant, factor in factors.items():
                if factor == 1.0:
                    wave = output.waveform[0]
                else:
                    wave = model.vocoder(warp_log_mel(output.spectrogram, factor, config.fmin, config.fmax))[0]
                waves[variant].append(wave.detach().cpu().float().numpy())
    return waves


def run(args) -> dict:
    study = load_study(args, eval_metrics=["similarity", "wer"] if args.wer else ["similarity"])
    model, audios, rate, tokenizer = study.model, study.audios, study.rate, study.processor.tokenizer
    similarity = {v: {} for v in VARIANTS}
    embeddings = {v: {} for v in VARIANTS}
    waves_by_variant = {v: {} for v in VARIANTS}
    factors, curves = {}, {}
    started = time.perf_counter()
    for task in study.tasks:
        audio = audios[task.name]
        support = study.support(task, args.shots)
        params = study.adapt(support, args)
        support_factor, curves[task.name] = chosen_factor(model, params, support)
        oracle_factor, _ = chosen_factor(model, params, support_batch(task.heldout, study.processor))
        factors[task.name] = {"plain": 1.0, "support": support_factor, "oracle": oracle_factor}
        waves = read_texts(model, tokenizer, audio.texts, audio.languages, params, factors[task.name])
        for variant in VARIANTS:
            waves_by_variant[variant][task.name] = waves[variant]
            embeddings[variant][task.name] = embed_utterances(waves[variant], rate)
            similarity[variant][task.name] = float(np.mean(np.sum(embeddings[variant][task.name] * audio.real_emb, 1)))
        logger.info("%s: factors %s, similarity %s", task.name, factors[task.name],
                    {v: round(similarity[v][task.name], 3) for v in VARIANTS})
    results = summarise_variants(embeddings, similarity, audios, log=logger)
    if args.wer:
        add_variant_wers(results, waves_by_variant, audios, rate, logger)
    return {**study_record(args, study), "warp_factors": factors, "support_distances": curves, "results": results,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    plot_variants(result, ("similarity", "identification"),
                  f"{result['split']} speakers: formant warp of the adapted voice", path, ylim=(0.0, 1.0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="formant_warp", description=__doc__.split("\n")[0])
    add_study_arguments(parser, "benchmarks/results/formant_warp.json")
    parser.add_argument("--wer", action="store_true", help="also measure each variant's WER (PocketSphinx)")
    run_study_main(parser, run, plot, argv)


if __name__ == "__main__":
    main()
