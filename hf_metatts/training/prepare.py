"""``hf-metatts prepare-corpus``: tokenize and featurize a corpus once (tokens, log-mels, log-F0 per clip), so
that several training runs read the same prepared splits instead of each extracting features again.

    hf-metatts prepare-corpus --corpus data/voices --out data/voices-prepared --num-proc 2
"""

import argparse
import logging
import os

logger = logging.getLogger(__name__)


def prepare_corpus(corpus_path: str, output_path: str, splits: list[str] | None = None, num_proc: int | None = None,
                   model_name_or_path: str | None = None) -> dict[str, int]:
    """Prepare ``splits`` (default: all) of a saved corpus with `prepare_dataset`; ``save_to_disk`` the result.

    Returns rows per prepared split. The audio column is dropped; every other column (speaker_id, language,
    style, text...) is kept, so the prepared corpus is a drop-in ``dataset_path`` for meta-training.
    """
    from datasets import DatasetDict, load_from_disk

    from .. import MetaTTSFeatureExtractor, MetaTTSProcessor, MetaTTSTokenizer
    from ..data_collator import prepare_dataset

    if not os.path.isdir(corpus_path):
        raise FileNotFoundError(f"No corpus at {corpus_path}: build one with `hf-metatts build-corpus`.")
    if os.path.abspath(corpus_path) == os.path.abspath(output_path):
        raise ValueError("--out must differ from --corpus: the prepared corpus drops the audio column.")
    corpus = load_from_disk(corpus_path)
    chosen = splits or list(corpus)
    missing = [s for s in chosen if s not in corpus]
    if missing:
        raise ValueError(f"{corpus_path} has no split(s) {missing} (splits: {list(corpus)}).")
    processor = (MetaTTSProcessor.from_pretrained(model_name_or_path) if model_name_or_path
                 else MetaTTSProcessor(MetaTTSFeatureExtractor(), MetaTTSTokenizer()))
    # always recompute: a cached map result would outlive changes to the feature or duration code
    prepared = DatasetDict({
        name: prepare_dataset(corpus[name], processor, num_proc=num_proc, load_from_cache_file=False)
        for name in chosen
    })
    prepared.save_to_disk(output_path)
    counts = {name: len(split) for name, split in prepared.items()}
    logger.info("prepared %s -> %s: %s", corpus_path, output_path, counts)
    return counts


def _run(args) -> int:
    prepare_corpus(args.corpus, args.out, args.splits, args.num_proc, args.model)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``prepare-corpus`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "prepare-corpus", help="tokenize and featurize a corpus once for training",
        description="Add input_ids, labels (log-mels) and pitch to every row of a corpus saved by "
        "`hf-metatts build-corpus`, drop the audio, and save the result for meta-training configs.",
    )
    parser.add_argument("--corpus", default="data/voices", help="corpus folder (load_from_disk)")
    parser.add_argument("--out", required=True, help="folder for the prepared corpus")
    parser.add_argument("--splits", nargs="*", default=None, help="splits to prepare (default: all)")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes for datasets.map")
    parser.add_argument("--model", default=None, help="take the tokenizer/feature extractor of this checkpoint")
    parser.set_defaults(func=_run)
    return parser
