"""Human voices the checkpoint never heard: what five recorded clips give through ``model.adapt``.

Every other reading in BENCHMARKS.md is on synthesiser voices (espeak, flite, festival and their WORLD shifts).
This one is on people: the Asterisk telephony prompts (``hf_metatts.data.prompt_recordings``), five voices recorded
by professional voice talents at 16 kHz, none in any training split. English and Spanish are the same talent
(Allison Smith); French (June Wallack) is also a language the default corpus never trains on; Italian (Carlo) and
Russian are trained languages spoken by new people. Build the corpus first::

    bash scripts/install_recordings.sh && hf-metatts import-prompts --out data/prompts

For each voice and each of ``--draws`` seeded draws, ``--shots`` prompts are the support clips and ``--heldout``
others the sentences the voice reads. The clips go through ``model.adapt`` as a user's would (clip checks, the
aligner's durations, the vocoder's steps): ``start`` is the support encoder's voice (``method="zero_shot"``, 0
steps) with the vocoder adapted to the clips as ``model.adapt`` does, ``start_no_vocoder`` the encoder's voice alone
(nothing adapted to the clips but the voice the encoder reads from them), ``steps_N`` the shipped adaptation after N
steps, ``steps_N_no_vocoder`` the same without the vocoder's steps,
``steps_N_vocoder_V`` with V vocoder steps (``--vocoder-steps``), ``steps_N_rhythm`` with rhythm matching, and
``extra_N`` N steps of ``--extra-lr`` that also adapt ``--extra-parameters`` (``model.adapt(...,
extra_parameters=...)``, for more clips: ``--shots 40``). Per variant, against the held-out recordings of the same
sentences:

- ``similarity``: the speaker encoder's cosine similarity of each synthesised sentence to its recording;
- ``mcd``: mel-cepstral distortion (dB, DTW-aligned);
- ``wer``: PocketSphinx's word error rate (English voices only; the recordings' own WER beside it);
- ``seconds``: the wall time of ``model.adapt``;
- ``identification`` (pooled over voices and draws): the share of synthesised sentences whose nearest voice, by the
  mean embedding of each voice's held-out recordings, is spoken by the right talent; ``mistaken_for`` lists, per
  variant and voice, the other talents' voices its sentences were taken for.

``recordings_similarity`` is the ceiling: each held-out recording against the other held-out recordings of the
same voice.

    python benchmarks/recorded_voices.py --out benchmarks/results/recorded_voices.json
"""

import argparse
import logging
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.language_adaptation import speaker_rows  # noqa: E402
from benchmarks.style_adaptation import run_and_write, voice_reading  # noqa: E402

logger = logging.getLogger("recorded_voices")
READINGS = ("similarity", "mcd", "wer", "seconds")
ENGLISH = "en"


def variant_names(steps: list[int], rhythm_steps: list[int], vocoder_steps: list[int] = (),
                  extra_steps: list[int] = ()) -> list[str]:
    """``start`` and ``start_no_vocoder``, then per step count N ``steps_N`` and ``steps_N_no_vocoder``, for each V of
    ``vocoder_steps`` ``steps_N_vocoder_V`` (the vocoder's steps set to V), ``steps_N_rhythm`` for ``rhythm_steps``
    and ``extra_N`` for ``extra_steps``."""
    names = ["start", "start_no_vocoder"]
    for n in steps:
        names += [f"steps_{n}", f"steps_{n}_no_vocoder", *[f"steps_{n}_vocoder_{v}" for v in vocoder_steps]]
    return names + [f"steps_{n}_rhythm" for n in rhythm_steps] + [f"extra_{n}" for n in extra_steps]


def adapt_variant(model, clips: list, variant: str, language: str, rate: int, method: str = "maml",
                  extra_parameters: list[str] | None = None, extra_lr: float | None = None):
    """The voice of ``variant`` (see :func:`variant_names`) from ``clips`` through ``model.adapt`` with ``method``:
    ``maml`` (the default: the support encoder's voice, then the meta-learned steps) starts from the support encoder
    (``method="zero_shot"``, 0 steps), ``finetune`` (a baseline checkpoint) from the model's own voice. ``extra_N``
    takes N steps of ``extra_lr`` on the adapted set and ``extra_parameters``."""
    parts = variant.split("_")
    if parts[0] == "extra":
        if not extra_parameters:
            raise ValueError(f"variant {variant!r} needs extra_parameters (--extra-parameters)")
        return model.adapt(clips, method=method, steps=int(parts[1]), lr=extra_lr, sampling_rate=rate,
                           language=language, progress=False, extra_parameters=list(extra_parameters))
    vocoder_steps = None  # the checkpoint's own
    if variant.endswith("_no_vocoder"):
        vocoder_steps = 0
    elif "vocoder" in parts:
        vocoder_steps = int(parts[parts.index("vocoder") + 1])
    if parts[0] == "start":
        return model.adapt(clips, method="zero_shot" if method == "maml" else method, steps=0, sampling_rate=rate,
                           language=language, progress=False, vocoder_steps=vocoder_steps)
    return model.adapt(clips, method=method, steps=int(parts[1]), sampling_rate=rate, language=language,
                       progress=False, vocoder_steps=vocoder_steps, match_rhythm=variant.endswith("_rhythm"))


