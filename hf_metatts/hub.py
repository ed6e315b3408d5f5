"""Uploading base checkpoints and voices to the Hugging Face Hub (``HfApi.create_repo`` + ``create_commit``)."""

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from huggingface_hub import CommitOperationAdd, HfApi

from .errors import CheckpointError

logger = logging.getLogger(__name__)

#: Files a base checkpoint folder must hold before it is pushed.
REQUIRED_BASE_FILES = ("config.json", "model.safetensors", "tokenizer_config.json", "modeling_metatts.py",
                       "configuration_metatts.py")
#: Never uploaded: pickles and editor/OS leftovers.
EXCLUDED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".DS_Store", "~")


def upload_folder(folder: str, repo_id: str, private: bool | None = None, token: str | None = None,
                  commit_message: str = "Upload", revision: str | None = None):
    """Create model repo ``repo_id`` (if needed) and commit every file of ``folder`` (no pickles) in one commit.

    Returns the `huggingface_hub.CommitInfo`.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in sorted(files):
            if name.startswith(".") or name.endswith(EXCLUDED_SUFFIXES):
                logger.info("Not uploading %s.", name)
                continue
            path = os.path.join(root, name)
            operations.append(CommitOperationAdd(path_in_repo=os.path.relpath(path, folder).replace(os.sep, "/"),
                                                 path_or_fileobj=path))
    info = api.create_commit(repo_id=repo_id, operations=operations, commit_message=commit_message,
                             revision=revision, repo_type="model")
    logger.info("Pushed %d files to %s.", len(operations), repo_id)
    return info


def push_base_to_hub(model_or_folder, repo_id: str, processor=None, results: Sequence[Mapping] | None = None,
                     datasets: Sequence[str] | None = None, base_model: str | None = None,
                     private: bool | None = None, token: str | None = None,
                     commit_message: str = "Upload MetaTTS base checkpoint", revision: str | None = None,
                     **card_kwargs):
    """Push a base checkpoint: model weights (vocoder included), config with ``auto_map``, the remote-code files,
    tokenizer, feature extractor, the meta-learner when present, and a card (``results`` fill ``model-index``).

    Args:
        model_or_folder: a `MetaTTSForTextToSpeech` (saved with ``processor``, default: its own) or a folder
            written by ``save_pretrained`` or ``hf-metatts bundle`` (a bundle's card is written again for
            ``repo_id`` from what it was written from: its ``training_runs.json`` and ``card_inputs.json`` give the
            training runs, results, datasets and bars that are not given here).
        card_kwargs: more of :func:`hf_metatts.model_cards.base_model_card`'s arguments, e.g. ``evaluation`` (a
            result of ``benchmarks/default_checkpoint.py``: the card's table of bars).
    Raises:
        CheckpointError: the folder lacks one of `REQUIRED_BASE_FILES` or is a voice.
    """
    from .configuration_metatts import MetaTTSConfig
    from .model_cards import base_model_card, meta_learner_card_fields, read_card_inputs, read_training_runs

    with tempfile.TemporaryDirectory() as staging:
        if isinstance(model_or_folder, (str, os.PathLike)):
            shutil.copytree(model_or_folder, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.bin", "*.pt", "*.pth", "*.pkl", "README.md"))
        else:
            from .voice_adapt import processor_for

            model_or_folder.save_pretrained(staging)
            processor_for(model_or_folder, processor).save_pretrained(staging)
        if os.path.isfile(os.path.join(staging, "voice_config.json")):
            raise CheckpointError(f"{model_or_folder} is a voice: push it with MetaTTSVoice.push_to_hub.")
        missing = [name for name in REQUIRED_BASE_FILES if not os.path.isfile(os.path.join(staging, name))]
        if missing:
            raise CheckpointError(f"{model_or_folder} lacks {missing}: save the model and its processor with "
                                  "save_pretrained (the plugin writes the remote-code files) before pushing.")
        config = MetaTTSConfig.from_pretrained(staging)
        if "training_runs" not in card_kwargs:
            card_kwargs["training_runs"] = read_training_runs(staging)
        bundled = read_card_inputs(staging)  # the same weights: what their card was written from still holds
        results = results if results is not None else bundled.get("results")
        datasets = datasets if datasets is not None else bundled.get("datasets")
        if "evaluation" not in card_kwargs and bundled.get("evaluation"):
            card_kwargs["evaluation"] = bundled["evaluation"]
        from safetensors import safe_open

        with safe_open(os.path.join(staging, "model.safetensors"), framework="pt") as handle:
            num_parameters = sum(_numel(handle.get_slice(key).get_shape()) for key in handle.keys())
        card = base_model_card(config, repo_id, results=results, datasets=datasets, base_model=base_model,
                               **meta_learner_card_fields(staging), num_parameters=num_parameters, **card_kwargs)
        card.save(os.path.join(staging, "README.md"))
        return upload_folder(staging, repo_id, private=private, token=token, commit_message=commit_message,
                             revision=revision)


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def push_to_hub(path: str, repo_id: str, **kwargs):
    """Push a voice folder (it has ``voice_config.json``) or a base checkpoint folder to ``repo_id``."""
    if os.path.isfile(os.path.join(path, "voice_config.json")):
        from .voice import MetaTTSVoice

        push_kwargs = {k: v for k, v in kwargs.items() if k in ("private", "token", "commit_message", "revision")}
        return MetaTTSVoice.from_pretrained(path).push_to_hub(repo_id, **push_kwargs)
    return push_base_to_hub(path, repo_id, **kwargs)


__all__ = ["upload_folder", "push_base_to_hub", "push_to_hub"]
