"""The column schema shared by the corpus builder and the loaders."""

from __future__ import annotations

from datasets import Audio, Features, List, Value

from .audio import SAMPLING_RATE

__all__ = ["COLUMNS", "corpus_features"]

#: Column order of every split.
COLUMNS = (
    "id", "audio", "text", "phonemes", "speaker_id", "base_speaker", "language", "style", "source",
    "perturbation", "duration", "phone_timings",
)


def corpus_features(sampling_rate: int = SAMPLING_RATE) -> Features:
    """``datasets.Features`` of the corpus: audio at ``sampling_rate`` plus text, task and timing columns."""
    return Features(
        {
            "id": Value("string"),
            "audio": Audio(sampling_rate=sampling_rate),
            "text": Value("string"),
            "phonemes": Value("string"),
            "speaker_id": Value("string"),
            "base_speaker": Value("string"),
            "language": Value("string"),
            "style": Value("string"),
            "source": Value("string"),
            "perturbation": Value("string"),
            "duration": Value("float32"),
            "phone_timings": List({"phone": Value("string"), "start": Value("float32"), "end": Value("float32")}),
        }
    )


def storage_features(sampling_rate: int = SAMPLING_RATE) -> Features:
    """The corpus features with ``audio`` as a plain ``{"bytes", "path"}`` struct.

    ``datasets`` encodes ``Audio`` values through torchcodec even when they are already bytes, so rows are
    written with this schema and then cast (an Arrow-level cast that needs no audio backend).
    """
    features = corpus_features(sampling_rate).copy()
    features["audio"] = {"bytes": Value("binary"), "path": Value("string")}
    return features


def rows_to_dataset(rows: list[dict], sampling_rate: int = SAMPLING_RATE):
    """A ``datasets.Dataset`` of corpus rows (audio already encoded with ``encode_audio``)."""
    from datasets import Dataset

    table = {name: [row[name] for row in rows] for name in COLUMNS}
    return Dataset.from_dict(table, features=storage_features(sampling_rate)).cast(corpus_features(sampling_rate))
