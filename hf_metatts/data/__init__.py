"""The data layer: the offline multi-speaker corpus builder and loaders for public speech corpora.

- ``build_corpus(out_dir, preset="default")``: synthesise the corpus (espeak-ng, flite, festival voices,
  plus pitch/formant-perturbed voices) into a ``datasets.DatasetDict`` with disjoint task splits.
- ``load_speech_tasks(dataset_or_id, task_column=..., text_column=..., audio_column=...)``: any
  ``datasets`` speech corpus (LibriTTS-R, VCTK, ...) as task splits with the same columns.
- ``decode_audio(value, target_sr=16000)``: any audio value (decoded dict, bytes/path dict, path,
  array) to a mono float32 array at ``target_sr``.
"""

from .audio import SAMPLING_RATE, decode_audio, encode_audio
from .builder import build_corpus
from .errors import (
    CorpusBuildError,
    MissingColumnError,
    NoSentencesError,
    SourceUnavailableError,
    TooFewTasksError,
)
from .loaders import LOADER_PRESETS, ColumnMap, load_speech_tasks, split_tasks
from .perturb import Perturbation, perturb
from .presets import HELDOUT_VOICES, PRESETS, STYLES, CorpusPreset, get_preset
from .report import CorpusReport
from .schema import COLUMNS, corpus_features

__all__ = [
    "COLUMNS",
    "HELDOUT_VOICES",
    "LOADER_PRESETS",
    "PRESETS",
    "SAMPLING_RATE",
    "STYLES",
    "ColumnMap",
    "CorpusBuildError",
    "CorpusPreset",
    "CorpusReport",
    "MissingColumnError",
    "NoSentencesError",
    "Perturbation",
    "SourceUnavailableError",
    "TooFewTasksError",
    "build_corpus",
    "corpus_features",
    "decode_audio",
    "encode_audio",
    "get_preset",
    "load_speech_tasks",
    "perturb",
    "split_tasks",
]
