"""Vocoder quality and speed by resynthesis of held-out speakers: Griffin-Lim against the trained iSTFT vocoder.

Each real clip of the English test speakers goes through our log-mel (`MetaTTSFeatureExtractor`) and back to a
waveform through each vocoder, so the vocoder is the only thing that differs. Per vocoder: median mel-cepstral
distortion (dB) to the original clip, ASR word error rate (PocketSphinx) of the resynthesis against the row's
text next to the WER of the original recordings with the same recogniser, mean speaker similarity
(resemblyzer cosine) to the original, and the real-time factor (synthesis seconds / audio seconds, log-mel
given, median over ``--runs``; the vocoders alternate within each run, on ``--threads`` CPU threads).

    python benchmarks/vocoder.py --corpus data/voices --vocoder outputs/vocoder --out benchmarks/results/vocoder.json
"""

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hf_metatts import MetaTTSConfig, MetaTTSFeatureExtractor  # noqa: E402
from hf_metatts.evaluation.cli import script_command  # noqa: E402
from hf_metatts.modeling_vocoder import GriffinLimVocoder  # noqa: E402
from hf_metatts.training.vocoder import (  # noqa: E402
    SUMMARY_NAME,
    VocoderTrainingError,
    hardware_description,
    load_trained_vocoder,
)

logger = logging.getLogger("vocoder")

AUDIO_SETTINGS = ("sampling_rate", "num_mel_bins", "hop_length", "n_fft", "win_length", "fmin", "fmax", "mel_floor")


class BenchmarkInputError(ValueError):
    """The corpus or the vocoder folder cannot be benchmarked; the message says why."""


def select_clips(corpus_path: str, split: str, max_speakers: int, clips_per_speaker: int, seed: int) -> list[dict]:
    """Rows (``audio`` undecoded) of the first ``max_speakers`` English speakers of ``split`` in sorted order,
    ``clips_per_speaker`` each, drawn by a seeded shuffle per speaker."""
    from datasets import Audio, load_from_disk

    if not os.path.isdir(corpus_path):
        raise BenchmarkInputError(f"No corpus at {corpus_path}: build one with `hf-metatts build-corpus`.")
    corpus = load_from_disk(corpus_path)
    if split not in corpus:
        raise BenchmarkInputError(f"{corpus_path} has no split {split!r} (splits: {list(corpus)}).")
    rows = corpus[split]
    missing = [c for c in ("audio", "text", "speaker_id", "language") if c not in rows.column_names]
    if missing:
        raise BenchmarkInputError(f"Split {split!r} of {corpus_path} lacks the column(s) {missing}.")
    languages = rows["language"]
    english = [i for i, language in enumerate(languages) if str(language or "").lower().startswith("en")]
    if not english:
        raise BenchmarkInputError(f"Split {split!r} of {corpus_path} has no English rows (languages: "
                                  f"{sorted(set(map(str, languages)))}); the WER needs English speech.")
    speakers = rows["speaker_id"]
    by_speaker: dict[str, list[int]] = {}
    for index in english:
        by_speaker.setdefault(str(speakers[index]), []).append(index)
    rows = rows.cast_column("audio", Audio(decode=False))
    chosen = []
    for speaker in sorted(by_speaker)[:max_speakers]:
        indices = list(by_speaker[speaker])
        random.Random(f"{seed}:{speaker}").shuffle(indices)
        chosen.extend(rows[i] for i in sorted(indices[:clips_per_speaker]))
    return chosen


def check_audio_settings(config: MetaTTSConfig, reference: MetaTTSConfig, folder: str) -> None:
    for name in AUDIO_SETTINGS:
        if getattr(config, name) != getattr(reference, name):
            raise BenchmarkInputError(
                f"The vocoder in {folder} uses {name}={getattr(config, name)}, the model default is "
                f"{getattr(reference, name)}: Griffin-Lim and the iSTFT vocoder must read the same log-mels."
            )


def synthesize(vocoder, mels: list[torch.Tensor], lengths: list[int]) -> list[np.ndarray]:
    """Each log-mel ``(1, T, M)`` -> a waveform cut to the original clip's length."""
    with torch.no_grad():
        return [vocoder(mel).reshape(-1)[:length].float().numpy() for mel, length in zip(mels, lengths)]


def time_vocoders(vocoders: dict, mels: list[torch.Tensor], audio_seconds: float, runs: int) -> dict[str, list]:
    """Real-time factor of each vocoder in each run; the order of the vocoders alternates from run to run."""
    names = list(vocoders)
    rtfs: dict[str, list[float]] = {name: [] for name in names}
    with torch.no_grad():
        for run in range(runs):
            for name in names if run % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                for mel in mels:
                    vocoders[name](mel)
                rtfs[name].append((time.perf_counter() - start) / audio_seconds)
    return rtfs


def _per_clip(metric, real: list[np.ndarray], waves: list[np.ndarray], rate: int) -> list[float | None]:
    """``metric([reference], [prediction])`` clip by clip; ``None`` where a clip cannot be scored (silent
    resynthesis: no speech left once silences are trimmed)."""
    from hf_metatts.evaluation import EmptyAudioError

    values = []
    for index, (reference, wave) in enumerate(zip(real, waves)):
        try:
            values.append(float(metric([reference], [wave], sampling_rate=rate)[0]))
        except EmptyAudioError as error:
            logger.warning("clip %d not scored by %s: %s", index, metric.__name__, error)
            values.append(None)
    return values


