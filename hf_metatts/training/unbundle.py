"""``hf-metatts unbundle``: turn a bundled checkpoint back into a meta-training run folder that speaks through
Griffin-Lim.

A bundle owns a neural vocoder trained on the corpus, while the training-run folders that the bar harness
compares (fine-tuning, Meta-SGD, Meta-LSTM) speak through Griffin-Lim. To continue meta-training from the bundle
(``model_name_or_path``) and measure the result like for like, the run folder needs the bundle's acoustic model,
processor and meta-learner with Griffin-Lim in place of the vocoder, and the adaptation settings the model was
meta-trained with in place of the shipped ones:

    hf-metatts unbundle --model hf_metatts/checkpoints/default \
        --out outputs/default_speaker_embedding_maml_adam --inner-lr 0.03 --global-variance-weight 0

Nothing of the bundle changes; the acoustic model's weights are copied bit for bit.
"""

import argparse
import logging
import os

from .bundle import (
    RUNS_FILE,
    check_adaptation_overrides,
    publish_staged_folder,
    refuse_taken_output_folder,
    stage_model_folder,
)

logger = logging.getLogger(__name__)


class RunFolderExistsError(FileExistsError):
    """The output folder of ``unbundle`` already holds files; choose another or pass ``overwrite``."""


def unbundle_checkpoint(bundle_dir: str, output_dir: str, inner_lr: float | None = None,
                        global_variance_weight: float | None = None, overwrite: bool = False) -> dict:
    """Write ``output_dir``: the model of ``bundle_dir`` with ``vocoder_type="griffin_lim"`` (no vocoder weights),
    its processor, its meta-learner (with ``inner_lr`` / ``global_variance_weight`` replaced where given) and its
    ``training_runs.json``. Returns ``{"files", "num_parameters"}``.

    Raises:
        RunFolderExistsError: ``output_dir`` holds files and ``overwrite`` is False (it is left as it was).
        BundleConfigError: ``inner_lr`` for a folder without a fixed-rate ``maml`` meta-learner, or not positive;
            ``global_variance_weight`` for a folder without a meta-learner, or negative (checked before writing).
    """
    from .. import MetaTTSForTextToSpeech
    from ..modeling_vocoder import build_vocoder

    refuse_taken_output_folder(output_dir, overwrite, RunFolderExistsError)
    check_adaptation_overrides(bundle_dir, inner_lr, global_variance_weight)
    model = MetaTTSForTextToSpeech.from_pretrained(bundle_dir)
    model.config.vocoder_type = "griffin_lim"
    model.vocoder = build_vocoder(model.config)
    staging = stage_model_folder(model, bundle_dir, output_dir, inner_lr, global_variance_weight,
                                 extra_files=(RUNS_FILE,))
    publish_staged_folder(staging, output_dir)
    files = sorted(os.listdir(output_dir))
    num_parameters = sum(p.numel() for p in model.parameters())
    logger.info("wrote %s (%d parameters, Griffin-Lim vocoder): %s", output_dir, num_parameters, files)
    return {"files": files, "num_parameters": num_parameters}


def _run(args) -> int:
    unbundle_checkpoint(args.model, args.out, inner_lr=args.inner_lr,
                        global_variance_weight=args.global_variance_weight, overwrite=args.overwrite)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``unbundle`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "unbundle", help="a bundled checkpoint as a meta-training run folder (Griffin-Lim, no vocoder)",
        description="Copy a bundle's acoustic model, processor and meta-learner into a run folder that speaks "
        "through Griffin-Lim, to continue meta-training from it or to measure it like the other training runs.",
    )
    parser.add_argument("--model", required=True,
                        help="bundled checkpoint folder (e.g. hf_metatts/checkpoints/default)")
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--inner-lr", type=float, default=None,
                        help="step size to write into the meta-learner (a fixed-rate maml one), e.g. the one it was "
                        "meta-trained with; default: the bundle's")
    parser.add_argument("--global-variance-weight", type=float, default=None,
                        help="global-variance weight to write into the meta-learner; default: the bundle's")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it already holds files")
    parser.set_defaults(func=_run)
    return parser
