"""Low-resource languages with the bundled checkpoint: what do five clips of a language it never heard give?

The checkpoint was meta-trained with speakers as tasks on English, Czech, Italian, Russian, German and Spanish (the
languages of the default corpus's sentences). A user with five clips of a speaker of another language gets a voice
from ``model.adapt(..., language=code)``: the tokenizer phonemizes any espeak-ng language, so the model reads the
new language's phonemes with what it learned of the others. This script measures that voice against the same
measures for languages the checkpoint trained on, spoken by the same espeak voice variants, so the language is the
one difference.

Two groups of speakers, none of them a training speaker:

- ``unseen``: the test split of a corpus built with the ``unseen_languages`` preset (Polish, Bulgarian and Irish,
  each spoken by the espeak variants adam, m3, f2, m5 and m7)::

      hf-metatts build-corpus --preset unseen_languages --out data/unseen-languages

- ``seen``: the default corpus's non-English espeak test speakers (cs+adam, de+m3, es+f2, it+m5, ru+m7), whose
  languages the checkpoint trained on with other variants.

Each speaker's clips are shuffled with ``--seed``; ``--shots`` of them are the support clips, ``--heldout`` others
the sentences the voice reads. The voice is ``model.adapt``'s (the product's path: clip checks, the aligner's
timings, the vocoder's steps) at its start (``method="zero_shot"``, the support encoder alone), after each count
of ``--steps``, after each count of ``--matched-steps`` with prosody matching (``match_prosody=True``: the
clips' rate, pitch level and range refitted after the steps, `hf_metatts.voice_prosody`), and after each count of
``--rhythm-steps`` with rhythm matching (``match_rhythm=True``: the duration predictor's output layer refitted to
the clips' token durations). Per held-out sentence, against the speaker's own recording of it:

- ``similarity``: the speaker encoder's cosine similarity of the voice's audio to the recording;
- ``mcd``: mel-cepstral distortion (dB, DTW-aligned; `hf_metatts.evaluation.mcd`);
- ``duration_error``: frames per token between the durations the voice speaks and the recording's phone timings
  (the synthesiser's), token by token (the rhythm of the language);
- ``rate_gap``: |log| of the ratio of the voice's total frames to the recording's (the speaking rate);
- ``pitch_level_gap`` and ``pitch_spread_gap``: how far the mean and the standard deviation of the vowels' pitch
  (semitones; `benchmarks.style_adaptation`) are from the recording's (semitones, and |log ratio|).

It also counts, per language, the share of the held-out sentences' phoneme tokens whose symbol never occurs in the
phonemes of the training corpus (``--training-corpus``): those tokens reach the model with untrained embeddings.

Intelligibility is not measured: the only recogniser that runs offline here (PocketSphinx) is English.

    python benchmarks/language_adaptation.py --out benchmarks/results/language_adaptation.json
"""

import argparse
import logging
import math
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.style_adaptation import (  # noqa: E402
    MEASURES,
    add_reading_arguments,
    mean_prosody,
    recording_tokens,
    run_and_write,
    sentence_prosody,
    variant_names,
    voice_reading,
    vowel_mask,
)

logger = logging.getLogger("language_adaptation")
#: The default corpus's test speakers that are espeak voices of a language other than English.
SEEN_LANGUAGE_SPEAKERS = ("espeak:cs+adam", "espeak:de+m3", "espeak:es+f2", "espeak:it+m5", "espeak:ru+m7")
READINGS = ("similarity", "mcd", "duration_error", "rate_gap", "pitch_level_gap", "pitch_spread_gap")
#: Whether a higher reading is better (for the plot's titles).
HIGHER_IS_BETTER = {"similarity": True}


def speaker_rows(corpus: str, split: str, speakers: list[str] | None) -> dict[str, list[dict]]:
    """``speaker -> rows`` (audio undecoded) of ``split`` of the corpus at ``corpus``: the given ``speakers``, or
    every speaker of the split when ``speakers`` is None."""
    from datasets import Audio, load_from_disk

    rows = load_from_disk(corpus)[split].cast_column("audio", Audio(decode=False))
    wanted = None if speakers is None else set(speakers)
    groups: dict[str, list[dict]] = {}
    for index, speaker in enumerate(rows["speaker_id"]):
        if wanted is None or speaker in wanted:
            groups.setdefault(speaker, []).append(rows[index])
    missing = sorted((wanted or set()) - set(groups))
    if missing:
        raise SystemExit(f"error: {corpus} has no rows of {missing} in its {split!r} split")
    return groups


def training_symbols(corpus: str) -> Counter:
    """How often each phoneme symbol occurs in the ``train`` split's ``phonemes`` of the corpus at ``corpus``."""
    from datasets import load_from_disk

    counts: Counter = Counter()
    for phonemes in load_from_disk(corpus)["train"]["phonemes"]:
        counts.update(phonemes)
    return counts


