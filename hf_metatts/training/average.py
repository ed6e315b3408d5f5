"""``hf-metatts average``: one checkpoint whose weights are the (weighted) mean of several training runs.

Runs of the same configuration that continue one start (several seeds, a different shot count, an extra term in
the meta-objective) land in one basin of the loss; the mean of their weights, a *model soup* (Wortsman et al.,
2022, "Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing
inference time"), often adapts better than each of them and costs nothing at adaptation or synthesis time. Both
the acoustic model (``model.safetensors``) and the meta-learner (``meta_learner.safetensors``: Meta-SGD rates or
the Meta-LSTM) are averaged; the processor, the remote-code files and the meta-learner's settings come from the
first run::

    hf-metatts average --models outputs/run_a outputs/run_b --out outputs/soup

Which runs to put in is a choice to make on validation tasks: ``benchmarks/checkpoint_soup.py`` does it
greedily (add a run only when the soup's validation similarity does not drop).
"""

import argparse
import json
import logging
import os

import torch

from .bundle import RUNS_FILE, publish_staged_folder, refuse_taken_output_folder, stage_model_folder

logger = logging.getLogger(__name__)

#: What ``average_checkpoints`` records in the folder it writes: the runs and their weights.
AVERAGE_FILE = "averaged_from.json"
#: Config keys that differ between runs without changing the architecture.
IGNORED_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash")
#: Meta-learner settings that must agree: they define the inner loop the averaged weights are used with (and
#: ``inner_lr`` too for ``maml``, whose one fixed rate it is; Meta-SGD's learned rates are averaged).
INNER_LOOP_KEYS = ("method", "inner_steps", "inner_optimizer", "adapted_parameter_names",
                   "per_step_rates", "zero_shot_start", "global_variance_weight", "meta_lstm_hidden_size",
                   "grad_preprocess_p")


class CheckpointAverageError(ValueError):
    """The runs given to :func:`average_checkpoints` cannot be averaged (too few, different architectures or inner
    loops, bad weights) or the output folder is taken; nothing was written."""


def _normalised_weights(count: int, weights) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise CheckpointAverageError(f"{len(weights)} weights for {count} runs: give one weight per run.")
    if any(not w >= 0 for w in weights) or sum(weights) <= 0:
        raise CheckpointAverageError(f"weights must be >= 0 with a positive sum, got {weights}.")
    return [w / sum(weights) for w in weights]


def _config_differences(first: dict, other: dict) -> list[str]:
    keys = (set(first) | set(other)) - set(IGNORED_CONFIG_KEYS)
    return sorted(k for k in keys if first.get(k) != other.get(k))


def average_state_dicts(states: list[dict[str, torch.Tensor]], weights: list[float],
                        names: list[str]) -> dict[str, torch.Tensor]:
    """The weighted mean of floating-point tensors (computed in float64, stored in each tensor's dtype); every
    other tensor (integer buffers) must be equal in all ``states`` and is kept.

    Raises:
        CheckpointAverageError: the states have different tensor names or shapes, or an integer buffer differs
            (``names`` label the states in the message).
    """
    reference = states[0]
    for name, state in zip(names[1:], states[1:]):
        if set(state) != set(reference):
            missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
            raise CheckpointAverageError(f"{name} has other tensors than {names[0]} (missing {missing[:5]}, extra "
                                         f"{extra[:5]}): only runs of one configuration can be averaged.")
        shapes = [k for k in reference if state[k].shape != reference[k].shape]
        if shapes:
            raise CheckpointAverageError(f"{name} has other shapes than {names[0]} for {shapes[:5]}: only runs of "
                                         "one configuration can be averaged.")
    averaged = {}
    for key, tensor in reference.items():
        if tensor.is_floating_point():
            total = sum(w * state[key].to(torch.float64) for w, state in zip(weights, states))
            averaged[key] = total.to(tensor.dtype)
        elif all(torch.equal(state[key], tensor) for state in states[1:]):
            averaged[key] = tensor.clone()
        else:
            raise CheckpointAverageError(f"The integer tensor {key} differs between the runs; it cannot be averaged.")
    return averaged


