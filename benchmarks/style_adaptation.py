"""Expressive speech with the bundled checkpoint: how much of a speaking style do five clips carry into a voice?

The checkpoint was meta-trained with speakers as tasks, on neutral speech only. A user who records five clips in a
style (faster and livelier, or flat) gets a voice from ``model.adapt``; this script measures how much of the style's
rate and intonation that voice keeps, against the same speaker's voice adapted on neutral clips.

For each speaker and condition (``neutral`` and each style of ``--styles``) it adapts the checkpoint with
``model.adapt`` on ``--shots`` clips of that speaker in that condition (the product's path: clip checks, the
aligner's timings, the vocoder's steps), as the start voice (``method="zero_shot"``: the support encoder alone) and
after each count of ``--steps``, after each count of ``--matched-steps`` with prosody matching
(``match_prosody=True``, `hf_metatts.voice_prosody`) and after each count of ``--rhythm-steps`` with rhythm matching
(``match_rhythm=True``), then reads the condition's ``--heldout`` other sentences.
Per sentence it takes, on the vowel tokens (IPA vowel symbols):

- ``vowel_frames``: mean frames per vowel (the rate; for the recordings from the synthesiser's phone timings,
  for a voice from its predicted durations);
- ``f0_mean_semitones`` and ``f0_spread_semitones``: the mean and the standard deviation over the sentence's vowels
  of their pitch (for the recordings the WORLD log-F0 of each vowel's voiced frames, the quantity the model is
  trained to predict; for a voice its pitch predictor's output), in semitones;

and the recogniser's WER of the audio (through the checkpoint's vocoder, adapted by ``model.adapt``) and of the
recordings, and the speaker similarity of the audio to the condition's recordings.

A voice's ``gap`` in a condition is how far its measure is from the speaker's recordings in that condition (the
absolute log ratio for the rate and the spread, semitones for the level), a mean over speakers: it needs no
assumption that the synthesiser rendered a style the same way for every voice (flite's ``rms`` ignores the pitch
range control, for one). A style's effect is its difference to neutral of the same speaker (log ratio for the rate
and the spread, semitones for the level): for the recordings (what the synthesiser did) and for each voice (the
voice adapted on the style against the voice adapted on neutral clips, each reading its condition's sentences as
the recordings do).
``carried`` is the voices' mean effect over speakers divided by the recordings' (1: all of the style, 0: none).

Styled clips come from a corpus built with ``--task-column style`` (flite and espeak render the styles with rate,
pitch and pitch-range controls; docs/data.md), neutral clips of the same speakers from a speaker corpus::

    hf-metatts build-corpus --preset default --task-column style --out data/by-style
    python benchmarks/style_adaptation.py --style-corpus data/by-style --neutral-corpus data/voices-augmented \\
        --out benchmarks/results/style_adaptation.json
"""

import argparse
import logging
import math
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hf_metatts.voice_prosody import SEMITONES_PER_LOG

logger = logging.getLogger("style_adaptation")
#: IPA vowel symbols (the tokenizer gives one token per symbol; length marks and stress are tokens of their own).
VOWELS = frozenset("aeiouyæɑɒɐəɚɛɜɝɞɪʏʊʌɔøœɶɯɤɘɵɨʉᵻ")
#: The held-out speakers of the default corpus that the style corpus renders in every test style, and English
#: espeak voices whose neutral speech the checkpoint trained on (a second group: new styles of known voices).
DEFAULT_SPEAKERS = ("flite:awb", "flite:rms", "flite:slt")
MEASURES = ("vowel_frames", "f0_mean_semitones", "f0_spread_semitones")
#: How a measure's effect is taken: the log of the ratio (rate, spread) or the difference (level, in semitones).
LOG_RATIO = {"vowel_frames": True, "f0_mean_semitones": False, "f0_spread_semitones": True}


@dataclass
class SentenceProsody:
    """The vowel measures of one sentence (see the module docstring); NaN where it has too few voiced vowels."""

    vowel_frames: float
    f0_mean_semitones: float
    f0_spread_semitones: float


def vowel_mask(tokenizer, input_ids: list[int]) -> np.ndarray:
    """``(N,)`` bool: which tokens are IPA vowels."""
    return np.array([token in VOWELS for token in tokenizer.convert_ids_to_tokens(input_ids)], dtype=bool)


def sentence_prosody(durations: np.ndarray, semitones: np.ndarray, vowels: np.ndarray) -> SentenceProsody:
    """Measures of one sentence from its tokens' ``durations`` ``(N,)`` (frames), pitch ``semitones`` ``(N,)``
    (NaN for a token with no voiced frame) and ``vowels`` ``(N,)`` bool."""
    voiced = vowels & np.isfinite(semitones)
    frames = float(durations[vowels].mean()) if vowels.any() else float("nan")
    if voiced.sum() < 2:
        return SentenceProsody(frames, float("nan"), float("nan"))
    return SentenceProsody(frames, float(semitones[voiced].mean()), float(semitones[voiced].std()))


