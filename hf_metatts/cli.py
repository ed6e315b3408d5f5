"""The ``hf-metatts`` command. Each sub-command lives in its own module and registers itself here."""

import argparse
import importlib
import json
import logging
import sys

#: Modules with a ``register(subparsers)`` function; a module that is not installed is skipped.
SUBCOMMAND_MODULES = (
    "hf_metatts.data.cli",
    "hf_metatts.data.prompts_cli",
    "hf_metatts.meta.cli",
    "hf_metatts.training.cli",
    "hf_metatts.evaluation.cli",
    "hf_metatts.voice_cli",
    "hf_metatts.demo.cli",
)


def read_text_file(path: str) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped), or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"--text-file {path}: no such file; give the path of a UTF-8 text file, or - to read "
                                "standard input.") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"--text-file {path} is not UTF-8 text ({error.reason} at byte {error.start}): save it as "
                         "UTF-8.") from None


def _synthesize(args) -> int:
    from . import DEFAULT_CHECKPOINT
    from .synthesis import synthesize_to_file

    model = args.model if args.model is not None or args.voice is not None else DEFAULT_CHECKPOINT
    text = args.text if args.text is not None else read_text_file(args.text_file)
    summary = synthesize_to_file(model, text, args.out, language=args.language,
                                 speaking_rate=args.speaking_rate, pitch_shift=args.pitch_shift,
                                 speaker_id=args.speaker_id, voice=args.voice)
    print(json.dumps(summary))
    return 0


def guarded(func):
    """A sub-command's ``func`` that turns the library's input errors (`hf_metatts.errors.MetaTTSError`,
    ``ValueError``, ``OSError``) into a one-line ``error: ...`` message on standard error and exit status 2."""

    def run(args) -> int:
        from .errors import MetaTTSError

        try:
            return func(args)
        except (MetaTTSError, ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def _languages(args) -> int:
    from .tokenization_metatts import supported_languages

    for code, name in sorted(supported_languages().items()):
        print(f"{code}\t{name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-metatts", description="Meta-learned few-shot text-to-speech.")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    subparsers = parser.add_subparsers(dest="command", required=True)

    synth = subparsers.add_parser("synthesize", help="text -> WAV file with a MetaTTS model")
    synth.add_argument("--model", default=None,
                       help="checkpoint folder or Hub id (default: the bundled one, unless --voice names its base)")
    synth.add_argument("--voice", default=None, help="voice folder or Hub id (alone: loads the voice's base)")
    text = synth.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="text to speak; paragraphs are split at sentence ends")
    text.add_argument("--text-file", metavar="PATH",
                      help="read the text to speak from this UTF-8 file ('-': standard input), e.g. a whole chapter")
    synth.add_argument("--language", default=None, help="espeak-ng code (see `hf-metatts languages`)")
    synth.add_argument("--speaking-rate", type=float, default=1.0, help="1.0 normal, 0.8 slower, 1.2 faster")
    synth.add_argument("--pitch-shift", type=float, default=0.0, help="semitones")
    synth.add_argument("--speaker-id", type=int, default=None, help="row of a multi-speaker model's table")
    synth.add_argument("--out", required=True, help="output .wav path")
    synth.set_defaults(func=guarded(_synthesize))

    languages = subparsers.add_parser("languages", help="list the supported espeak-ng language codes")
    languages.set_defaults(func=_languages)

    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
