"""What the recording conditions of a user's clips do to ``model.adapt``: pauses before and after the speech, and the
recording level, read with the clips as recorded and with what ``model.adapt`` does to them first (cut the leading and
trailing silence, ``ClipValidation.trim_silence_db``; scale to one speech level, ``ClipValidation.speech_level_dbfs``).

Recordings of people begin and end with pauses and come at any level; the corpus's synthetic clips barely pause and
each synthesiser speaks at its own level. For each held-out speaker the first ``--shots`` clips of its support pool
(drawn as ``benchmarks/adaptation_rules.py`` draws them) are put in each ``--conditions`` ``PAD:GAIN``: ``PAD``
seconds of quiet white noise (``--noise-dbfs`` RMS, a quiet room) before and after each clip, the clip's samples
scaled by ``GAIN`` dB. ``model.adapt`` adapts the checkpoint to them as a user's clips (the aligner's durations, the
vocoder's steps when the checkpoint has them) under each ``--processing``:

- ``whole``: the clips as recorded (``ClipValidation(trim_silence_db=None, speech_level_dbfs=None)``);
- ``trimmed``: their leading and trailing silence cut, their level kept (``speech_level_dbfs=None``);
- ``default``: what ``model.adapt`` does by default (``ClipValidation()``).

The voice then reads the speaker's held-out sentences: speaker similarity to the real recordings (resemblyzer) and,
with ``--wer``, the recogniser's word error rate. Means over speakers, and paired differences (bootstrap over
speakers): each processing minus ``whole`` in each condition, and each condition minus the first::

    python benchmarks/user_clips.py --split test --languages en --wer --out benchmarks/results/user_clips_test.json

Writes the JSON and a plot of similarity per condition and processing beside it (``.png``).
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hf_metatts  # noqa: E402
from hf_metatts.data import decode_audio  # noqa: E402
from hf_metatts.evaluation.adaptation_study import add_task_arguments, run_study_main, task_settings  # noqa: E402
from hf_metatts.evaluation.benchmark import load_tasks  # noqa: E402
from hf_metatts.evaluation.paired import paired_difference  # noqa: E402
from hf_metatts.evaluation.voice_eval import evaluate_voice  # noqa: E402
from hf_metatts.training.hardware import hardware_description  # noqa: E402
from hf_metatts.voice_validation import ClipValidation  # noqa: E402

logger = logging.getLogger("user_clips")
PROCESSING = {"whole": ClipValidation(trim_silence_db=None, speech_level_dbfs=None),
              "trimmed": ClipValidation(speech_level_dbfs=None),
              "default": ClipValidation()}
DEFAULT_CONDITIONS = ["0:0", "0.5:0", "1:0", "0:-10", "0:-20", "0.5:-10"]


def clip_condition(value: str) -> tuple[float, float]:
    """``"PAD:GAIN"`` -> (seconds of padding on each side in [0, 10], gain in dB in [-40, 0])."""
    try:
        pad, gain = (float(part) for part in value.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not PAD:GAIN (seconds:dB, e.g. 0.5:-10)") from None
    if not (np.isfinite(pad) and 0 <= pad <= 10 and np.isfinite(gain) and -40 <= gain <= 0):
        raise argparse.ArgumentTypeError(f"{value!r}: the padding must lie in [0, 10] s and the gain in [-40, 0] dB")
    return pad, gain


def condition_name(condition: tuple[float, float]) -> str:
    return f"pad_{condition[0]:g}s_gain_{condition[1]:g}dB"


def reading_name(condition: tuple[float, float], processing: str) -> str:
    return f"{condition_name(condition)}_{processing}"


def recorded_clips(clips: list[dict], condition: tuple[float, float], noise_dbfs: float, rate: int,
                   seed: int) -> list[dict]:
    """``clips`` (``audio`` ``(samples,)``, ``text``, ``language``) as recorded in ``condition``: ``pad`` seconds of
    white noise of RMS ``noise_dbfs`` before and after each clip's audio, the audio scaled by ``gain`` dB."""
    pad, gain = condition
    rng = np.random.default_rng(seed)
    scale = 10.0 ** (noise_dbfs / 20.0)
    samples = int(round(pad * rate))
    return [{**clip, "audio": np.concatenate([rng.normal(0.0, scale, samples), clip["audio"] * 10.0 ** (gain / 20.0),
                                              rng.normal(0.0, scale, samples)]).astype(np.float32)}
            for clip in clips]