def unseen_symbol_share(phonemes: list[str], seen: Counter) -> tuple[float, list[str]]:
    """The share of the symbols of ``phonemes`` that never occur in ``seen``, and those symbols (most frequent
    first)."""
    counts: Counter = Counter()
    for text in phonemes:
        counts.update(text)
    total = sum(counts.values())
    unseen = Counter({symbol: n for symbol, n in counts.items() if symbol not in seen})
    return (sum(unseen.values()) / total if total else float("nan")), [symbol for symbol, _ in unseen.most_common()]


def token_duration_error(voice_durations: np.ndarray, recording_durations: np.ndarray) -> tuple[float, float]:
    """Frames per token between two duration vectors ``(N,)`` of the same tokens, and the |log| of the ratio of
    their totals; NaN when the token counts differ."""
    if len(voice_durations) != len(recording_durations) or not len(voice_durations):
        return float("nan"), float("nan")
    error = float(np.abs(voice_durations - recording_durations).mean())
    return error, abs(math.log(max(voice_durations.sum(), 1.0) / max(recording_durations.sum(), 1.0)))


def read_speaker(model, processor, rows: list[dict], args) -> dict:
    """One speaker's readings: the recordings' prosody, then each voice's mean readings over the held-out
    sentences."""
    from hf_metatts.data import decode_audio
    from hf_metatts.evaluation.mcd import mel_cepstral_distortion
    from hf_metatts.evaluation.speaker import embed_utterances

    rate = model.config.sampling_rate
    rows = list(rows)
    random.Random(f"{args.seed}:{rows[0]['speaker_id']}").shuffle(rows)
    if len(rows) < args.shots + args.heldout:
        raise SystemExit(f"error: {rows[0]['speaker_id']} has {len(rows)} clips, fewer than shots + heldout")
    support, heldout = rows[: args.shots], rows[args.shots: args.shots + args.heldout]
    language = support[0]["language"]
    clips = [(decode_audio(row["audio"], rate), row["text"]) for row in support]
    real = [decode_audio(row["audio"], rate) for row in heldout]
    real_embeddings = embed_utterances(real, rate)
    recorded = [recording_tokens(row, processor, model) for row in heldout]
    recorded_prosody = [sentence_prosody(durations, semitones, vowel_mask(processor.tokenizer, ids))
                        for ids, durations, semitones in recorded]
    cell = {"language": language, "recordings": mean_prosody(recorded_prosody)}
    for variant in variant_names(args.steps, args.matched_steps, args.rhythm_steps):
        torch.manual_seed(args.seed)
        if variant == "start":
            voice = model.adapt(clips, method="zero_shot", sampling_rate=rate, language=language, progress=False)
        else:
            voice = model.adapt(clips, steps=int(variant.split("_")[1]), sampling_rate=rate, language=language,
                                progress=False, match_prosody=variant.endswith("_matched"),
                                match_rhythm=variant.endswith("_rhythm"))
        readings = [voice_reading(model, processor.tokenizer, voice, row["text"], row["language"]) for row in heldout]
        waves = [reading.waveform for reading in readings]
        errors = [token_duration_error(reading.durations, durations) if reading.input_ids == ids
                  else (float("nan"), float("nan")) for reading, (ids, durations, _) in zip(readings, recorded)]
        prosody = [sentence_prosody(reading.durations, reading.semitones,
                                    vowel_mask(processor.tokenizer, reading.input_ids))
                   for reading in readings if reading.input_ids]
        voiced = mean_prosody(prosody)
        cell[variant] = {
            "similarity": float(np.mean(np.sum(embed_utterances(waves, rate) * real_embeddings, axis=1))),
            "mcd": float(np.mean(mel_cepstral_distortion(real, waves, rate))),
            "duration_error": float(np.nanmean([error for error, _ in errors])),
            "rate_gap": float(np.nanmean([gap for _, gap in errors])),
            "pitch_level_gap": abs(voiced["f0_mean_semitones"] - cell["recordings"]["f0_mean_semitones"]),
            "pitch_spread_gap": abs(math.log(voiced["f0_spread_semitones"]
                                             / cell["recordings"]["f0_spread_semitones"])),
            **{f"voice_{measure}": voiced[measure] for measure in MEASURES},
            "sentences_timed": int(sum(np.isfinite(error) for error, _ in errors)),
        }
    cell["support_ids"] = [row["id"] for row in support]
    cell["heldout_ids"] = [row["id"] for row in heldout]
    return cell


