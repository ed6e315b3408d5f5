"""Synthesis speed: real-time factor (RTF = compute seconds / audio seconds) of the MetaTTS base config
with each of its vocoders, side by side in one run with transformers' `VitsModel` (MMS-TTS architecture)
and `SpeechT5ForTextToSpeech` + `SpeechT5HifiGan`, all at their default configurations, random weights,
on the same sentences and the same number of CPU threads. Median over repeated runs.

Durations of random models are arbitrary, so each model is timed per second of audio it produced, and the
MetaTTS duration predictor is set to 4 frames (64 ms) per phoneme symbol, a natural speaking rate.

    python benchmarks/synthesis_speed.py --threads 2 --runs 5 --out benchmarks/results/synthesis_speed.json
"""

import argparse
import json
import logging
import math
import platform
import statistics
import time
from pathlib import Path

import torch

import hf_metatts
from hf_metatts.evaluation.cli import script_command

logger = logging.getLogger("synthesis_speed")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Meta-learning lets a speech model pick up a new voice from a handful of recordings.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colors.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
]
FRAMES_PER_SYMBOL = 4.0


def metatts_runner(vocoder_type: str, checkpoint: str | None = None):
    """Random default config (durations fixed at FRAMES_PER_SYMBOL), or a trained ``checkpoint`` as it is
    (its own durations; ``vocoder_type`` "griffin_lim" swaps its vocoder for Griffin-Lim)."""
    if checkpoint:
        model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(checkpoint).eval()
        if vocoder_type != model.config.vocoder_type:
            from hf_metatts.modeling_vocoder import GriffinLimVocoder

            model.vocoder = GriffinLimVocoder(model.config)
        config = model.config
    else:
        config = hf_metatts.MetaTTSConfig(vocoder_type=vocoder_type)
        model = hf_metatts.MetaTTSForTextToSpeech(config).eval()
        with torch.no_grad():
            model.duration_predictor.head.weight.zero_()
            model.duration_predictor.head.bias.fill_(math.log1p(FRAMES_PER_SYMBOL))
    tokenizer = hf_metatts.MetaTTSTokenizer()
    inputs = [tokenizer(s, return_tensors="pt") for s in SENTENCES]

    def run():
        samples = 0
        for encoded in inputs:
            samples += model(**encoded).waveform.shape[-1]
        return samples

    return run, sum(p.numel() for p in model.parameters()), config.sampling_rate


def vits_runner():
    from transformers import VitsConfig, VitsModel

    config = VitsConfig()
    model = VitsModel(config).eval()
    inputs = [torch.tensor([[ord(c) % config.vocab_size for c in s]]) for s in SENTENCES]

    def run():
        samples = 0
        with torch.no_grad():
            for ids in inputs:
                samples += model(input_ids=ids).waveform.shape[-1]
        return samples

    return run, sum(p.numel() for p in model.parameters()), config.sampling_rate


def speecht5_runner():
    from transformers import SpeechT5Config, SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5HifiGanConfig

    config = SpeechT5Config()
    model = SpeechT5ForTextToSpeech(config).eval()
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig()).eval()
    inputs = [torch.tensor([[ord(c) % config.vocab_size for c in s]]) for s in SENTENCES]
    speaker = torch.zeros(1, config.speaker_embedding_dim)

    def run():
        samples = 0
        with torch.no_grad():
            for ids in inputs:
                # a random decoder never predicts its stop token: fix the length at 4 frames per character
                speech = model.generate_speech(ids, speaker, vocoder=vocoder, minlenratio=FRAMES_PER_SYMBOL,
                                               maxlenratio=FRAMES_PER_SYMBOL)
                samples += speech.shape[-1]
        return samples

    params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in vocoder.parameters())
    return run, params, 16000


def measure(name, factory, runs: int) -> dict:
    run, params, rate = factory()
    run()  # warm-up
    rtfs, audio_seconds = [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        samples = run()
        elapsed = time.perf_counter() - start
        audio_seconds = samples / rate
        rtfs.append(elapsed / audio_seconds)
    result = {"model": name, "parameters": params, "audio_seconds_per_run": round(audio_seconds, 3),
              "rtf_median": statistics.median(rtfs), "rtf_runs": rtfs}
    logger.info("%-28s RTF %.4f (median of %d)", name, result["rtf_median"], runs)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole side-by-side comparison")
    parser.add_argument("--model", default=None,
                        help="time this trained checkpoint (e.g. the bundled one) instead of random default configs")
    parser.add_argument("--out", default="benchmarks/results/synthesis_speed.json")
    parser.add_argument("--plot", default=None, help="bar plot (default: --out with .png)")
    args = parser.parse_args(argv)
    args.plot = args.plot or str(Path(args.out).with_suffix(".png"))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    candidates = {
        "metatts (istft vocoder)": lambda: metatts_runner("istft", args.model),
        "metatts (griffin-lim)": lambda: metatts_runner("griffin_lim", args.model),
        "vits (mms-tts)": vits_runner,
        "speecht5 + hifigan": speecht5_runner,
    }
    rounds = []
    for _ in range(args.rounds):
        rounds.append({name: measure(name, factory, args.runs) for name, factory in candidates.items()})
    results = {name: rounds[-1][name] for name in candidates}
    for name in candidates:
        results[name]["rtf_median"] = statistics.median(r[name]["rtf_median"] for r in rounds)
    reference = results["metatts (istft vocoder)"]["rtf_median"]
    summary = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads,
                    "torch": torch.__version__},
        "command": script_command(__file__, argv),
        "checkpoint": args.model or "random default configs",
        "runs": args.runs,
        "rounds": args.rounds,
        "results": results,
        "speedup_vs_vits": {name: results["vits (mms-tts)"]["rtf_median"] / r["rtf_median"]
                            for name, r in results.items()},
        "speedup_vs_speecht5": {name: results["speecht5 + hifigan"]["rtf_median"] / r["rtf_median"]
                                for name, r in results.items()},
        "metatts_istft_rtf": reference,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(results)
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.barh(names, [results[n]["rtf_median"] for n in names])
        ax.set_xscale("log")
        ax.axvline(0.05, linestyle="--", color="grey", label="RTF 0.05 target")
        ax.set_xlabel(f"real-time factor (lower is faster), {args.threads} CPU threads")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    except ImportError:
        logger.warning("matplotlib is not installed: no plot written")
    logger.info("wrote %s", args.out)
    return summary


if __name__ == "__main__":
    main()