def recording_tokens(row: dict, processor, model) -> tuple[list[int], np.ndarray, np.ndarray]:
    """A recording's tokens ``(N,)``, their frames ``(N,)`` from the synthesiser's phone timings (the aligner's where
    they do not match the tokens) and each token's mean log-F0 over its voiced frames in semitones ``(N,)`` (NaN for
    a token with no voiced frame)."""
    from hf_metatts.data_collator import prepare_example

    example = prepare_example(row, processor)
    ids, pitch = example["input_ids"], np.asarray(example["pitch"], dtype=np.float64)
    durations = list(example.get("durations") or [])
    if not durations:
        labels = torch.as_tensor(np.asarray(example["labels"]), dtype=torch.float32).unsqueeze(0)
        durations = model.compute_durations(torch.tensor([ids]), labels=labels)[0].tolist()
    bounds = np.concatenate([[0], np.cumsum(durations)]).astype(int)
    semitones = np.full(len(ids), np.nan)
    for token in range(len(ids)):
        frames = pitch[bounds[token]: bounds[token + 1]]
        voiced = frames[frames > 0]
        if len(voiced):
            semitones[token] = voiced.mean() * SEMITONES_PER_LOG
    return list(ids), np.asarray(durations, dtype=np.float64), semitones


def recording_prosody(row: dict, processor, model) -> SentenceProsody:
    """A recording's measures (:func:`recording_tokens` on its vowels)."""
    ids, durations, semitones = recording_tokens(row, processor, model)
    return sentence_prosody(durations, semitones, vowel_mask(processor.tokenizer, ids))


@dataclass
class VoiceReading:
    """``voice`` reading one text: its audio ``(samples,)``, its tokens ``(N,)``, the frames it speaks each token
    ``(N,)`` and its pitch predictor's output per token in semitones ``(N,)``; the arrays are empty for a text read
    in several chunks (not measured)."""

    waveform: np.ndarray
    input_ids: list[int]
    durations: np.ndarray
    semitones: np.ndarray


def voice_reading(model, tokenizer, voice, text: str, language: str) -> VoiceReading:
    """``voice`` reading ``text`` in ``language`` (see `VoiceReading`)."""
    config = model.config
    inputs = tokenizer(text, return_tensors="pt", language=language)
    outputs: list[torch.Tensor] = []
    hook = model.pitch_predictor.register_forward_hook(lambda module, args, output, store=outputs: store.append(output))
    try:
        with torch.no_grad():
            result = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], voice=voice)
    finally:
        hook.remove()
    ids = inputs["input_ids"][0].tolist()
    pitch = torch.cat([output[0] for output in outputs]).double().numpy()
    durations = result.durations[0].double().numpy()
    waveform = result.waveform[0].float().numpy()
    if len(pitch) != len(ids) or len(durations) != len(ids):
        return VoiceReading(waveform, [], np.empty(0), np.empty(0))
    return VoiceReading(waveform, ids, durations, (pitch * config.pitch_std + config.pitch_mean) * SEMITONES_PER_LOG)


def voice_readings(model, tokenizer, voice, texts: list[str], languages: list[str]
                   ) -> tuple[list[np.ndarray], list[SentenceProsody]]:
    """``voice`` reading ``texts``: its audio ``(samples,)`` per text and the measures of what it predicts (the
    durations it speaks and its pitch predictor's output per token, in semitones)."""
    waves, readings = [], []
    for text, language in zip(texts, languages):
        reading = voice_reading(model, tokenizer, voice, text, language)
        if not reading.input_ids:  # a text read in several chunks: not measured
            readings.append(SentenceProsody(float("nan"), float("nan"), float("nan")))
        else:
            readings.append(sentence_prosody(reading.durations, reading.semitones,
                                             vowel_mask(tokenizer, reading.input_ids)))
        waves.append(reading.waveform)
    return waves, readings


def condition_rows(style_corpus: str, neutral_corpus: str, speakers: list[str], styles: list[str]
                   ) -> dict[tuple[str, str], list[dict]]:
    """``(speaker, condition) -> rows`` (audio undecoded): each style from the style corpus's test split, ``neutral``
    from any split of the neutral corpus (its rows of the speaker in the neutral style)."""
    from datasets import Audio, load_from_disk

    wanted = set(speakers)
    groups: dict[tuple[str, str], list[dict]] = {}
    styled = load_from_disk(style_corpus)["test"].cast_column("audio", Audio(decode=False))
    for row in styled:
        if row["speaker_id"] in wanted and row["style"] in styles:
            groups.setdefault((row["speaker_id"], row["style"]), []).append(row)
    for split in load_from_disk(neutral_corpus).values():
        split = split.cast_column("audio", Audio(decode=False))
        for index in [i for i, s in enumerate(split["speaker_id"]) if s in wanted]:
            row = split[index]
            if row.get("style", "neutral") == "neutral":
                groups.setdefault((row["speaker_id"], "neutral"), []).append(row)
    missing = [(s, c) for s in speakers for c in ("neutral", *styles) if (s, c) not in groups]
    if missing:
        raise SystemExit(f"error: no rows for {missing}: build the style corpus with --task-column style and give "
                         "a neutral corpus that holds these speakers")
    return groups