def summary(cells: dict, groups: dict[str, list[str]], variants: list[str]) -> dict:
    """group (``unseen``, ``seen`` and each unseen language) -> variant -> reading -> mean over its speakers; and,
    per group, the change the steps make to each reading (``steps_N`` minus ``start``)."""
    table: dict = {}
    for group, speakers in groups.items():
        row = {variant: {reading: float(np.mean([cells[s][variant][reading] for s in speakers]))
                         for reading in READINGS} for variant in variants}
        row["change"] = {variant: {reading: row[variant][reading] - row["start"][reading] for reading in READINGS}
                         for variant in variants if variant != "start"}
        row["speakers"] = len(speakers)
        table[group] = row
    return table


def speaker_groups(cells: dict, unseen: list[str], seen: list[str]) -> dict[str, list[str]]:
    """``unseen``, ``seen`` and one group per unseen language (``unseen:pl``, ...), each a list of speakers."""
    groups = {"unseen": unseen, "seen": seen}
    for speaker in unseen:
        groups.setdefault(f"unseen:{cells[speaker]['language']}", []).append(speaker)
    return groups


def run(args) -> dict:
    import hf_metatts
    from hf_metatts.training.hardware import hardware_description

    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint).eval()
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(args.checkpoint)
    unseen_rows = speaker_rows(args.unseen_corpus, "test", args.unseen_speakers)
    seen_rows = speaker_rows(args.seen_corpus, "test", args.seen_speakers)
    trained = training_symbols(args.training_corpus)
    variants = variant_names(args.steps, args.matched_steps, args.rhythm_steps)
    started = time.perf_counter()
    cells: dict[str, dict] = {}
    languages: dict[str, list[str]] = {}  # language -> the phonemes of its speakers' held-out sentences
    for speaker, rows in {**unseen_rows, **seen_rows}.items():
        cell = cells[speaker] = read_speaker(model, processor, rows, args)
        logger.info("%s (%s): %s", speaker, cell["language"],
                    {v: {r: round(cell[v][r], 3) for r in READINGS} for v in variants})
        heldout = set(cell["heldout_ids"])
        languages.setdefault(cell["language"], []).extend(row["phonemes"] for row in rows if row["id"] in heldout)
    symbols = {language: dict(zip(("share", "symbols"), unseen_symbol_share(phonemes, trained)))
               for language, phonemes in languages.items()}
    groups = speaker_groups(cells, list(unseen_rows), list(seen_rows))
    return {"checkpoint": args.checkpoint, "unseen_corpus": args.unseen_corpus, "seen_corpus": args.seen_corpus,
            "training_corpus": args.training_corpus, "shots": args.shots, "heldout": args.heldout,
            "steps": args.steps, "matched_steps": args.matched_steps, "rhythm_steps": args.rhythm_steps,
            "seed": args.seed, "groups": groups,
            "cells": cells,
            "unseen_symbols": symbols, "summary": summary(cells, groups, variants),
            "machine": {**hardware_description(), "platform": platform.platform()},
            "library_version": hf_metatts.__version__, "command": args.command,
            "seconds": round(time.perf_counter() - started, 1)}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result["summary"]
    groups = [group for group in table if group != "unseen"]
    variants = [key for key in table["seen"] if key not in ("change", "speakers")]
    shown = ("similarity", "mcd", "duration_error", "pitch_spread_gap")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.0 * len(shown), 3.6), squeeze=False)
    width = 0.8 / len(variants)
    for ax, reading in zip(axes[0], shown):
        values = [[table[g][variant][reading] for g in groups] for variant in variants]
        for index, (variant, row) in enumerate(zip(variants, values)):
            ax.bar(np.arange(len(groups)) + index * width, row, width, label=variant)
        if reading in ("similarity", "mcd"):  # far from 0: the differences would not show from a zero baseline
            low, high = float(np.min(values)), float(np.max(values))
            ax.set_ylim(low - 0.3 * (high - low), high + 0.1 * (high - low))
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=8)
        better = "higher" if HIGHER_IS_BETTER.get(reading) else "lower"
        ax.set_title(f"{reading} ({better} is better)", fontsize=9)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(variants), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    import hf_metatts

    parser = argparse.ArgumentParser(prog="language_adaptation", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=hf_metatts.DEFAULT_CHECKPOINT)
    parser.add_argument("--unseen-corpus", default="data/unseen-languages")
    parser.add_argument("--unseen-speakers", nargs="+", default=None,
                        help="speakers of the unseen corpus's test split (default: all of them)")
    parser.add_argument("--seen-corpus", default="data/voices-augmented")
    parser.add_argument("--seen-speakers", nargs="+", default=list(SEEN_LANGUAGE_SPEAKERS))
    parser.add_argument("--training-corpus", default="data/voices-augmented",
                        help="the corpus the checkpoint trained on (its train split's phoneme symbols)")
    add_reading_arguments(parser, "held-out sentences per speaker")
    parser.add_argument("--out", default="benchmarks/results/language_adaptation.json")
    args = parser.parse_args(argv)
    run_and_write(__file__, argv, args, run, plot)


if __name__ == "__main__":
    main()
