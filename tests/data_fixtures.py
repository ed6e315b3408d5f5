"""Helpers for the data-layer tests: small speech-like clips and datasets with public corpus schemas."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, Features, Value

from hf_metatts.data.sentences import fortune_files

requires_fortunes = pytest.mark.skipif(
    not fortune_files("en"), reason="Debian fortunes not installed (scripts/install_synthesizers.sh)"
)
requires_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")


def voiced_clip(seconds: float = 1.0, f0: float = 120.0, sr: int = 24000, seed: int = 0) -> np.ndarray:
    """A speech-like harmonic signal with an amplitude envelope (float32, peak about 0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    x = x * env + 0.01 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def wav_bytes(array: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, array, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


LIBRITTS_R_FEATURES = {
    "text_normalized": Value("string"),
    "text_original": Value("string"),
    "speaker_id": Value("string"),
    "path": Value("string"),
    "chapter_id": Value("string"),
    "id": Value("string"),
}


def libritts_r_rows(n_speakers: int = 6, per_speaker: int = 5, sr: int = 24000) -> list[dict]:
    """Rows with the LibriTTS-R schema (mythicinfinity/libritts_r): 24 kHz clips of several speakers."""
    rows = []
    for s in range(n_speakers):
        for u in range(per_speaker):
            clip = voiced_clip(0.6 + 0.1 * u, f0=90 + 15 * s, sr=sr, seed=s * 100 + u)
            uid = f"{100 + s}_{2000 + s}_{u:06d}_{u:06d}"
            rows.append({
                "audio": {"bytes": wav_bytes(clip, sr), "path": f"{uid}.wav"},
                "text_normalized": f"Speaker {s} reads sentence number {u} aloud.",
                "text_original": f"Speaker {s} reads sentence {u} aloud.",
                "speaker_id": str(100 + s), "path": f"{uid}.wav", "chapter_id": str(2000 + s), "id": uid,
            })
    return rows


def libritts_r_dataset(rows: list[dict] | None = None, sr: int = 24000) -> Dataset:
    """An undecoded LibriTTS-R-shaped ``Dataset`` whose ``audio`` column is an ``Audio`` feature."""
    rows = rows if rows is not None else libritts_r_rows(sr=sr)
    raw = Features({"audio": {"bytes": Value("binary"), "path": Value("string")}, **LIBRITTS_R_FEATURES})
    table = {k: [r[k] for r in rows] for k in raw}
    return Dataset.from_dict(table, features=raw).cast_column("audio", Audio(sampling_rate=sr))


def decoded_dataset(rows: list[dict], sr: int = 24000) -> Dataset:
    """The same rows with audio already decoded: ``{"array", "sampling_rate"}`` dicts (not an Audio feature)."""
    decoded = []
    for r in rows:
        array, rate = sf.read(io.BytesIO(r["audio"]["bytes"]), dtype="float32")
        decoded.append({**r, "audio": {"array": array.tolist(), "sampling_rate": rate, "path": r["path"]}})
    return Dataset.from_list(decoded)


def speaker_row_order(speaker_ids: list[str], speaker: str, speaker_number: int, seed: int = 0) -> list[int]:
    """The rows of ``speaker`` (the ``speaker_number``-th in sorted order) in the shuffled order that the aligned
    vocoder pairs draw them in: support rows first, then the rows they read (written out here, not imported, so
    that a change of that order fails the tests)."""
    rows = [index for index, s in enumerate(speaker_ids) if s == speaker]
    return np.random.default_rng([seed, speaker_number]).permutation(rows).tolist()


def speaker_split(speakers: int, per_speaker: int, first_seed: int, sr: int = 16000) -> Dataset:
    """A corpus split of ``speakers`` voiced speakers (f0 110, 150, ... Hz) x ``per_speaker`` short "hello" clips
    (ids ``clip<first_seed + i>``, FLAC-encoded at ``sr``)."""
    from hf_metatts.data import encode_audio

    rows = []
    for index in range(speakers * per_speaker):
        speaker = index % speakers
        clip = voiced_clip(0.5 + 0.05 * (index % 3), f0=110.0 + 40.0 * speaker, sr=sr, seed=first_seed + index)
        rows.append({"id": f"clip{first_seed + index}", "text": "hello", "phonemes": "həloʊ",
                     "speaker_id": f"speaker{speaker}", "language": "en-us",
                     "audio": encode_audio(clip, sr, path=f"clip{first_seed + index}.flac")})
    return Dataset.from_list(rows).cast_column("audio", Audio(sampling_rate=sr))


def aligned_corpora(root, train_per_speaker: int, validation_per_speaker: int):
    """Under ``root``: a corpus of 2 speakers (train: ``train_per_speaker`` clips each, ids from 0; validation:
    ``validation_per_speaker`` each, ids from 100), its prepared copy, and a tiny checkpoint that owns a (random)
    iSTFT vocoder -> a namespace with ``corpus``, ``prepared``, ``model`` (folder paths) and ``root``."""
    from types import SimpleNamespace

    import torch
    from datasets import DatasetDict
    from tiny_models import save_tiny_checkpoint

    from hf_metatts.training.prepare import prepare_corpus

    corpus = root / "corpus"
    DatasetDict(train=speaker_split(2, train_per_speaker, 0),
                validation=speaker_split(2, validation_per_speaker, 100)).save_to_disk(str(corpus))
    prepare_corpus(str(corpus), str(root / "corpus-prepared"))
    torch.manual_seed(0)
    save_tiny_checkpoint(root / "model", vocoder_type="istft")
    return SimpleNamespace(corpus=str(corpus), prepared=str(root / "corpus-prepared"), model=str(root / "model"),
                           root=root)
