"""Audio helpers shared by the corpus builder and the loaders.

Audio is stored as 16-bit FLAC bytes in ``{"bytes": ..., "path": ...}`` form inside a
``datasets.Audio(sampling_rate=16000)`` column, so it reads back with or without a working
``datasets`` audio backend (``decode_audio`` handles both).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import soundfile as sf

from ..feature_extraction_metatts import resample as _resample
from ..feature_extraction_metatts import to_mono_float32
from .errors import InvalidAudioError

__all__ = ["SAMPLING_RATE", "decode_audio", "encode_audio", "resample", "to_mono_float32"]

SAMPLING_RATE = 16000
_STORAGE_FORMAT = "FLAC"
_STORAGE_SUBTYPE = "PCM_16"


def resample(array: np.ndarray, orig_sr: int, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Resample a mono float32 array with soxr (high quality); a no-op when the rates match."""
    return _resample(array, orig_sr, target_sr)


def _read(source: Any, what: str) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise InvalidAudioError(
            f"cannot decode audio from {what}: {exc}. Supply WAV/FLAC/OGG bytes or a path, "
            "or a decoded {'array', 'sampling_rate'} dict."
        ) from exc
    return data, int(sr)


def decode_audio(value: Any, target_sr: int = SAMPLING_RATE, sampling_rate: int | None = None) -> np.ndarray:
    """Decode any common audio value to a mono float32 array at ``target_sr``.

    Accepts a decoded ``{"array", "sampling_rate"}`` dict (what ``datasets`` yields when its audio
    backend works), an undecoded ``{"bytes", "path"}`` dict (``Audio(decode=False)``), a file path,
    raw encoded bytes, or an array (then ``sampling_rate`` gives its rate, default ``target_sr``).
    An object with ``get_all_samples()`` (a torchcodec decoder) is read through it.

    Raises:
        InvalidAudioError: the value cannot be decoded (names what was given and what works).
    """
    if value is None:
        raise InvalidAudioError("audio value is None: the row has no audio")
    if hasattr(value, "get_all_samples"):  # torchcodec AudioDecoder from datasets>=4
        samples = value.get_all_samples()
        return resample(to_mono_float32(samples.data.numpy()), int(samples.sample_rate), target_sr)
    if isinstance(value, dict):
        if value.get("array") is not None:
            sr = value.get("sampling_rate") or sampling_rate
            if sr is None:
                raise InvalidAudioError("decoded audio dict has an 'array' but no 'sampling_rate'")
            return resample(to_mono_float32(value["array"]), int(sr), target_sr)
        if value.get("bytes"):
            data, sr = _read(io.BytesIO(value["bytes"]), f"bytes (path {value.get('path')!r})")
            return resample(to_mono_float32(data), sr, target_sr)
        if value.get("path"):
            return decode_audio(os.fspath(value["path"]), target_sr)
        raise InvalidAudioError(
            f"audio dict has none of 'array', 'bytes' or 'path' (keys: {sorted(value)}); cannot decode it"
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        data, sr = _read(io.BytesIO(bytes(value)), "raw bytes")
        return resample(to_mono_float32(data), sr, target_sr)
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.exists(path):
            raise InvalidAudioError(f"audio file {path!r} does not exist")
        data, sr = _read(path, f"file {path!r}")
        return resample(to_mono_float32(data), sr, target_sr)
    if isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__"):
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else value
        return resample(to_mono_float32(arr), int(sampling_rate or target_sr), target_sr)
    raise InvalidAudioError(f"cannot decode audio of type {type(value).__name__}")


def encode_audio(array: np.ndarray, sampling_rate: int = SAMPLING_RATE, path: str | None = None) -> dict:
    """Encode a mono float array as 16-bit FLAC bytes in ``{"bytes", "path"}`` form for an Audio column."""
    buf = io.BytesIO()
    clipped = np.clip(np.asarray(array, dtype=np.float32), -1.0, 1.0)
    sf.write(buf, clipped, int(sampling_rate), format=_STORAGE_FORMAT, subtype=_STORAGE_SUBTYPE)
    return {"bytes": buf.getvalue(), "path": path}
