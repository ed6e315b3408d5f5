"""``hf-metatts import-prompts``: the installed Asterisk prompts (real recorded voices) as a corpus of test speakers.

Install the recordings with ``scripts/install_recordings.sh`` (Debian packages, about 55 MB), then::

    hf-metatts import-prompts --out data/prompts

writes a ``datasets`` corpus with the corpus schema whose ``test`` split holds every voice
(`hf_metatts.data.prompt_recordings`); ``benchmarks/recorded_voices.py`` reads it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from .errors import CorpusBuildError
from .prompt_recordings import DOCS_DIR, PROMPT_VOICES, SOUNDS_DIR, PromptFilter, load_prompt_voices

VOICE_FOLDERS = tuple(voice.folder for voice in PROMPT_VOICES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write the corpus to (save_to_disk); must not exist")
    parser.add_argument("--voices", nargs="+", default=list(VOICE_FOLDERS), choices=VOICE_FOLDERS,
                        help="the voices to import (default: all)")
    parser.add_argument("--sounds-dir", default=SOUNDS_DIR, help="where the recordings' voice folders are")
    parser.add_argument("--docs-dir", default=DOCS_DIR, help="where the packages' transcripts are")
    parser.add_argument("--min-words", type=int, default=PromptFilter.min_words,
                        help="keep prompts of at least this many words")


def run(args: argparse.Namespace) -> int:
    if os.path.exists(args.out):
        print(f"import-prompts: {args.out} exists: give a new folder (nothing was written).", file=sys.stderr)
        return 1
    if args.min_words < 1:
        print(f"import-prompts: --min-words {args.min_words}: give 1 or more.", file=sys.stderr)
        return 1
    voices = [voice for voice in PROMPT_VOICES if voice.folder in args.voices]
    try:
        corpus = load_prompt_voices(voices, args.sounds_dir, args.docs_dir, PromptFilter(min_words=args.min_words))
    except (CorpusBuildError, ImportError) as exc:
        print(f"import-prompts: {exc}", file=sys.stderr)
        return 1
    corpus.save_to_disk(args.out)
    for speaker, count in Counter(corpus["test"]["speaker_id"]).items():
        print(f"{speaker}: {count} prompts")
    print(f"wrote {args.out}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``import-prompts`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser("import-prompts", help="the installed Asterisk prompts as a corpus of real voices",
                                   description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
