"""Adaptation benchmark on held-out tasks: methods x shots x steps -> similarity, EER, MCD, WER.

    python benchmarks/adaptation.py --corpus data/voices --task-column speaker_id \
        --checkpoints maml=outputs/base_maml metasgd=outputs/base_metasgd finetune=outputs/base_pretrain \
        --shots 1 5 10 --steps 0 1 5 10 20 50 100 --out benchmarks/results/adaptation_speaker.json

Writes the JSON, the PNG curves (same name, ``.png``) and the markdown table (``.md``) for BENCHMARKS.md.
A method without a checkpoint (or whose checkpoint lacks its meta-learner) is reported as skipped.
"""

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hf_metatts.evaluation.cli import add_benchmark_arguments, run_benchmark_command, script_command  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_benchmark_command(args, script_command(__file__, argv))


if __name__ == "__main__":
    sys.exit(main())
