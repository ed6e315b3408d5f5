"""Turning a speech dataset into model inputs: `prepare_dataset` (for ``datasets.map``) and
`MetaTTSDataCollator` (pads a list of prepared rows into a batch)."""

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .data.durations import token_durations
from .feature_extraction_metatts import SILENCE_LOG_MEL

logger = logging.getLogger(__name__)

MODEL_COLUMNS = ("input_ids", "labels", "pitch")


def prepare_example(row: dict, processor, text_column="text", audio_column="audio", language_column="language",
                    phonemes_column="phonemes", phone_timings_column="phone_timings",
                    default_language="en-us") -> dict:
    """One dataset row -> ``input_ids`` ``(N,)``, ``labels`` ``(T, M)`` log-mel and ``pitch`` ``(T,)`` log-F0,
    plus ``durations`` ``(N,)`` frames per token when the row has phone timings (empty when they cannot be
    matched to the tokens: the model's aligner then finds that clip's durations).

    Uses the row's precomputed IPA ``phonemes`` when present (no second phonemization), else phonemizes
    ``text`` in the row's ``language``.
    """
    phonemes = row.get(phonemes_column)
    if phonemes:
        encoded = processor.tokenizer(phonemes, is_phonemized=True)
    else:
        encoded = processor.tokenizer(row[text_column], language=row.get(language_column) or default_language)
    features = processor.feature_extractor(row[audio_column], return_pitch=True)
    prepared = {
        "input_ids": encoded["input_ids"],
        "labels": features["input_features"][0],
        "pitch": features["pitch"][0],
    }
    if phone_timings_column in row:
        prepared["durations"] = timing_durations(prepared["input_ids"], row[phone_timings_column],
                                                 len(prepared["labels"]), processor,
                                                 row.get(language_column) or default_language)
    return prepared


def timing_durations(input_ids, phone_timings, num_frames: int, processor, language: str) -> list[int]:
    """Frames per token ``(N,)`` from a clip's phone timings, or ``[]`` when they are missing or do not match."""
    if not phone_timings:
        return []
    extractor = processor.feature_extractor
    tokens = processor.tokenizer.convert_ids_to_tokens(list(input_ids))
    durations = token_durations(tokens, phone_timings, num_frames, extractor.sampling_rate / extractor.hop_length,
                                language)
    return durations or []


def prepare_dataset(dataset, processor, num_proc: int | None = None, load_from_cache_file: bool | None = None,
                    **column_names):
    """``dataset.map`` of `prepare_example`: adds ``input_ids``, ``labels``, ``pitch`` (and ``durations`` where the
    rows have phone timings), keeps other columns (``speaker_id``, ``language``, ``style``...) and drops the audio.
    ``column_names`` go to `prepare_example`; ``load_from_cache_file=False`` recomputes instead of reusing a
    cached result (the cache key does not change when this package's code does)."""
    audio_column = column_names.get("audio_column", "audio")
    if audio_column in dataset.column_names:
        from datasets import Audio

        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    return dataset.map(
        prepare_example,
        fn_kwargs={"processor": processor, **column_names},
        remove_columns=[audio_column],
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc="Tokenizing text and extracting mels",
    )


@dataclass
class MetaTTSDataCollator:
    """Pads prepared rows into a batch of tensors for `MetaTTSForTextToSpeech`.

    Returns ``input_ids`` / ``attention_mask`` ``(B, N)``, ``labels`` ``(B, T, M)``, ``labels_attention_mask``
    ``(B, T)``, ``pitch`` ``(B, T)`` when the rows have it, ``speaker_ids`` ``(B,)`` when the rows have
    ``speaker_ids`` (the multi-speaker baseline), and ``durations`` ``(B, N)`` when some rows have token durations
    from phone timings (rows without them are -1: the model's aligner fills those in).
    """

    pad_token_id: int = 0
    label_pad_value: float = SILENCE_LOG_MEL

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("Cannot collate an empty list of rows.")
        ids = [torch.as_tensor(row["input_ids"], dtype=torch.long) for row in rows]
        mels = [torch.as_tensor(np.asarray(row["labels"], dtype=np.float32)) for row in rows]
        batch = {
            "input_ids": torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
            "attention_mask": torch.nn.utils.rnn.pad_sequence(
                [torch.ones(len(i), dtype=torch.long) for i in ids], batch_first=True
            ),
            "labels": torch.nn.utils.rnn.pad_sequence(mels, batch_first=True, padding_value=self.label_pad_value),
            "labels_attention_mask": torch.nn.utils.rnn.pad_sequence(
                [torch.ones(len(m), dtype=torch.long) for m in mels], batch_first=True
            ),
        }
        if all(row.get("pitch") is not None for row in rows):
            pitches = [torch.as_tensor(np.asarray(row["pitch"], dtype=np.float32)) for row in rows]
            batch["pitch"] = torch.nn.utils.rnn.pad_sequence(pitches, batch_first=True)
        if any(row.get("durations") for row in rows):
            batch["durations"] = torch.nn.utils.rnn.pad_sequence(
                [torch.as_tensor(row["durations"], dtype=torch.long) if row.get("durations")
                 else torch.full((len(i),), -1, dtype=torch.long) for row, i in zip(rows, ids)],
                batch_first=True,
            )
        if all("speaker_ids" in row for row in rows):
            batch["speaker_ids"] = torch.as_tensor([int(row["speaker_ids"]) for row in rows], dtype=torch.long)
        return batch