def measure_quality(real: list[np.ndarray], waves: list[np.ndarray], texts: list[str], rate: int) -> dict:
    from hf_metatts.evaluation import asr_word_error_rate, mel_cepstral_distortion, speaker_similarity

    mcd = _per_clip(mel_cepstral_distortion, real, waves, rate)
    similarity = _per_clip(speaker_similarity, real, waves, rate)
    wer = asr_word_error_rate(waves, texts, rate)
    scored_mcd = [v for v in mcd if v is not None]
    scored_similarity = [v for v in similarity if v is not None]
    return {"mcd_db_median": float(np.median(scored_mcd)) if scored_mcd else None, "wer": wer.wer,
            "speaker_similarity_mean": float(np.mean(scored_similarity)) if scored_similarity else None,
            "unscored_clips": {"mcd": mcd.count(None), "speaker_similarity": similarity.count(None)},
            "mcd_db_per_clip": [None if v is None else round(v, 3) for v in mcd],
            "speaker_similarity_per_clip": [None if v is None else round(v, 4) for v in similarity],
            "transcripts": wer.transcripts}


def _cell(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(result: dict) -> str:
    lines = ["| vocoder | MCD dB (median) | WER | WER of the originals | speaker similarity | RTF (median) |",
             "|---|---|---|---|---|---|"]
    for name, entry in result["vocoders"].items():
        lines.append(f"| {name} | {_cell(entry['mcd_db_median'], 2)} | {entry['wer']:.3f} | "
                     f"{result['original_wer']:.3f} | {_cell(entry['speaker_similarity_mean'], 3)} | "
                     f"{entry['rtf_median']:.4f} |")
    return "\n".join(lines)


def run(args, command: str) -> dict:
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    reference = MetaTTSConfig()
    istft = load_trained_vocoder(args.vocoder)
    check_audio_settings(istft.config, reference, args.vocoder)
    vocoders = {"griffin_lim": GriffinLimVocoder(reference).eval(), "istft": istft.eval()}
    rate = reference.sampling_rate

    from hf_metatts.data import decode_audio
    from hf_metatts.evaluation import asr_word_error_rate

    rows = select_clips(args.corpus, args.split, args.max_speakers, args.clips_per_speaker, args.seed)
    real = [decode_audio(row["audio"], rate) for row in rows]
    texts = [row["text"] for row in rows]
    extractor = MetaTTSFeatureExtractor.from_model_config(reference)
    mels = [torch.from_numpy(extractor(wave, sampling_rate=rate)["input_features"]) for wave in real]
    audio_seconds = sum(len(wave) for wave in real) / rate
    speakers = sorted({str(row["speaker_id"]) for row in rows})
    logger.info("%d clips (%.1f s of audio) of %d English %s speakers: %s", len(rows), audio_seconds,
                len(speakers), args.split, ", ".join(speakers))

    waves = {name: synthesize(vocoder, mels, [len(w) for w in real]) for name, vocoder in vocoders.items()}  # warm-up
    rtfs = time_vocoders(vocoders, mels, audio_seconds, args.runs)
    original_wer = asr_word_error_rate(real, texts, rate)
    results = {}
    for name in vocoders:
        quality = measure_quality(real, waves[name], texts, rate)
        results[name] = {"mcd_db_median": quality.pop("mcd_db_median"), "wer": quality.pop("wer"),
                         "speaker_similarity_mean": quality.pop("speaker_similarity_mean"),
                         "rtf_median": statistics.median(rtfs[name]), "rtf_runs": rtfs[name], **quality}
        logger.info("%-12s MCD %s dB, WER %.3f, similarity %s, RTF %.4f", name,
                    _cell(results[name]["mcd_db_median"], 2), results[name]["wer"],
                    _cell(results[name]["speaker_similarity_mean"], 3), results[name]["rtf_median"])

    summary_path = Path(args.vocoder) / SUMMARY_NAME
    training = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {
        "benchmark": "vocoder_resynthesis",
        "command": command,
        "machine": {**hardware_description(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "corpus": args.corpus,
        "split": args.split,
        "speakers": speakers,
        "clips": [{"id": row.get("id"), "speaker_id": str(row["speaker_id"]), "language": row["language"],
                   "seconds": round(len(wave) / rate, 3), "text": row["text"]} for row, wave in zip(rows, real)],
        "audio_seconds": round(audio_seconds, 3),
        "threads": args.threads,
        "runs": args.runs,
        "griffin_lim": {"iterations": reference.griffin_lim_iters, "momentum": reference.griffin_lim_momentum,
                        "power": reference.griffin_lim_power},
        "istft": {"folder": args.vocoder, "parameters": sum(p.numel() for p in istft.parameters()),
                  "hidden_size": istft.config.vocoder_hidden_size, "layers": istft.config.vocoder_layers,
                  "training_steps": training.get("steps"), "training_wall_seconds": training.get("wall_seconds"),
                  "training_validation": training.get("validation")},
        "original_wer": original_wer.wer,
        "original_transcripts": original_wer.transcripts,
        "vocoders": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/voices", help="corpus folder (load_from_disk)")
    parser.add_argument("--split", default="test", help="split of held-out speakers")
    parser.add_argument("--vocoder", default="outputs/vocoder", help="folder written by `hf-metatts train-vocoder`")
    parser.add_argument("--max-speakers", type=int, default=6, help="English speakers, first in sorted order")
    parser.add_argument("--clips-per-speaker", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (RTF is their median)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip choice per speaker")
    parser.add_argument("--out", default="benchmarks/results/vocoder.json")
    args = parser.parse_args(argv)
    for name in ("max_speakers", "clips_per_speaker", "threads", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run(args, script_command(__file__, argv))
    except (BenchmarkInputError, VocoderTrainingError) as error:
        parser.error(str(error))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    logger.info("\n%s\n", markdown_table(result))
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
