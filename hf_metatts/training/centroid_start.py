"""``hf-metatts centroid-start``: a checkpoint whose voice starts from the mean of its support encoder's voices.

A checkpoint meta-trained with a zero-shot start (``zero_shot_start``) begins every adaptation from the voice its
support encoder reads off the support clips. Plain MAML begins from one voice, the same for every speaker: the
model's own values of the adapted parameter set. In such a checkpoint those values are left over from before the
encoder existed, far from any voice the decoder has since learned to speak with. This command writes a copy
whose adapted set holds the centroid of the encoder's voices instead, the mean over the training speakers of a
prepared corpus (``shots`` clips each, drawn with ``seed``), and whose meta-learner starts from it
(``zero_shot_start`` off), so ``model.adapt(clips, method="maml")`` takes its gradient steps from one fixed voice and
the support encoder is not used. The folder can be measured as it is or meta-trained further as a plain-start run
(``model_name_or_path``):

    hf-metatts centroid-start --model outputs/default_speaker_embedding_maml_adam \\
        --dataset data/voices-augmented-prepared --inner-lr 0.02 --global-variance-weight 0.3 \\
        --out outputs/centroid_start

Every weight outside the adapted set is copied bit for bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import numpy as np
import torch

logger = logging.getLogger(__name__)


class CentroidStartError(ValueError):
    """A checkpoint or corpus the centroid start cannot be built from; the message says what to change."""


#: What ``centroid_voice`` averages over the speakers: the encoder's voices, or (an encoder on a speaker encoder)
#: the speaker embeddings, whose unit mean the encoder's head then turns into one voice.
AVERAGES = ("voices", "embeddings")


def check_average(average: str) -> None:
    """Raise CentroidStartError unless ``average`` is one of :data:`AVERAGES`."""
    if average not in AVERAGES:
        raise CentroidStartError(f"average={average!r} is unknown: choose one of {', '.join(AVERAGES)}.")


def speaker_supports(rows, shots: int, seed: int, pad_token_id: int):
    """Yield one collated batch of ``shots`` rows per speaker of ``rows`` (sorted speakers; each speaker's rows drawn
    with ``[seed, speaker number]``); speakers with fewer rows are skipped."""
    from ..data_collator import MetaTTSDataCollator
    from .vocoder_aligned import rows_by_speaker

    by_speaker = rows_by_speaker(rows["speaker_id"])
    collate = MetaTTSDataCollator(pad_token_id=pad_token_id)
    for number, speaker in enumerate(sorted(by_speaker)):
        indices = by_speaker[speaker]
        if len(indices) >= shots:
            chosen = np.random.default_rng([seed, number]).permutation(indices)[:shots].tolist()
            yield collate([rows[i] for i in chosen])


def mean_of(readings) -> tuple[dict[str, torch.Tensor], int]:
    """``{name: tensor}`` readings -> (their mean, computed in float64 by
    :func:`~hf_metatts.training.average.average_state_dicts`; how many). ``({}, 0)`` for none."""
    from .average import average_state_dicts

    readings = list(readings)
    if not readings:
        return {}, 0
    labels = [f"reading {number}" for number in range(len(readings))]
    return average_state_dicts(readings, [1.0 / len(readings)] * len(readings), labels), len(readings)


def centroid_voice(model, meta_learner, rows, shots: int = 5, seed: int = 0,
                   average: str = "voices") -> tuple[dict[str, torch.Tensor], int]:
    """The centroid over the speakers of ``rows`` (a prepared split with ``speaker_id``, ``input_ids``, ``labels``)
    of what the support encoder reads off ``shots`` of each speaker's rows (:func:`speaker_supports`) ->
    (``{name: tensor}`` of the adapted set, the number of speakers averaged). ``average="voices"`` is the mean of
    the encoder's voices; ``"embeddings"`` (a ``speaker_embedding`` encoder only) is the encoder's voice for the
    unit mean of the speakers' embeddings ``(D,)``: the output of the mean rather than the mean of the outputs.

    Raises:
        CentroidStartError: no speaker has ``shots`` rows, ``average`` is unknown, or ``"embeddings"`` is asked of
            a model whose support encoder has no speaker embedding.
    """
    from ..meta import adapt_parameters
    from ..modeling_blocks import split_flat_changes

    check_average(average)
    encoder = model.voice_encoder
    if average == "embeddings" and not hasattr(encoder, "embed"):
        raise CentroidStartError("average='embeddings' needs a support encoder on a speaker encoder "
                                 "(config.voice_encoder_type='speaker_embedding'); this model's has no embedding: "
                                 "average the voices instead.")
    supports = speaker_supports(rows, shots, seed, model.config.pad_token_id)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if average == "voices":
                voice, count = mean_of(adapt_parameters(model, batch, method="zero_shot", steps=0,
                                                        meta_learner=meta_learner) for batch in supports)
            else:
                mean, count = mean_of({"embedding": encoder.embed(batch["labels"], batch["labels_attention_mask"])}
                                      for batch in supports)
                if count:
                    embedding = torch.nn.functional.normalize(mean["embedding"], dim=-1)
                    changes = split_flat_changes(encoder.head(embedding), encoder.names, encoder.shapes)
                    voice = {name: model.get_parameter(name) + changes[name] if name in changes
                             else model.get_parameter(name).clone()
                             for name in meta_learner.config.adapted_parameter_names}
    finally:
        model.train(was_training)
    if not count:
        raise CentroidStartError(f"No speaker has {shots} rows: lower --shots.")
    return voice, count


def write_centroid_start(model_dir: str, prepared_path: str, output_dir: str, split: str = "train", shots: int = 5,
                         seed: int = 0, inner_lr: float | None = None, global_variance_weight: float | None = None,
                         overwrite: bool = False, average: str = "voices") -> dict:
    """Write ``output_dir``: the checkpoint of ``model_dir`` with its adapted set at :func:`centroid_voice` of
    ``split`` of the prepared corpus ``prepared_path``, its processor, and its meta-learner with ``zero_shot_start``
    off (and ``inner_lr`` / ``global_variance_weight`` replaced where given). Returns ``{"files", "speakers",
    "moved"}`` (``moved``: per adapted tensor, the L2 distance from the values it replaced).

    Raises:
        CentroidStartError: ``model_dir`` has no meta-learner trained with ``zero_shot_start`` or no support
            encoder, ``prepared_path`` is no prepared corpus with that split, or ``average`` does not suit the
            model (see :func:`centroid_voice`; all checked before writing).
        RunFolderExistsError: ``output_dir`` holds files and ``overwrite`` is False (left as it was).
    """
    from .. import MetaTTSForTextToSpeech
    from ..meta import load_meta_learner
    from ..meta.head import read_meta_config, write_meta_config
    from .bundle import (
        check_adaptation_overrides,
        publish_staged_folder,
        refuse_taken_output_folder,
        stage_model_folder,
    )
    from .unbundle import RunFolderExistsError
    from .vocoder_aligned import AlignedCorpusError, prepared_split

    check_average(average)
    refuse_taken_output_folder(output_dir, overwrite, RunFolderExistsError)
    meta_learner = load_meta_learner(model_dir) if os.path.isdir(model_dir) else None
    if meta_learner is None or not meta_learner.config.zero_shot_start:
        raise CentroidStartError(f"{model_dir} has no meta-learner trained with zero_shot_start: the centroid is "
                                 "the mean of a support encoder's voices, so give a checkpoint that has one.")
    check_adaptation_overrides(model_dir, inner_lr, global_variance_weight)
    try:
        rows = prepared_split(prepared_path, split)
    except AlignedCorpusError as error:
        raise CentroidStartError(str(error)) from error
    model = MetaTTSForTextToSpeech.from_pretrained(model_dir)
    centroid, speakers = centroid_voice(model, meta_learner, rows, shots, seed, average)
    own = dict(model.named_parameters())
    moved = {}
    with torch.no_grad():
        for name, value in centroid.items():
            moved[name] = round(float((own[name] - value).norm()), 6)
            own[name].copy_(value)
    staging = stage_model_folder(model, model_dir, output_dir, inner_lr, global_variance_weight)
    config = read_meta_config(staging)
    write_meta_config(staging, dataclasses.replace(config, zero_shot_start=False, zero_shot_loss_weight=0.0))
    publish_staged_folder(staging, output_dir)
    files = sorted(os.listdir(output_dir))
    logger.info("wrote %s: the adapted set at the centroid (average=%s) of the encoder's reading of %d speakers of "
                "%s (%s)", output_dir, average, speakers, prepared_path, split)
    return {"files": files, "speakers": speakers, "moved": moved}


def _run(args) -> int:
    write_centroid_start(args.model, args.dataset, args.out, split=args.split, shots=args.shots, seed=args.seed,
                         inner_lr=args.inner_lr, global_variance_weight=args.global_variance_weight,
                         overwrite=args.overwrite, average=args.average)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``centroid-start`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "centroid-start", help="a zero-shot checkpoint whose voice starts from the mean of its encoder's voices",
        description="Copy a checkpoint meta-trained with a zero-shot start, its adapted parameter set replaced by "
        "the mean of the support encoder's voices over a prepared corpus's speakers, and its meta-learner set to "
        "start from it (plain MAML from one voice, no support encoder at adaptation).",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder with a zero-shot-start meta-learner")
    parser.add_argument("--dataset", required=True, help="prepared corpus folder (hf-metatts prepare-corpus)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--split", default="train", help="split whose speakers are averaged (default train)")
    parser.add_argument("--shots", type=int, default=5, help="clips of each speaker read by the encoder (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="draw of each speaker's clips (default 0)")
    parser.add_argument("--inner-lr", type=float, default=None,
                        help="step size to write into the meta-learner (a fixed-rate maml one); default: its own")
    parser.add_argument("--global-variance-weight", type=float, default=None,
                        help="global-variance weight to write into the meta-learner; default: its own")
    parser.add_argument("--average", choices=AVERAGES, default="voices",
                        help="voices: the mean of the encoder's voices (default); embeddings: the encoder's voice for "
                        "the unit mean of the speakers' embeddings (a speaker_embedding encoder only)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it already holds files")
    parser.set_defaults(func=_run)
    return parser


__all__ = ["AVERAGES", "CentroidStartError", "centroid_voice", "register", "write_centroid_start"]
