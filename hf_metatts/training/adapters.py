"""``hf-metatts add-adapters``: give a trained checkpoint low-rank adapters in its decoder, without changing what it
says or how it sounds, so that meta-training can continue with a larger adapted set.

Each decoder block gets ``lora_a`` ``(H, r)`` (random) and ``lora_b`` ``(r, H)`` (zeros): their product adds to the
block's feed-forward output, so with ``lora_b = 0`` the model computes exactly what it computed before. Unlike the
conditional norms' biases (one offset and scale per channel, whatever is said), the adapter's update depends on the
hidden state, i.e. on what is being said: a voice can change how each sound is coloured, not only the average.

The adapters join the adapted set when ``config.adapted_parameters`` names them (the default set does:
``decoder.layers.*.lora_*``). A meta-learner saved with the checkpoint is widened to match: its Meta-SGD rates
for the parameters it already adapted are kept, the new adapters get ``adapter_rate`` (default: the meta-learner's
initial rate); maml and Meta-LSTM meta-learners only record the new names. Continue with ``hf-metatts meta-train``
from the written folder::

    hf-metatts add-adapters --model outputs/run --lora-rank 4 --out outputs/run_lora4
"""

import argparse
import dataclasses
import logging
import os

import torch

from .bundle import RUNS_FILE, publish_staged_folder, refuse_taken_output_folder, stage_model_folder

logger = logging.getLogger(__name__)

#: The adapted-set pattern that selects the decoder adapters.
ADAPTER_PATTERN = "decoder.layers.*.lora_*"
#: Largest adapter rank accepted (``MetaTTSConfig`` checks the same bound).
MAX_LORA_RANK = 256


class AdapterError(ValueError):
    """:func:`add_decoder_adapters` cannot widen this checkpoint (bad rank, adapters already there, output folder
    taken); nothing was written."""


def widened_model(model, lora_rank: int, seed: int = 0):
    """A copy of ``model`` with rank-``lora_rank`` decoder adapters (``lora_b`` zero: same outputs) whose adapted
    set includes them. ``model`` is unchanged.

    Raises:
        AdapterError: ``lora_rank`` is not in [1, 256], or the model already has adapters.
    """
    if not isinstance(lora_rank, int) or not 1 <= lora_rank <= MAX_LORA_RANK:
        raise AdapterError(f"--lora-rank must be an integer in [1, {MAX_LORA_RANK}], got {lora_rank!r}.")
    if model.config.lora_rank:
        raise AdapterError(f"The model already has rank-{model.config.lora_rank} decoder adapters; add adapters to a "
                           "checkpoint without them (config.lora_rank = 0).")
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.lora_rank = lora_rank
    if ADAPTER_PATTERN not in config.adapted_parameters:
        config.adapted_parameters = list(config.adapted_parameters) + [ADAPTER_PATTERN]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        widened = model.__class__(config)
    finally:
        torch.random.set_rng_state(generator_state)
    missing, unexpected = widened.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(".lora_" not in name for name in missing):
        raise AdapterError(f"The widened model does not fit the weights (missing {missing[:5]}, unexpected "
                           f"{unexpected[:5]}): re-save the checkpoint with this version first.")
    if hasattr(model.voice_encoder, "speaker_encoder"):
        widened.voice_encoder.speaker_encoder.requires_grad_(False)
    return widened.train(model.training)


