"""``hf-metatts train-vocoder``: train the neural vocoder on a corpus built by ``hf-metatts build-corpus``."""

import argparse
import dataclasses

from .vocoder import VocoderTrainingArguments


def _scalar_type(annotation):
    """int / float / str from a dataclass annotation such as ``int`` or ``float | None``."""
    for kind in (int, float, str):
        if annotation is kind or kind in getattr(annotation, "__args__", ()):
            return kind
    return str


def _run(args) -> int:
    from .vocoder import train_vocoder

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(VocoderTrainingArguments)
              if getattr(args, f.name, None) is not None}
    train_vocoder(VocoderTrainingArguments(**values))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``train-vocoder``, ``prepare-corpus`` and ``bundle`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "train-vocoder", help="train the iSTFT neural vocoder on a corpus's audio",
        description="Train the iSTFT-head vocoder (log-mel L1 + multi-resolution STFT losses) on the audio of a "
        "corpus saved by `hf-metatts build-corpus`; resumes from the output folder's last checkpoint.",
    )
    parser.add_argument("--dataset", dest="dataset_path", default=None, help="corpus folder (default data/voices)")
    parser.add_argument("--out", dest="output_dir", default=None, help="output folder (default outputs/vocoder)")
    for field in dataclasses.fields(VocoderTrainingArguments):
        if field.name in ("dataset_path", "output_dir"):
            continue
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_scalar_type(field.type),
                            default=None, help=f"default {field.default}")
    parser.set_defaults(func=_run)
    from .bundle import register as register_bundle
    from .prepare import register as register_prepare

    register_prepare(subparsers)
    register_bundle(subparsers)
    return parser