def pairwise_similarity(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over the distinct pairs of unit-norm ``embeddings`` ``(n, d)``."""
    gram = embeddings @ embeddings.T
    n = len(embeddings)
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def read_draw(model, processor, rows: list[dict], seed: int, variants: list[str], args) -> tuple[dict, dict]:
    """One voice, one draw: ``(cell, embeddings)``; the cell holds each variant's mean readings over the held-out
    sentences, ``embeddings`` each variant's ``(heldout, d)`` speaker embeddings and the recordings'."""
    from hf_metatts.data import decode_audio
    from hf_metatts.evaluation.asr import asr_word_error_rate
    from hf_metatts.evaluation.mcd import mel_cepstral_distortion
    from hf_metatts.evaluation.speaker import embed_utterances

    rate = model.config.sampling_rate
    rows = list(rows)
    random.Random(f"{seed}:{rows[0]['speaker_id']}").shuffle(rows)
    if len(rows) < args.shots + args.heldout:
        raise SystemExit(f"error: {rows[0]['speaker_id']} has {len(rows)} prompts, fewer than shots + heldout")
    support, heldout = rows[: args.shots], rows[args.shots: args.shots + args.heldout]
    language = support[0]["language"]
    english = language.startswith(ENGLISH)
    clips = [(decode_audio(row["audio"], rate), row["text"]) for row in support]
    real = [decode_audio(row["audio"], rate) for row in heldout]
    texts = [row["text"] for row in heldout]
    real_embeddings = embed_utterances(real, rate)
    cell = {"language": language, "support_ids": [row["id"] for row in support],
            "heldout_ids": [row["id"] for row in heldout],
            "recordings_similarity": pairwise_similarity(real_embeddings),
            "recordings_wer": asr_word_error_rate(real, texts, rate).wer if english else None}
    embeddings = {"recordings": real_embeddings}
    for variant in variants:
        torch.manual_seed(seed)
        started = time.perf_counter()
        voice = adapt_variant(model, clips, variant, language, rate, args.method,
                              getattr(args, "extra_parameters", None), getattr(args, "extra_lr", None))
        seconds = time.perf_counter() - started
        waves = [voice_reading(model, processor.tokenizer, voice, row["text"], language).waveform for row in heldout]
        embeddings[variant] = embed_utterances(waves, rate)
        cell[variant] = {
            "similarity": float(np.mean(np.sum(embeddings[variant] * real_embeddings, axis=1))),
            "mcd": float(np.mean(mel_cepstral_distortion(real, waves, rate))),
            "wer": asr_word_error_rate(waves, texts, rate).wer if english else None,
            "seconds": seconds,
        }
    return cell, embeddings


def nearest_voices(embeddings: dict[str, list[dict]], variant: str) -> dict[str, dict[str, int]]:
    """voice -> {nearest voice: number of ``variant``'s synthesised sentences of that voice (every draw)}: the voice
    whose recordings' mean embedding (all draws) is nearest by cosine to each sentence's embedding."""
    from hf_metatts.evaluation.speaker import cosine_similarity, speaker_centroids

    recordings = [(voice, draw["recordings"]) for voice, draws in embeddings.items() for draw in draws]
    voices, centroids = speaker_centroids(np.concatenate([emb for _, emb in recordings]),
                                          [voice for voice, emb in recordings for _ in emb])
    tally: dict[str, dict[str, int]] = {}
    for voice, draws in embeddings.items():
        counts = tally.setdefault(voice, {})
        for draw in draws:
            for index in cosine_similarity(draw[variant], centroids).argmax(axis=1):
                counts[voices[index]] = counts.get(voices[index], 0) + 1
    return tally


def identification(embeddings: dict[str, list[dict]], talents: dict[str, str], variant: str) -> float:
    """Share of ``variant``'s synthesised sentences (every voice, every draw) whose nearest voice by cosine to the
    mean embedding of that voice's held-out recordings (all draws) is spoken by the same talent."""
    tally = nearest_voices(embeddings, variant)
    right = sum(n for voice, counts in tally.items() for nearest, n in counts.items()
                if talents[nearest] == talents[voice])
    return right / sum(n for counts in tally.values() for n in counts.values())


def mistaken_for(embeddings: dict[str, list[dict]], talents: dict[str, str], variant: str) -> dict[str, dict]:
    """voice -> {another talent's voice: sentences taken for it} for ``variant``, only where a sentence's nearest
    voice is another talent's (what :func:`identification` counts wrong)."""
    return {voice: wrong for voice, counts in nearest_voices(embeddings, variant).items()
            if (wrong := {nearest: n for nearest, n in counts.items() if talents[nearest] != talents[voice]})}


def summary(cells: dict[str, list[dict]], variants: list[str]) -> dict:
    """voice -> variant -> reading -> mean over draws (None where not read), and the same over all voices."""
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    out = {}
    for voice, draws in cells.items():
        out[voice] = {variant: {reading: mean([d[variant].get(reading) for d in draws]) for reading in READINGS}
                      for variant in variants}
        out[voice]["recordings"] = {"similarity": mean([d["recordings_similarity"] for d in draws]),
                                    "wer": mean([d["recordings_wer"] for d in draws])}
    out["all"] = {variant: {reading: mean([out[v][variant][reading] for v in cells]) for reading in READINGS}
                  for variant in variants}
    out["all"]["recordings"] = {"similarity": mean([out[v]["recordings"]["similarity"] for v in cells])}
    return out


def run(args) -> dict:
    import hf_metatts
    from hf_metatts.training.hardware import hardware_description

    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint).eval()
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(args.checkpoint)
    groups = speaker_rows(args.corpus, "test", args.speakers)
    variants = variant_names(args.steps, args.rhythm_steps, args.vocoder_steps, args.extra_steps)
    started = time.perf_counter()
    cells: dict[str, list[dict]] = {}
    embeddings: dict[str, list[dict]] = {}
    for voice, rows in groups.items():
        for seed in range(args.seed, args.seed + args.draws):
            cell, embedded = read_draw(model, processor, rows, seed, variants, args)
            cells.setdefault(voice, []).append(cell)
            embeddings.setdefault(voice, []).append(embedded)
            logger.info("%s draw %d: %s", voice, seed, {v: {r: None if cell[v][r] is None else round(cell[v][r], 3)
                                                            for r in READINGS} for v in variants})
    talents = {voice: rows[0]["base_speaker"] for voice, rows in groups.items()}
    return {"checkpoint": args.checkpoint, "method": args.method, "corpus": args.corpus, "shots": args.shots,
            "heldout": args.heldout, "draws": args.draws, "seed": args.seed, "variants": variants, "talents": talents,
            "extra_parameters": args.extra_parameters if args.extra_steps else None,
            "extra_lr": args.extra_lr if args.extra_steps else None,
            "summary": summary(cells, variants),
            "identification": {variant: identification(embeddings, talents, variant)
                               for variant in ["recordings", *variants]},
            "identification_candidates": len(groups),
            "mistaken_for": {variant: mistaken_for(embeddings, talents, variant) for variant in variants},
            "cells": cells,
            "machine": {**hardware_description(), "platform": platform.platform()},
            "library_version": hf_metatts.__version__, "command": args.command,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    """Similarity per voice and variant, with the recordings' ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    voices = [v for v in result["summary"] if v != "all"]
    variants = result["variants"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / (len(variants) + 1)
    for i, variant in enumerate([*variants, "recordings"]):
        values = [result["summary"][v][variant]["similarity"] for v in voices]
        ax.bar(np.arange(len(voices)) + i * width, values, width, label=variant)
    ax.set_xticks(np.arange(len(voices)) + 0.4 - width / 2)
    ax.set_xticklabels([v.split(":")[-1] for v in voices], fontsize=8)
    ax.set_ylabel("speaker similarity")
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    import hf_metatts

    parser = argparse.ArgumentParser(prog="recorded_voices", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=hf_metatts.DEFAULT_CHECKPOINT)
    parser.add_argument("--corpus", default="data/prompts")
    parser.add_argument("--speakers", nargs="+", default=None, help="voices of the corpus's test split (default: all)")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=10, help="held-out sentences per voice and draw")
    parser.add_argument("--draws", type=int, default=3, help="seeded draws of support and held-out prompts per voice")
    parser.add_argument("--method", choices=("maml", "finetune"), default="maml",
                        help="model.adapt's method: maml (the bundle's rule) or finetune (a baseline checkpoint)")
    parser.add_argument("--steps", type=int, nargs="+", default=[5])
    parser.add_argument("--rhythm-steps", type=int, nargs="*", default=[5])
    parser.add_argument("--vocoder-steps", type=int, nargs="*", default=[],
                        help="also read each step count with the vocoder's steps set to these counts")
    parser.add_argument("--extra-steps", type=int, nargs="*", default=[],
                        help="also read these step counts adapting --extra-parameters too (variants extra_N)")
    parser.add_argument("--extra-parameters", nargs="+", default=["decoder.layers.*"],
                        help="the further parameters of the extra_N variants (fnmatch patterns)")
    parser.add_argument("--extra-lr", type=float, default=1e-3, help="the learning rate of the extra_N variants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/recorded_voices.json")
    args = parser.parse_args(argv)
    run_and_write(__file__, argv, args, run, plot)


if __name__ == "__main__":
    main()