def read_task(model, task, args, rate: int) -> dict:
    """``{reading: {"similarity", ["wer", "reference_wer"], "support_seconds", "seconds"}}`` for one speaker."""
    def as_clip(row):
        return {"audio": decode_audio(row["audio"], rate), "text": row["text"], "language": row.get("language")}

    clips = [as_clip(row) for row in task.pool[: args.shots]]
    references = [as_clip(row) for row in task.heldout]
    metrics = ["similarity"] + (["wer"] if args.wer else [])
    row = {}
    for condition in args.conditions:
        support = recorded_clips(clips, condition, args.noise_dbfs, rate, args.seed)
        for processing in args.processing:
            started = time.perf_counter()
            voice = model.adapt(support, sampling_rate=rate, progress=False, validation=PROCESSING[processing])
            seconds = time.perf_counter() - started
            measured = evaluate_voice(model, voice, references, sampling_rate=rate, metrics=metrics)
            name = reading_name(condition, processing)
            row[name] = {**{key: measured[key] for key in metrics},
                         **({"reference_wer": measured["reference_wer"]} if args.wer else {}),
                         "support_seconds": voice.config.support_seconds, "seconds": round(seconds, 3)}
            logger.info("%s %s: %s", task.name, name, {key: round(value, 4) for key, value in row[name].items()})
    return row


def summarise(per_task: dict, args) -> dict:
    """Means over speakers per reading, and the paired differences the script is for."""
    metrics = ["similarity"] + (["wer"] if args.wer else [])
    readings = list(next(iter(per_task.values())))
    means = {name: {key: float(np.mean([per_task[task][name][key] for task in per_task]))
                    for key in metrics + ["support_seconds"]} for name in readings}

    def difference(a: str, b: str) -> dict:
        return {key: paired_difference({t: per_task[t][a][key] for t in per_task},
                                       {t: per_task[t][b][key] for t in per_task}).to_dict() for key in metrics}

    differences = {}
    if "whole" in args.processing:
        for condition in args.conditions:
            for processing in args.processing:
                if processing != "whole":
                    differences[f"{reading_name(condition, processing)}_minus_whole"] = difference(
                        reading_name(condition, processing), reading_name(condition, "whole"))
    first = args.conditions[0]
    for processing in args.processing:
        for condition in args.conditions[1:]:
            differences[f"{reading_name(condition, processing)}_minus_{condition_name(first)}"] = difference(
                reading_name(condition, processing), reading_name(first, processing))
    return {"means": means, "differences": differences}


def run(args) -> dict:
    settings = task_settings(args, {"zero_shot": args.checkpoint}, 0, ["similarity"])
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint).eval()
    tasks = load_tasks(settings)
    if len(tasks) < 2:
        raise SystemExit(f"error: {len(tasks)} speaker(s) of split {args.split!r} match {args.tasks}: the paired "
                         "differences need at least 2")
    started = time.perf_counter()
    per_task = {task.name: read_task(model, task, args, model.config.sampling_rate) for task in tasks}
    summary = summarise(per_task, args)
    for name, values in summary["means"].items():
        logger.info("%s: %s", name, {key: round(value, 4) for key, value in values.items()})
    return {"checkpoint": args.checkpoint, "corpus": args.corpus, "split": args.split, "shots": args.shots,
            "heldout": args.heldout, "seed": args.seed, "noise_dbfs": args.noise_dbfs,
            "conditions": [condition_name(c) for c in args.conditions],
            "processing": {name: {"trim_silence_db": PROCESSING[name].trim_silence_db,
                                  "trim_margin_seconds": PROCESSING[name].trim_margin_seconds,
                                  "speech_level_dbfs": PROCESSING[name].speech_level_dbfs}
                           for name in args.processing},
            "tasks": [t.name for t in tasks], **summary, "per_task": per_task,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": {**hardware_description(), "platform": platform.platform(), "threads": args.threads},
            "library_version": hf_metatts.__version__, "command": getattr(args, "command", None)}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions, processings = result["conditions"], list(result["processing"])
    width = 0.8 / len(processings)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(conditions)), 4))
    for index, processing in enumerate(processings):
        values = [result["means"][f"{condition}_{processing}"]["similarity"] for condition in conditions]
        ax.bar(np.arange(len(conditions)) + index * width, values, width, label=processing)
    ax.set_xticks(np.arange(len(conditions)) + width * (len(processings) - 1) / 2,
                  [c.replace("_gain", "\ngain") for c in conditions], fontsize=8)
    low = min(v["similarity"] for v in result["means"].values())
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_ylabel("speaker similarity after model.adapt")
    ax.set_title(f"{result['split']} speakers ({len(result['tasks'])}), {result['shots']} clips each")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="user_clips", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=hf_metatts.DEFAULT_CHECKPOINT)
    add_task_arguments(parser, split="validation", heldout=6)
    parser.add_argument("--conditions", nargs="+", type=clip_condition,
                        default=[clip_condition(c) for c in DEFAULT_CONDITIONS],
                        help="PAD:GAIN, seconds of noise before and after each clip and its gain in dB; the first "
                             "is the reference of the differences")
    parser.add_argument("--noise-dbfs", type=float, default=-60.0, help="RMS level of the padding noise")
    parser.add_argument("--processing", nargs="+", choices=list(PROCESSING), default=list(PROCESSING))
    parser.add_argument("--wer", action="store_true", help="also the word error rate (English speakers)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/user_clips.json")
    return parser


def main(argv=None) -> None:
    run_study_main(build_parser(), run, plot, argv)


if __name__ == "__main__":
    main()
