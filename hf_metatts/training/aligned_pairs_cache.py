"""A folder that keeps the aligned model's log-mels of ``aligned_clips`` between runs (``--pairs-cache``).

Building aligned pairs adapts the aligned model to every speaker of a split and reads its clips on their recorded
timing: minutes for the default corpus, the same minutes in every ``train-vocoder --aligned-model`` and
``meta-train-vocoder`` run that reads the same corpus with the same checkpoint. With a cache folder the first run
saves the log-mels (``aligned-pairs-<key>.npz``, with the key's parts in ``aligned-pairs-<key>.json``) and later
runs load them. The audio is not stored: it is read from the corpus again, as without the cache.

The key is a SHA-256 over everything the log-mels depend on: the library's version and source code (every ``.py``
file of the package, so an edit of the model or the adaptation code is a new key), the torch version, the aligned
model's config and every weight, the meta-learner's config and tensors, both corpus splits (their `datasets`
fingerprints and the paths, sizes and modification times of their Arrow files) and the settings of
``aligned_clips``. A change of any of them is a new file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Bumped when the file layout changes; part of the key.
CACHE_FORMAT = 1
#: The package's own folder, whose ``.py`` files are part of the key (the bundled checkpoints' copies left out).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PREFIX = "aligned-pairs-"


class PairsCacheError(ValueError):
    """A pairs-cache file that does not hold what its key promises; the message says what to do."""


def split_identity(rows) -> dict:
    """What identifies a loaded `datasets.Dataset` split on disk: its fingerprint and its Arrow files (path, size,
    modification time), so a corpus rebuilt in place or read from another folder gets a new identity."""
    files = []
    for entry in getattr(rows, "cache_files", None) or []:
        path = entry.get("filename", "")
        stat = os.stat(path) if path and os.path.exists(path) else None
        files.append([os.path.abspath(path) if path else path, stat.st_size if stat else None,
                      stat.st_mtime_ns if stat else None])
    return {"fingerprint": getattr(rows, "_fingerprint", None), "rows": len(rows), "files": files}


def source_digest(package_dir: str = PACKAGE_DIR) -> str:
    """``"sha256:<hex>"`` over the relative paths and bytes of every ``.py`` file under ``package_dir`` (sorted),
    except the remote-code copies inside ``checkpoints/``: any edit of the library's code changes it."""
    digest = hashlib.sha256()
    for root, folders, files in os.walk(package_dir):
        folders[:] = sorted(f for f in folders if f not in ("checkpoints", "__pycache__"))
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, package_dir).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read() + b"\0")
    return "sha256:" + digest.hexdigest()


def pairs_key(model, meta_learner, prepared_rows, audio_rows, settings: dict) -> tuple[str, dict]:
    """-> (hex key, its parts) for the pairs ``aligned_clips`` builds with these inputs and ``settings`` (its
    keyword arguments: split, shots, clips per speaker, seed, batch size, start fraction, with_support)."""
    from .. import __version__
    from ..voice_base import tensor_digest

    parts = {
        "format": CACHE_FORMAT,
        "library_version": __version__,
        "library_source": source_digest(),
        "torch_version": torch.__version__,
        "model_config": model.config.to_diff_dict(),
        "model_weights": tensor_digest(model.state_dict()),
        "meta_learner": None if meta_learner is None else {
            "config": meta_learner.config.to_dict(), "weights": tensor_digest(meta_learner.state_dict())},
        "prepared_split": split_identity(prepared_rows),
        "audio_split": split_identity(audio_rows),
        "settings": settings,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32], parts


class PairsCache:
    """Aligned log-mels saved under ``folder``, one ``.npz`` per key (see the module docstring)."""

    def __init__(self, folder: str):
        self.folder = folder

    def _path(self, key: str, suffix: str) -> str:
        return os.path.join(self.folder, f"{_PREFIX}{key}{suffix}")

    def load(self, key: str) -> list[tuple[str, str, str, np.ndarray]] | None:
        """-> ``[(id, speaker, role, log-mel (T, M)), ...]`` in the order they were saved, or None when not cached."""
        path = self._path(key, ".npz")
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, speakers, roles = data["ids"].tolist(), data["speakers"].tolist(), data["roles"].tolist()
                lengths, mels = data["mel_lengths"], data["mels"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise PairsCacheError(f"{path} cannot be read ({error}): delete it and run again.") from error
        if not len(ids) == len(speakers) == len(roles) == len(lengths) or int(lengths.sum()) != len(mels):
            raise PairsCacheError(f"{path} is damaged (its arrays disagree): delete it and run again.")
        ends = np.cumsum(lengths)
        logger.info("aligned pairs: %d clips loaded from %s", len(ids), path)
        return [(row_id, speaker, role, mels[end - length: end])
                for row_id, speaker, role, length, end in zip(ids, speakers, roles, lengths, ends)]

    def save(self, key: str, parts: dict, clips: list) -> str:
        """Save ``clips`` (`AlignedClip`) under ``key`` and the key's ``parts`` beside it; -> the ``.npz`` path. The
        file is written under a temporary name of this process first, so a stopped run or a second run saving the
        same key leaves no half file."""
        os.makedirs(self.folder, exist_ok=True)
        path, temporary = self._path(key, ".npz"), self._path(key, f".{os.getpid()}.tmp.npz")
        mel_bins = clips[0].mel.shape[1] if clips else 0
        np.savez(temporary, ids=np.array([c.id for c in clips], dtype=str),
                 speakers=np.array([c.speaker for c in clips], dtype=str),
                 roles=np.array([c.role for c in clips], dtype=str),
                 mel_lengths=np.array([len(c.mel) for c in clips], dtype=np.int64),
                 mels=np.concatenate([c.mel for c in clips]) if clips else np.zeros((0, mel_bins), np.float32))
        os.replace(temporary, path)
        with open(self._path(key, ".json"), "w", encoding="utf-8") as handle:
            json.dump(parts, handle, indent=2, sort_keys=True, default=str)
        logger.info("aligned pairs: %d clips saved to %s", len(clips), path)
        return path


__all__ = ["CACHE_FORMAT", "PairsCache", "PairsCacheError", "pairs_key", "split_identity"]
