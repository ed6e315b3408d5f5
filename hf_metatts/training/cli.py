"""``hf-metatts train-vocoder`` (the neural vocoder, on a corpus built by ``hf-metatts build-corpus``),
``hf-metatts meta-train-vocoder`` (that vocoder meta-trained for its adaptation to a voice) and
``hf-metatts train-identity-encoder`` (the speaker encoder of the meta-objective's identity term, on a prepared
corpus)."""

import argparse
import dataclasses

from .vocoder import VocoderTrainingArguments


def _scalar_type(annotation):
    """int / float / str from a dataclass annotation such as ``int`` or ``float | None``."""
    for kind in (int, float, str):
        if annotation is kind or kind in getattr(annotation, "__args__", ()):
            return kind
    return str


def _given(args, arguments_class) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(arguments_class)
            if getattr(args, f.name, None) is not None}


def _add_fields(parser, arguments_class, skip=("dataset_path", "output_dir")) -> None:
    for field in dataclasses.fields(arguments_class):
        if field.name in skip:
            continue
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_scalar_type(field.type),
                            default=None, help=f"default {field.default}")


def _run(args) -> int:
    from .vocoder import train_vocoder

    train_vocoder(VocoderTrainingArguments(**_given(args, VocoderTrainingArguments)))
    return 0


def _run_identity(args) -> int:
    from .identity_encoder import IdentityEncoderTrainingArguments, train_identity_encoder

    train_identity_encoder(IdentityEncoderTrainingArguments(**_given(args, IdentityEncoderTrainingArguments)))
    return 0


def _run_meta_vocoder(args) -> int:
    from .vocoder_meta import MetaVocoderArguments, meta_train_vocoder

    meta_train_vocoder(MetaVocoderArguments(**_given(args, MetaVocoderArguments)))
    return 0


def register_meta_vocoder(subparsers) -> argparse.ArgumentParser:
    """Add ``meta-train-vocoder`` to an argparse subparsers object."""
    from .vocoder_meta import MetaVocoderArguments

    parser = subparsers.add_parser(
        "meta-train-vocoder", help="meta-train the neural vocoder for its adaptation to a voice (first-order MAML)",
        description="Meta-train a checkpoint's iSTFT vocoder over the speakers of a corpus: the inner loop is the "
        "checkpoint's own vocoder adaptation on 5 support clips, the outer loss the adapted vocoder's on other "
        "sentences of the speaker; resumes from the output folder's last checkpoint.",
    )
    parser.add_argument("--dataset", dest="dataset_path", default=None,
                        help="corpus folder with the audio (default data/voices-augmented; its prepared copy is "
                        "<dataset>-prepared unless --prepared-dataset-path)")
    parser.add_argument("--out", dest="output_dir", default=None, help="output folder (default outputs/vocoder_meta)")
    _add_fields(parser, MetaVocoderArguments)
    parser.set_defaults(func=_run_meta_vocoder)
    return parser


def register_identity(subparsers) -> argparse.ArgumentParser:
    """Add ``train-identity-encoder`` to an argparse subparsers object."""
    from .identity_encoder import IdentityEncoderTrainingArguments

    parser = subparsers.add_parser(
        "train-identity-encoder", help="train the speaker encoder of the meta-objective's identity term",
        description="Train a speaker encoder on the log-mels of a prepared corpus (`hf-metatts prepare-corpus`) "
        "and measure it on the validation speakers; meta-training configs name its folder as identity_encoder.",
    )
    parser.add_argument("--dataset", dest="dataset_path", default=None,
                        help="prepared corpus folder (default data/voices-prepared)")
    parser.add_argument("--out", dest="output_dir", default=None,
                        help="output folder (default outputs/identity_encoder)")
    _add_fields(parser, IdentityEncoderTrainingArguments)
    parser.set_defaults(func=_run_identity)
    return parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``train-vocoder``, ``train-identity-encoder``, ``meta-train-vocoder``, ``prepare-corpus``, ``bundle``,
    ``unbundle``, ``average``, ``add-adapters`` and ``centroid-start`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "train-vocoder", help="train the iSTFT neural vocoder on a corpus's audio",
        description="Train the iSTFT-head vocoder (log-mel L1 + multi-resolution STFT losses) on the audio of a "
        "corpus saved by `hf-metatts build-corpus`; resumes from the output folder's last checkpoint.",
    )
    parser.add_argument("--dataset", dest="dataset_path", default=None, help="corpus folder (default data/voices)")
    parser.add_argument("--out", dest="output_dir", default=None, help="output folder (default outputs/vocoder)")
    _add_fields(parser, VocoderTrainingArguments)
    parser.set_defaults(func=_run)
    from .adapters import register as register_adapters
    from .average import register as register_average
    from .bundle import register as register_bundle
    from .centroid_start import register as register_centroid_start
    from .prepare import register as register_prepare
    from .unbundle import register as register_unbundle

    register_prepare(subparsers)
    register_bundle(subparsers)
    register_unbundle(subparsers)
    register_identity(subparsers)
    register_meta_vocoder(subparsers)
    register_average(subparsers)
    register_adapters(subparsers)
    register_centroid_start(subparsers)
    return parser
