"""How well a trained speaker-identity encoder (``hf-metatts train-identity-encoder``) tells apart speakers it
never saw: identification of each utterance among all speakers of a corpus split, from centroids of each
speaker's first ``--enrol`` utterances, and the verification EER of the same trials. The mels are the TTS
model's targets, computed from the split's audio by a checkpoint's processor (as the benchmark harness does)::

    python benchmarks/identity_encoder.py --encoder outputs/identity_encoder --corpus data/voices --split test \\
        --languages en --out benchmarks/results/identity_encoder_test.json
"""

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hf_metatts.evaluation.cli import script_command  # noqa: E402

logger = logging.getLogger("identity_encoder")


def run(args) -> dict:
    import numpy as np
    import torch

    import hf_metatts
    from hf_metatts.data_collator import prepare_example
    from hf_metatts.evaluation.benchmark import BenchmarkSettings, load_tasks
    from hf_metatts.meta.identity import load_identity_encoder
    from hf_metatts.processing_metatts import MetaTTSProcessor
    from hf_metatts.training.hardware import hardware_description
    from hf_metatts.training.identity_encoder import unseen_speaker_scores

    settings = BenchmarkSettings(corpus=args.corpus, checkpoints={"zero_shot": args.processor}, split=args.split,
                                 shots=[1], steps=[0], heldout=1, seed=args.seed, eval_metrics=["similarity"],
                                 languages=args.languages or None)
    tasks = load_tasks(settings)
    processor = MetaTTSProcessor.from_pretrained(args.processor)
    encoder = load_identity_encoder(args.encoder)
    mels, speakers = [], []
    for index, task in enumerate(tasks):
        for row in (task.pool + task.heldout)[: args.utterances]:
            labels = prepare_example(row, processor)["labels"]
            mels.append(torch.as_tensor(np.asarray(labels), dtype=torch.float32))
            speakers.append(index)
    scores = unseen_speaker_scores(encoder, mels, np.array(speakers), args.enrol)
    logger.info("%s speakers of %s/%s: identification %.3f over %d trials, EER %.3f", scores["speakers"],
                args.corpus, args.split, scores["identification"], scores["trials"], scores["eer"])
    return {"encoder": args.encoder, "corpus": args.corpus, "split": args.split, "languages": args.languages,
            "speaker_names": [t.name for t in tasks], "utterances_per_speaker": args.utterances,
            "enrol": args.enrol, **scores,
            "machine": {**hardware_description(), "platform": platform.platform()},
            "library_version": hf_metatts.__version__}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", required=True, help="folder written by hf-metatts train-identity-encoder")
    parser.add_argument("--corpus", default="data/voices")
    parser.add_argument("--split", default="test")
    parser.add_argument("--languages", nargs="*", default=None, help="language-code prefixes (default: all)")
    parser.add_argument("--processor", default="hf_metatts/checkpoints/default",
                        help="checkpoint whose processor computes the mels")
    parser.add_argument("--utterances", type=int, default=20,
                        help="utterances per speaker (the first of its rows, shuffled by --seed as the harness does)")
    parser.add_argument("--enrol", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/identity_encoder_test.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.enrol >= args.utterances:
        parser.error(f"--enrol {args.enrol} leaves no trial utterance of --utterances {args.utterances}")
    result = {**run(args), "command": script_command(__file__, argv)}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
