"""How well the transcript check of `model.adapt` separates matched from mismatched clips, for one checkpoint.

`model.adapt` scores each support clip with two numbers from one pass of the aligner
(`hf_metatts.voice_validation.transcript_scores`): the forward-sum loss per token (thresholds
``ClipValidation.alignment_warn_score`` / ``alignment_error_score``) and the mean negative log attention on
its best path (``path_warn_score`` / ``path_error_score``). This script scores held-out English clips with
their own transcript (matched) and with the transcript of another clip of the same speaker (mismatched). It
reports, per score, both distributions, the share of clips each threshold flags, and the area under the ROC
curve of the score as a mismatch detector.

    python benchmarks/transcript_check.py --model hf_metatts/checkpoints/default \
        --out benchmarks/results/transcript_check.json
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hf_metatts  # noqa: E402
from benchmarks.vocoder import BenchmarkInputError, select_clips  # noqa: E402
from hf_metatts.evaluation.cli import script_command  # noqa: E402
from hf_metatts.training.hardware import hardware_description  # noqa: E402
from hf_metatts.voice_adapt import prepare_support, processor_for  # noqa: E402
from hf_metatts.voice_errors import TranscriptMismatchError  # noqa: E402
from hf_metatts.voice_validation import (  # noqa: E402
    ClipValidation,
    load_clips,
    transcript_scores,
)

logger = logging.getLogger("transcript_check")


def roc_auc(negatives: list[float], positives: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    neg, pos = np.asarray(negatives), np.asarray(positives)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def score_clips(model, rows: list[dict], transcripts: list[str]) -> dict[str, list[float]]:
    """Forward-sum and path scores of each row's audio read with ``transcripts[i]``; ``inf`` where the transcript
    has more phonemes than the clip has frames (`model.adapt` refuses those before scoring)."""
    validation = ClipValidation(alignment_warn_score=None, alignment_error_score=None, path_warn_score=None,
                                path_error_score=None)
    clips = load_clips([(row["audio"], text) for row, text in zip(rows, transcripts)], model.config.sampling_rate,
                       validation, language="en-us")
    processor, scores = processor_for(model), {"forward_sum": [], "path": []}
    for clip in clips:
        try:
            examples = prepare_support([clip], processor, validation, torch.device("cpu"))
        except TranscriptMismatchError:
            scores["forward_sum"].append(float("inf"))
            scores["path"].append(float("inf"))
            continue
        with torch.no_grad():
            forward_sums, paths = transcript_scores(model, examples)
            scores["forward_sum"].extend(forward_sums)
            scores["path"].extend(paths)
    return scores


def summary(scores: list[float]) -> dict:
    """Median, 5th/95th percentiles, largest finite score, minimum and how many clips were refused by length
    (scored infinite, which ranks them last: a percentile that reaches one is infinite, not NaN)."""
    finite = [s for s in scores if np.isfinite(s)]
    return {"median": _percentile(scores, 50), "p5": _percentile(scores, 5), "p95": _percentile(scores, 95),
            "max_scored": float(np.max(finite)) if finite else None, "min": float(np.min(scores)),
            "refused_by_length": len(scores) - len(finite)}


def _percentile(scores: list[float], q: float) -> float:
    with np.errstate(invalid="ignore"):  # interpolating towards an infinite score gives NaN
        value = float(np.percentile(scores, q))
    return float("inf") if np.isnan(value) else value


def run(args, command: str) -> dict:
    torch.set_num_threads(args.threads)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(args.model).eval()
    rows = select_clips(args.corpus, args.split, args.max_speakers, args.clips_per_speaker, args.seed)
    by_speaker: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_speaker.setdefault(row["speaker_id"], []).append(index)
    swapped = [row["text"] for row in rows]
    for indices in by_speaker.values():  # each clip read with the next clip's text of the same speaker
        for position, index in enumerate(indices):
            swapped[index] = rows[indices[(position + 1) % len(indices)]]["text"]
    matched = score_clips(model, rows, [row["text"] for row in rows])
    mismatched = score_clips(model, rows, swapped)
    defaults = ClipValidation()
    thresholds = {"forward_sum": {"warn": defaults.alignment_warn_score, "error": defaults.alignment_error_score},
                  "path": {"warn": defaults.path_warn_score, "error": defaults.path_error_score}}
    scores = {}
    for kind, limits in thresholds.items():
        good, bad = matched[kind], mismatched[kind]
        scores[kind] = {
            "matched": summary(good), "mismatched": summary(bad), "auc": roc_auc(good, bad), "thresholds": limits,
            "flagged": {level: {"matched": float(np.mean([v > limit for v in good])),
                                "mismatched": float(np.mean([v > limit for v in bad]))}
                        for level, limit in limits.items() if limit is not None},
            "values": {"matched": [v if np.isfinite(v) else None for v in good],
                       "mismatched": [v if np.isfinite(v) else None for v in bad]},
        }
    either = {level: {"matched": float(np.mean([any(matched[k][i] > thresholds[k][level] for k in thresholds)
                                                for i in range(len(rows))])),
                      "mismatched": float(np.mean([any(mismatched[k][i] > thresholds[k][level] for k in thresholds)
                                                   for i in range(len(rows))]))}
              for level in ("warn", "error")}
    return {
        "command": command,
        "hardware": hardware_description(),
        "model": args.model, "clips": len(rows), "speakers": len(by_speaker),
        "scores": scores, "flagged_by_either": either,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=hf_metatts.DEFAULT_CHECKPOINT)
    parser.add_argument("--corpus", default="data/voices")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-speakers", type=int, default=9, help="English speakers, first in sorted order")
    parser.add_argument("--clips-per-speaker", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/transcript_check.json")
    args = parser.parse_args(argv)
    if args.clips_per_speaker < 2:
        parser.error("--clips-per-speaker must be at least 2 (a mismatched transcript comes from another clip)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run(args, script_command(__file__, argv))
    except BenchmarkInputError as error:
        parser.error(str(error))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for kind, scores in result["scores"].items():
        logger.info("%s: matched %s | mismatched %s | AUC %.3f | flagged %s", kind, scores["matched"],
                    scores["mismatched"], scores["auc"], scores["flagged"])
    logger.info("flagged by either score: %s", result["flagged_by_either"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