def effect(measure: str, styled: float, neutral: float) -> float:
    """A style's effect on ``measure``: log ratio or difference to neutral."""
    return math.log(styled / neutral) if LOG_RATIO[measure] else styled - neutral


def mean_prosody(readings: list[SentenceProsody]) -> dict[str, float]:
    return {m: float(np.nanmean([getattr(r, m) for r in readings])) for m in MEASURES}


def run(args) -> dict:
    import hf_metatts
    from hf_metatts.data import decode_audio
    from hf_metatts.evaluation.asr import asr_word_error_rate
    from hf_metatts.evaluation.speaker import embed_utterances
    from hf_metatts.training.hardware import hardware_description

    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint).eval()
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(args.checkpoint)
    rate = model.config.sampling_rate
    groups = condition_rows(args.style_corpus, args.neutral_corpus, args.speakers, args.styles)
    variants = variant_names(args.steps, args.matched_steps, args.rhythm_steps)
    cells: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    for speaker in args.speakers:
        for condition in ("neutral", *args.styles):
            rows = list(groups[(speaker, condition)])
            random.Random(f"{args.seed}:{speaker}:{condition}").shuffle(rows)
            if len(rows) < args.shots + args.heldout:
                raise SystemExit(f"error: {speaker} / {condition} has {len(rows)} clips, fewer than shots + heldout")
            support, heldout = rows[: args.shots], rows[args.shots: args.shots + args.heldout]
            clips = [(decode_audio(row["audio"], rate), row["text"]) for row in support]
            language = support[0].get("language") or "en-us"
            texts = [row["text"] for row in heldout]
            languages = [row.get("language") or language for row in heldout]
            real = [decode_audio(row["audio"], rate) for row in heldout]
            real_embeddings = embed_utterances(real, rate)
            cell = {"recordings": {**mean_prosody([recording_prosody(row, processor, model) for row in heldout]),
                                   "wer": asr_word_error_rate(real, texts, rate).wer}}
            for variant in variants:
                torch.manual_seed(args.seed)
                if variant == "start":
                    voice = model.adapt(clips, method="zero_shot", sampling_rate=rate, language=language,
                                        progress=False)
                else:
                    voice = model.adapt(clips, steps=int(variant.split("_")[1]), sampling_rate=rate,
                                        language=language, progress=False, match_prosody=variant.endswith("_matched"),
                                        match_rhythm=variant.endswith("_rhythm"))
                waves, readings = voice_readings(model, processor.tokenizer, voice, texts, languages)
                similarity = float(np.mean(np.sum(embed_utterances(waves, rate) * real_embeddings, axis=1)))
                cell[variant] = {**mean_prosody(readings), "wer": asr_word_error_rate(waves, texts, rate).wer,
                                 "similarity": similarity}
            cells.setdefault(speaker, {})[condition] = cell
            logger.info("%s / %s: %s", speaker, condition,
                        {k: {m: round(v[m], 2) for m in MEASURES} for k, v in cell.items()})
    return {"checkpoint": args.checkpoint, "speakers": args.speakers, "styles": args.styles, "shots": args.shots,
            "heldout": args.heldout, "steps": args.steps, "matched_steps": args.matched_steps,
            "rhythm_steps": args.rhythm_steps, "seed": args.seed,
            "cells": cells,
            "effects": style_effects(cells, args.styles, ["recordings", *variants]),
            "summary": summary(cells, args.styles, variants),
            "machine": {**hardware_description(), "platform": platform.platform()},
            "library_version": hf_metatts.__version__, "command": args.command,
            "seconds": round(time.perf_counter() - started, 1)}


def variant_names(steps: list[int], matched_steps: list[int], rhythm_steps=()) -> list[str]:
    """The voices read: ``start`` (the support encoder's), ``steps_N`` after N steps, ``steps_N_rhythm`` after N steps
    and rhythm matching (``model.adapt(..., match_rhythm=True)``), ``steps_N_matched`` after N
    steps and prosody matching (``model.adapt(..., match_prosody=True)``)."""
    return ["start", *[f"steps_{n}" for n in steps], *[f"steps_{n}_matched" for n in matched_steps],
            *[f"steps_{n}_rhythm" for n in rhythm_steps]]