def widened_meta_learner(head, names: list[str], shapes: dict[str, torch.Size], adapter_rate: float | None = None):
    """A meta-learner over ``names`` (a superset of ``head``'s adapted names): learned tensors kept, the new
    parameters' Meta-SGD rates set to ``adapter_rate`` (default: the initial rate, ``meta_sgd_lr_init`` or
    ``inner_lr``). ``head`` is unchanged."""
    from ..meta.head import MetaLearnerHead, _key

    old = list(head.config.adapted_parameter_names)
    if any(name not in names for name in old):
        raise AdapterError(f"The widened adapted set lost {[n for n in old if n not in names][:5]}.")
    init = head.config.inner_lr if head.config.meta_sgd_lr_init is None else head.config.meta_sgd_lr_init
    rate = float(init if adapter_rate is None else adapter_rate)
    config = dataclasses.replace(head.config, adapted_parameter_names=list(names))
    widened = MetaLearnerHead(config, shapes)
    with torch.no_grad():
        for name in names:
            key = _key(name)
            if key in widened.inner_lrs:
                if name in old:
                    widened.inner_lrs[key].copy_(head.inner_lrs[key])
                else:
                    widened.inner_lrs[key].fill_(rate)
        if head.meta_lstm is not None:
            widened.meta_lstm.load_state_dict(head.meta_lstm.state_dict())
    return widened


def add_decoder_adapters(model_dir: str, output_dir: str, lora_rank: int, adapter_rate: float | None = None,
                         seed: int = 0, overwrite: bool = False) -> dict:
    """Write ``output_dir``: the checkpoint of ``model_dir`` with rank-``lora_rank`` decoder adapters in its model
    and adapted set, its meta-learner (if any) widened to them, its processor and training record.

    Returns:
        ``{"files", "adapter_parameters", "adapted_names"}``.
    Raises:
        AdapterError: bad rank or ``adapter_rate``, adapters already there, ``output_dir`` equal to ``model_dir``
            or holding files without ``overwrite``. Checked before anything is written; ``model_dir`` is never
            changed.
    """
    from .. import MetaTTSForTextToSpeech
    from ..meta.head import load_meta_learner

    if os.path.abspath(model_dir) == os.path.abspath(output_dir):
        raise AdapterError(f"--out {output_dir} is the checkpoint itself; write the widened one to a new folder.")
    refuse_taken_output_folder(output_dir, overwrite, AdapterError)
    if adapter_rate is not None and not 0 < float(adapter_rate) < float("inf"):
        raise AdapterError(f"--adapter-rate must be a finite number > 0, got {adapter_rate}.")
    model = MetaTTSForTextToSpeech.from_pretrained(model_dir)
    widened = widened_model(model, lora_rank, seed=seed)
    names = widened.adapted_parameter_names()
    parameters = dict(widened.named_parameters())
    head = load_meta_learner(model_dir)
    if head is not None:  # widened before staging: a refusal leaves no partial folder
        head = widened_meta_learner(head, names, {name: parameters[name].shape for name in names}, adapter_rate)
    staging = stage_model_folder(widened, model_dir, output_dir, extra_files=(RUNS_FILE,))
    if head is not None:  # replaces the copied meta-learner files
        head.save_pretrained(staging)
    publish_staged_folder(staging, output_dir)
    added = [name for name in parameters if ".lora_" in name]
    logger.info("wrote %s: rank-%d decoder adapters (%d tensors, %d values) added to %s", output_dir, lora_rank,
                len(added), sum(parameters[name].numel() for name in added), model_dir)
    return {"files": sorted(os.listdir(output_dir)), "adapter_parameters": added, "adapted_names": names}


def _run(args) -> int:
    add_decoder_adapters(args.model, args.out, args.lora_rank, adapter_rate=args.adapter_rate, seed=args.seed,
                         overwrite=args.overwrite)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``add-adapters`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "add-adapters", help="give a trained checkpoint low-rank decoder adapters (same outputs) for a larger "
        "adapted set",
        description="Copy a checkpoint with rank-r low-rank adapters added to its decoder blocks (zero-initialised: "
        "the model's outputs do not change) and to its adapted set; a saved meta-learner keeps its learned rates and "
        "gets rates for the adapters. Continue meta-training from the written folder.",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder (without adapters)")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--lora-rank", type=int, required=True, help="adapter rank r (1-256)")
    parser.add_argument("--adapter-rate", type=float, default=None,
                        help="Meta-SGD rate of the new adapters (default: the meta-learner's initial rate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the adapters' random down-projection")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it already holds files")
    parser.set_defaults(func=_run)
    return parser
