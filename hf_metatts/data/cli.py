"""``hf-metatts build-corpus``: build the offline corpus and print its report table."""

from __future__ import annotations

import argparse
import logging
import sys

from .builder import REPORT, build_corpus
from .errors import CorpusBuildError, TooFewTasksError
from .plan import TASK_COLUMNS
from .presets import PRESETS
from .sources import espeak, festival, flite

logger = logging.getLogger(__name__)

__all__ = ["add_arguments", "main", "register", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``build-corpus``."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="corpus size (default: default)")
    parser.add_argument("--out", help="output folder (read it with datasets.load_from_disk)")
    parser.add_argument("--task-column", choices=TASK_COLUMNS, default="speaker_id",
                        help="what a task is: speaker_id (default), language or style")
    parser.add_argument("--holdout-language", help="with --task-column language: the test-only language (e.g. cs)")
    parser.add_argument("--validation-language", help="with --task-column language: the validation language")
    parser.add_argument("--sources", nargs="+", choices=("espeak", "flite", "festival"),
                        help="use only these synthesisers (default: every installed one)")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default 2; 0 = inline)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing build in --out")
    parser.add_argument("--keep-work", action="store_true", help="keep the per-task shards after the build")
    parser.add_argument("--list-sources", action="store_true", help="say which synthesisers are installed and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")


def _list_sources() -> int:
    for name, module in (("espeak", espeak), ("flite", flite), ("festival", festival)):
        ok, msg = module.available()
        voices = module.installed_voices() if ok and hasattr(module, "installed_voices") else []
        listed = f"; voices: {' '.join(voices)}" if voices else ""
        print(f"{name:<9} {'found' if ok else 'missing':<8} {msg}{listed}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``build-corpus`` with parsed arguments; returns the exit status."""
    if getattr(args, "verbose", False) and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.list_sources:
        return _list_sources()
    if not args.out:
        print("build-corpus: --out is required", file=sys.stderr)
        return 2
    try:
        report = build_corpus(
            args.out, preset=args.preset, task_column=args.task_column, holdout_language=args.holdout_language,
            validation_language=args.validation_language, sources=tuple(args.sources) if args.sources else None,
            num_workers=args.workers, overwrite=args.overwrite, keep_work=args.keep_work,
        )
    except (CorpusBuildError, TooFewTasksError) as exc:
        print(f"build-corpus: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    print(f"report: {args.out}/{REPORT}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``build-corpus`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser("build-corpus", help="build the offline multi-speaker corpus",
                                   description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m hf_metatts.data.cli --preset tiny --out DIR``."""
    parser = argparse.ArgumentParser(prog="hf-metatts build-corpus", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