def style_effects(cells: dict, styles: list[str], sources: list[str]) -> dict:
    """style -> source -> measure -> {speaker: effect}, each voice's effect against its own neutral counterpart."""
    effects: dict = {}
    for style in styles:
        for source in sources:
            for measure in MEASURES:
                effects.setdefault(style, {}).setdefault(source, {})[measure] = {
                    speaker: effect(measure, cells[speaker][style][source][measure],
                                    cells[speaker]["neutral"][source][measure]) for speaker in cells}
    return effects


def summary(cells: dict, styles: list[str], variants: list[str]) -> dict:
    """style -> measure -> the recordings' and each voice's mean effect over speakers, and the fraction carried;
    ``gap``: condition -> measure -> voice -> the mean over speakers of how far the voice is from the speaker's
    recordings in that condition (the absolute log ratio for the rate and the spread, semitones for the level);
    plus the WER and similarity of each source in each condition (means over speakers)."""
    effects = style_effects(cells, styles, ["recordings", *variants])
    table: dict = {}
    for style in styles:
        for measure in MEASURES:
            reference = float(np.mean(list(effects[style]["recordings"][measure].values())))
            row = {"recordings": reference}
            for variant in variants:
                mean = float(np.mean(list(effects[style][variant][measure].values())))
                row[variant] = mean
                row[f"{variant}_carried"] = mean / reference if abs(reference) > 1e-9 else float("nan")
            table.setdefault(style, {})[measure] = row
    conditions = ["neutral", *styles]
    table["gap"] = {c: {m: {v: float(np.mean([abs(effect(m, cells[sp][c][v][m], cells[sp][c]["recordings"][m]))
                                              for sp in cells])) for v in variants} for m in MEASURES}
                    for c in conditions}
    table["wer"] = {c: {s: float(np.mean([cells[sp][c][s]["wer"] for sp in cells])) for s in ["recordings", *variants]}
                    for c in conditions}
    table["similarity"] = {c: {s: float(np.mean([cells[sp][c][s]["similarity"] for sp in cells])) for s in variants}
                           for c in conditions}
    return table


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles, summary_table = result["styles"], result["summary"]
    sources = ["recordings", *variant_names(result["steps"], result["matched_steps"], result.get("rhythm_steps", []))]
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 3.6), squeeze=False)
    width = 0.8 / len(sources)
    for ax, measure in zip(axes[0], MEASURES):
        for index, source in enumerate(sources):
            values = [summary_table[style][measure][source] for style in styles]
            ax.bar(np.arange(len(styles)) + index * width, values, width, label=source)
        ax.set_xticks(np.arange(len(styles)) + 0.4 - width / 2, styles)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title(f"{measure}: effect against neutral" + (" (log ratio)" if LOG_RATIO[measure] else " (st)"),
                     fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_reading_arguments(parser: argparse.ArgumentParser, heldout_help: str) -> None:
    """The arguments of a script that adapts voices with ``model.adapt`` and reads them: ``--shots``,
    ``--heldout``, ``--steps``, ``--matched-steps``, ``--seed`` and ``--threads``."""
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--heldout", type=int, default=7, help=heldout_help)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 20], help="step counts after the start voice")
    parser.add_argument("--matched-steps", type=int, nargs="*", default=[5],
                        help="step counts read again with prosody matching")
    parser.add_argument("--rhythm-steps", type=int, nargs="*", default=[5],
                        help="step counts read again with rhythm matching")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)


def run_and_write(script: str, argv, args, run_script, plot_result) -> None:
    """``run_script(args)`` with the library's logging quieted and ``args.threads`` threads; its result is written
    to ``args.out`` with the command that made it (``script``'s, ``argv``), and ``plot_result`` draws it beside."""
    import os

    from hf_metatts.evaluation.cli import script_command, write_json_atomic

    args.command = script_command(script, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("hf_metatts").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    result = run_script(args)
    write_json_atomic(args.out, result)
    plot_result(result, os.path.splitext(args.out)[0] + ".png")
    logging.getLogger(Path(script).stem).info("wrote %s", args.out)


def main(argv=None) -> None:
    import hf_metatts

    parser = argparse.ArgumentParser(prog="style_adaptation", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=hf_metatts.DEFAULT_CHECKPOINT)
    parser.add_argument("--style-corpus", default="data/by-style")
    parser.add_argument("--neutral-corpus", default="data/voices-augmented")
    parser.add_argument("--speakers", nargs="+", default=list(DEFAULT_SPEAKERS))
    parser.add_argument("--styles", nargs="+", default=["excited", "monotone"])
    add_reading_arguments(parser, "held-out sentences per speaker and condition")
    parser.add_argument("--out", default="benchmarks/results/style_adaptation.json")
    args = parser.parse_args(argv)
    run_and_write(__file__, argv, args, run, plot)


if __name__ == "__main__":
    main()
