"""Wall time of voice adaptation at the base config on CPU, and the size of a voice file.

Measures ``model.adapt`` (clip checks, features, aligner score and the inner loop, and the vocoder's steps when
the checkpoint adapts its vocoder too, or ``--vocoder steps=N ...``) for a 5-shot, 5-step ``maml`` adaptation and
for ``zero_shot`` (the support encoder alone), on ``--threads`` CPU threads, and the bytes of ``voice.safetensors``.
Writes ``benchmarks/results/voice_adaptation_speed.json``.

    python benchmarks/voice_adaptation_speed.py --threads 2 --repeats 5
"""

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import hf_metatts
from hf_metatts.evaluation.cli import script_command

logger = logging.getLogger("voice_adaptation_speed")
SR = 16000
TEXTS = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
         "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
         "Rice is often served in round bowls."]


def support_clips(shots: int, seconds: float = 2.5) -> list[tuple[np.ndarray, str]]:
    """``shots`` harmonic, amplitude-modulated clips of ``seconds`` (the timing does not depend on content)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    clips = []
    for index in range(shots):
        pitch = 120.0 + 15.0 * index
        wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        clips.append(((0.2 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32), TEXTS[index % 5]))
    return clips


def corpus_clips(corpus: str, shots: int, speaker: str) -> list[tuple[np.ndarray, str]]:
    """``shots`` real clips with their transcripts of ``speaker`` from the test split of a saved corpus."""
    from datasets import Audio, load_from_disk

    from hf_metatts.data import decode_audio

    test = load_from_disk(corpus)["test"].cast_column("audio", Audio(decode=False))
    rows = [row for row in test if row["speaker_id"] == speaker][:shots]
    if len(rows) < shots:
        raise SystemExit(f"error: {corpus} has {len(rows)} test clips of {speaker}, fewer than {shots}")
    return [(decode_audio(row["audio"], SR), row["text"]) for row in rows]


def time_adapt(model, clips, repeats: int, **kwargs) -> tuple[list[float], object]:
    model.adapt(clips, sampling_rate=SR, progress=False, **kwargs)  # warm-up (espeak, kernels)
    times, voice = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        voice = model.adapt(clips, sampling_rate=SR, progress=False, **kwargs)
        times.append(time.perf_counter() - start)
    return times, voice


def _true_or_false(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError("give true or false")
    return value.lower() == "true"


VOCODER_SETTINGS = {"steps": int, "learning_rate": float, "batch_size": int, "segment_frames": int,
                    "parameters": lambda value: value.split(","), "adapt_phase": _true_or_false,
                    "clip_context": _true_or_false}


def vocoder_settings(items: list[str]) -> dict:
    """``["steps=20", "batch_size=4"]`` -> ``{"steps": 20, "batch_size": 4}``; ValueError names a bad item."""
    settings = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in VOCODER_SETTINGS or not value:
            raise ValueError(f"{item!r} is not SETTING=VALUE with SETTING one of {sorted(VOCODER_SETTINGS)}")
        try:
            settings[name] = VOCODER_SETTINGS[name](value)
        except ValueError as error:
            raise ValueError(f"{name}={value!r}: {error}") from error
    return settings


def summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "runs": len(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--corpus", default=None, help="adapt to real test clips of this saved corpus")
    parser.add_argument("--speaker", default="flite:awb", help="with --corpus: the test speaker")
    parser.add_argument("--model", default=None, help="adapt this trained checkpoint (default: random base config)")
    parser.add_argument("--vocoder", nargs="+", default=[], metavar="SETTING=VALUE",
                        help="vocoder adaptation in place of the checkpoint's (hf_metatts.voice_vocoder): steps=, "
                        "learning_rate=, batch_size=, segment_frames=, parameters= (patterns joined by commas), "
                        "adapt_phase= and clip_context= (true/false), e.g. steps=20 parameters=head.*,final_norm.*")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "voice_adaptation_speed.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model:
        model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.model).eval()
        described = f"checkpoint {args.model}"
    else:
        config = hf_metatts.MetaTTSConfig(dropout=0.0, attention_dropout=0.0, variance_dropout=0.0)
        model = hf_metatts.MetaTTSForTextToSpeech(config).eval()
        described = "base (MetaTTSConfig defaults, dropout off)"
    try:
        vocoder = vocoder_settings(args.vocoder)
    except ValueError as error:
        parser.error(f"--vocoder: {error}")
    if vocoder:
        from hf_metatts.training.bundle import set_voice_vocoder

        try:
            set_voice_vocoder(model.config, vocoder)
        except ValueError as error:
            parser.error(f"--vocoder: {error}")
    clips = corpus_clips(args.corpus, args.shots, args.speaker) if args.corpus else support_clips(args.shots)
    clip_seconds = round(float(np.mean([len(audio) / SR for audio, _ in clips])), 2)
    maml_times, voice = time_adapt(model, clips, args.repeats, method="maml", steps=args.steps)
    zero_times, _ = time_adapt(model, clips, args.repeats, method="zero_shot")
    with tempfile.TemporaryDirectory() as folder:
        voice.save_pretrained(folder)
        size = os.path.getsize(os.path.join(folder, "voice.safetensors"))
    result = {
        "benchmark": "voice_adaptation_speed",
        "config": described,
        "threads": args.threads, "shots": args.shots, "steps": args.steps,
        "clip_seconds": clip_seconds, "clips": f"{args.speaker} test clips of {args.corpus}" if args.corpus
        else "synthetic harmonic clips", "model_parameters": sum(p.numel() for p in model.parameters()),
        "maml": summary(maml_times), "zero_shot": summary(zero_times),
        "vocoder_adaptation": {name: getattr(model.config, f"voice_vocoder_{name}") for name in VOCODER_SETTINGS},
        "voice_floats": voice.num_parameters, "voice_file_bytes": size,
        "torch": torch.__version__, "python": sys.version.split()[0], "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "command": script_command(__file__, argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    logger.info(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
