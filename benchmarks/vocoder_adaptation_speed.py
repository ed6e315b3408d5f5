"""Wall time of the vocoder's voice adaptation alone (`hf_metatts.voice_vocoder.adapt_vocoder`), several settings
timed alternately in one process, so that a busy machine slows each of them alike.

Each ``--variant NAME:SETTING=VALUE,...`` is the checkpoint's own vocoder adaptation (``VocoderAdaptation.from_config``)
with those settings replaced (``voice_adaptation_speed.py --vocoder`` names them: steps, learning_rate, batch_size,
segment_frames, parameters joined by ``+``, adapt_phase, clip_context). The support pairs are ``--clips`` random
log-mels of ``--frames`` frames and noise of the same length: the time does not depend on what they hold. Writes the
median of each variant, the per-round ratio of each variant to the first and the median of those ratios::

    python benchmarks/vocoder_adaptation_speed.py --checkpoint hf_metatts/checkpoints/default \\
        --variant segments:clip_context=false whole_clips:clip_context=true --rounds 12 \\
        --out benchmarks/results/vocoder_adaptation_speed_clip_context.json
"""

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.voice_adaptation_speed import vocoder_settings  # noqa: E402
from hf_metatts.evaluation.cli import script_command  # noqa: E402

logger = logging.getLogger("vocoder_adaptation_speed")


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name:steps=18,clip_context=true"`` -> ``("name", {"steps": 18, "clip_context": True})``; parameter patterns
    are joined by ``+`` (``parameters=head.*+final_norm.*``). ValueError names a bad item."""
    name, _, spec = text.partition(":")
    if not name:
        raise ValueError(f"{text!r} is not NAME:SETTING=VALUE,...")
    items = [item.replace("+", ",") if item.startswith("parameters=") else item for item in spec.split(",") if item]
    return name, vocoder_settings(items)


def support_pairs(clips: int, frames: int, mel_bins: int, hop: int, seed: int = 0) -> list:
    """``clips`` aligned pairs of a random log-mel ``(frames, mel_bins)`` and noise ``(frames * hop,)``."""
    from hf_metatts.training.vocoder_aligned import AlignedClip

    rng = np.random.default_rng(seed)
    return [AlignedClip(str(index), "support", (rng.standard_normal((frames, mel_bins)) - 3).astype(np.float32),
                        (0.1 * rng.standard_normal(frames * hop)).astype(np.float32), "support")
            for index in range(clips)]


def time_variants(vocoder, pairs: list, adaptations: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of ``adapt_vocoder`` per variant, the variants in turn within each of ``rounds`` (after one warm-up)."""
    from hf_metatts.voice_vocoder import adapt_vocoder

    for adaptation in adaptations.values():
        adapt_vocoder(vocoder, pairs, adaptation)
    times = {name: [] for name in adaptations}
    for _ in range(rounds):
        for name, adaptation in adaptations.items():
            started = time.perf_counter()
            adapt_vocoder(vocoder, pairs, adaptation)
            times[name].append(time.perf_counter() - started)
    return times


def summarise(times: dict[str, list[float]]) -> dict:
    """Median and range per variant, and each variant's per-round ratio to the first variant with their median."""
    first = next(iter(times.values()))
    summary = {}
    for name, values in times.items():
        ratios = [value / base for value, base in zip(values, first)]
        summary[name] = {"median_s": round(statistics.median(values), 4), "min_s": round(min(values), 4),
                         "max_s": round(max(values), 4), "rounds": len(values),
                         "ratio_to_first_median": round(statistics.median(ratios), 4)}
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="hf_metatts/checkpoints/default")
    parser.add_argument("--variant", nargs="+", required=True, metavar="NAME:SETTING=VALUE,...")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200, help="frames per support clip (200: 3.2 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vocoder_adaptation_speed.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from dataclasses import replace

    import hf_metatts
    from hf_metatts.voice_vocoder import VocoderAdaptation, check_adaptable

    torch.set_num_threads(args.threads)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint).eval()
    check_adaptable(model)
    shipped = VocoderAdaptation.from_config(model.config)
    adaptations = {}
    for text in args.variant:
        name, settings = parse_variant(text)
        if "parameters" in settings:
            settings["parameters"] = tuple(settings["parameters"])
        adaptations[name] = replace(shipped, **settings)
        adaptations[name].validate()
    pairs = support_pairs(args.clips, args.frames, model.config.num_mel_bins, model.config.hop_length)
    times = time_variants(model.vocoder, pairs, adaptations, args.rounds)
    result = {"benchmark": "vocoder_adaptation_speed", "checkpoint": args.checkpoint, "threads": args.threads,
              "clips": args.clips, "frames": args.frames,
              "variants": {name: {"settings": {**vars(a), "parameters": list(a.parameters)}, **stats}
                           for (name, a), stats in zip(adaptations.items(), summarise(times).values())},
              "seconds": times, "torch": torch.__version__, "machine": platform.machine(),
              "command": script_command(__file__, argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, stats in result["variants"].items():
        logger.info("%s: median %.3f s, ratio to the first %.3f", name, stats["median_s"],
                    stats["ratio_to_first_median"])
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
