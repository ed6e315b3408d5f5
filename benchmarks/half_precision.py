"""Synthesis in half precision: a checkpoint loaded with ``dtype=torch.float16`` and ``torch.bfloat16`` against the
same checkpoint in float32, on the same sentences, with and without a voice.

Per dtype: whether every waveform has the float32 one's length, the correlation of the waveforms with the float32
ones (over all sentences joined), the largest sample difference, the speaker similarity of the half-precision audio
to the float32 audio (resemblyzer), and the real-time factor on ``--threads`` CPU threads (median of ``--runs``
rounds, the dtypes timed in turn within each round). A voice (``--voice``, adapted on the float32 base) is applied
to each base as loaded, through its recorded fingerprints (``base_fingerprints_by_dtype``)::

    python benchmarks/half_precision.py --voice outputs/quickstart/voice --out benchmarks/results/half_precision.json
"""

import argparse
import logging
import platform
import statistics
import time

import numpy as np
import torch

import hf_metatts
from hf_metatts.evaluation.adaptation_study import run_study_main
from hf_metatts.training.hardware import hardware_description

logger = logging.getLogger("half_precision")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Meta-learning lets a speech model pick up a new voice from a handful of recordings.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colors.",
]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def synthesise(model, processor, voice=None) -> list[np.ndarray]:
    """One float32 waveform ``(samples,)`` per sentence of :data:`SENTENCES`."""
    waves = []
    with torch.no_grad():
        for sentence in SENTENCES:
            ids = processor(text=sentence, return_tensors="pt")["input_ids"]
            waves.append(model(input_ids=ids, voice=voice).waveform[0].float().numpy())
    return waves


def compare(reference: list[np.ndarray], waves: list[np.ndarray], rate: int) -> dict:
    """How close ``waves`` are to ``reference``, sentence by sentence (see the module docstring)."""
    from hf_metatts.evaluation.speaker import cosine_similarity, embed_utterances

    same_length = all(len(a) == len(b) for a, b in zip(reference, waves))
    joined_reference = np.concatenate([a[: min(len(a), len(b))] for a, b in zip(reference, waves)])
    joined = np.concatenate([b[: min(len(a), len(b))] for a, b in zip(reference, waves)])
    embeddings = embed_utterances(reference + waves, rate)
    half = len(reference)
    similarity = np.diag(cosine_similarity(embeddings[:half], embeddings[half:]))
    return {"same_length": bool(same_length), "correlation": float(np.corrcoef(joined_reference, joined)[0, 1]),
            "max_abs_difference": float(np.max(np.abs(joined_reference - joined))),
            "speaker_similarity_to_float32": float(np.mean(similarity))}


def run(args) -> dict:
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(args.checkpoint)
    models = {name: hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.checkpoint, dtype=dtype).eval()
              for name, dtype in DTYPES.items()}
    voice = hf_metatts.MetaTTSVoice.from_pretrained(args.voice) if args.voice else None
    rate = models["float32"].config.sampling_rate
    result = {"checkpoint": args.checkpoint, "voice": args.voice, "sentences": SENTENCES, "threads": args.threads,
              "runs": args.runs, "dtypes": {}}
    voices = {"base voice": None, **({"voice": voice} if voice is not None else {})}
    for label, applied in voices.items():
        reference = synthesise(models["float32"], processor, applied)
        for name, model in models.items():
            waves = synthesise(model, processor, applied)
            entry = result["dtypes"].setdefault(name, {})
            entry[label] = compare(reference, waves, rate)
            logger.info("%s, %s: %s", name, label, {k: round(v, 5) for k, v in entry[label].items()})
    seconds = {name: [] for name in models}
    audio_seconds = sum(len(w) for w in synthesise(models["float32"], processor)) / rate
    for _ in range(args.runs):
        for name, model in models.items():
            started = time.perf_counter()
            synthesise(model, processor)
            seconds[name].append(time.perf_counter() - started)
    for name in models:
        result["dtypes"][name]["rtf"] = statistics.median(seconds[name]) / audio_seconds
        result["dtypes"][name]["rtf_ratio_to_float32"] = statistics.median(
            [a / b for a, b in zip(seconds[name], seconds["float32"])])
        logger.info("%s: RTF %.4f (%.2fx float32)", name, result["dtypes"][name]["rtf"],
                    result["dtypes"][name]["rtf_ratio_to_float32"])
    result.update(machine=hardware_description(), torch=torch.__version__, python=platform.python_version(),
                  command=getattr(args, "command", None))
    return result


def plot(result: dict, path: str) -> None:
    """Bars of each dtype's RTF and speaker similarity to the float32 audio (the base voice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["dtypes"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.bar(names, [result["dtypes"][n]["rtf"] for n in names])
    left.set_ylabel(f"real-time factor ({result['threads']} threads)")
    right.bar(names, [result["dtypes"][n]["base voice"]["speaker_similarity_to_float32"] for n in names])
    right.set_ylim(0.99, 1.0)
    right.set_ylabel("speaker similarity to float32")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="half_precision", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=hf_metatts.DEFAULT_CHECKPOINT)
    parser.add_argument("--voice", default=None, help="a voice folder adapted on the float32 checkpoint")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/half_precision.json")
    return parser


def main(argv=None) -> None:
    run_study_main(build_parser(), run, plot, argv)


if __name__ == "__main__":
    main()
