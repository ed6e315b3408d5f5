"""Meta-train MetaTTS from a JSON config.

    python examples/meta_train.py --config examples/configs/tiny_maml.json
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no examples/meta_train.py --config examples/configs/base_maml.json

See docs/meta_learning.md for the multi-machine recipe.
"""

import argparse
import logging
import sys

from hf_metatts.meta.cli import parse_config, run_meta_training


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="JSON config (MetaModel/MetaData/MetaTrainingArguments)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_meta_training(*parse_config(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