def average_checkpoints(model_dirs: list[str], output_dir: str, weights: list[float] | None = None,
                        overwrite: bool = False) -> dict:
    """Write ``output_dir``: a checkpoint with the weighted mean of the weights of ``model_dirs`` (model and
    meta-learner), the processor and meta-learner settings of the first, and ``averaged_from.json``.

    Args:
        model_dirs: two or more checkpoint folders of one model configuration (``config.json`` equal except for
            paths and versions) whose meta-learners, if any, run the same inner loop.
        weights: one non-negative weight per folder (normalised to sum 1); default: the plain mean.
        overwrite: replace ``output_dir`` when it already holds files.
    Returns:
        ``{"files", "weights", "models"}``.
    Raises:
        CheckpointAverageError: fewer than two folders, ``output_dir`` among them or already holding files (without
            ``overwrite``), bad weights, different configurations, tensors or inner loops. All is checked before
            anything is written; the runs are never changed.
    """
    from .. import MetaTTSForTextToSpeech
    from ..meta.head import load_meta_learner

    model_dirs = [str(d) for d in model_dirs]
    if len(model_dirs) < 2:
        raise CheckpointAverageError(f"averaging needs two or more runs, got {model_dirs}.")
    if any(os.path.abspath(d) == os.path.abspath(output_dir) for d in model_dirs):
        raise CheckpointAverageError(f"--out {output_dir} is one of the runs; write the average to a new folder.")
    refuse_taken_output_folder(output_dir, overwrite, CheckpointAverageError)
    weights = _normalised_weights(len(model_dirs), weights)
    models = [MetaTTSForTextToSpeech.from_pretrained(d) for d in model_dirs]
    reference_config = models[0].config.to_dict()
    for directory, model in zip(model_dirs[1:], models[1:]):
        differences = _config_differences(reference_config, model.config.to_dict())
        if differences:
            raise CheckpointAverageError(f"{directory} has another model configuration than {model_dirs[0]} "
                                         f"({', '.join(differences)}): only runs of one configuration can be averaged.")
    heads = [load_meta_learner(d) for d in model_dirs]
    if any(h is None for h in heads) and not all(h is None for h in heads):
        without = [d for d, h in zip(model_dirs, heads) if h is None]
        raise CheckpointAverageError(f"{without} have no meta-learner and the others do: average runs of one kind.")
    if heads[0] is not None:
        keys = INNER_LOOP_KEYS + (("inner_lr",) if heads[0].config.method == "maml" else ())
        for directory, head in zip(model_dirs[1:], heads[1:]):
            differences = [k for k in keys if getattr(head.config, k) != getattr(heads[0].config, k)]
            if differences:
                raise CheckpointAverageError(f"{directory} adapts with another inner loop than {model_dirs[0]} "
                                             f"({', '.join(differences)} differ): average runs of one method.")
    model_state = average_state_dicts([m.state_dict() for m in models], weights, model_dirs)
    head_state = (average_state_dicts([h.state_dict() for h in heads], weights, model_dirs)
                  if heads[0] is not None else None)
    models[0].load_state_dict(model_state, strict=True)
    staging = stage_model_folder(models[0], model_dirs[0], output_dir, extra_files=(RUNS_FILE,))
    if head_state is not None:
        heads[0].load_state_dict(head_state, strict=True)
        heads[0].save_pretrained(staging)
    record = {"models": [{"path": d, "weight": w} for d, w in zip(model_dirs, weights)]}
    with open(os.path.join(staging, AVERAGE_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    publish_staged_folder(staging, output_dir)
    files = sorted(os.listdir(output_dir))
    logger.info("wrote %s: the mean of %d runs (weights %s)", output_dir, len(model_dirs),
                ", ".join(f"{w:.3f}" for w in weights))
    return {"files": files, "weights": weights, "models": model_dirs}


def _run(args) -> int:
    average_checkpoints(args.models, args.out, weights=args.weights, overwrite=args.overwrite)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``average`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "average", help="one checkpoint with the mean weights of several runs of one configuration (a model soup)",
        description="Average the acoustic-model and meta-learner weights of two or more training runs of one "
        "configuration (e.g. continuations of one start with other seeds), into a new checkpoint folder.",
    )
    parser.add_argument("--models", nargs="+", required=True, help="two or more checkpoint folders")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="one weight per model (normalised); default: the plain mean")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it already holds files")
    parser.set_defaults(func=_run)
    return parser
