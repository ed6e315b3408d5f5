"""A folder of one speaker's recordings, read as ``(audio path, transcript)`` pairs for ``model.adapt``.

Three layouts are read, the ones such folders come in:

- **sidecar transcripts**: each audio file (:data:`AUDIO_SUFFIXES`: WAV, FLAC, Ogg Vorbis or Opus, MP3, AIFF)
  beside a same-named ``.txt`` file that holds its words (``clip1.wav`` + ``clip1.txt``); a file libsndfile cannot
  decode (:data:`UNDECODABLE_SUFFIXES`, e.g. ``.m4a``) is refused, not skipped;
- **the `datasets` audiofolder layout**: a ``metadata.csv`` (comma-separated, with a header) or ``metadata.jsonl``
  (one JSON object a line) whose ``file_name`` column gives each audio file's path relative to the folder and
  whose ``text_column`` (default ``text``) its transcript, and, where it has a ``language_column`` (default
  ``language``), each clip's espeak-ng language code;
- **the LJSpeech layout**: a ``metadata.csv`` of ``id|transcript`` or ``id|transcript|normalised transcript``
  rows without a header, the audio in ``wavs/<id>.wav`` (or ``<id>.wav`` beside the metadata); the normalised
  transcript is read where a row has one.

Text files are read as UTF-8, with or without the byte-order mark that spreadsheet programs write, and with either
line ending. A folder with a metadata file is read through it alone; other files in it are left out. Every problem
raises :class:`ClipFolderError` (a ``ValueError``) naming the file and what to change, before any clip is read.
"""

from __future__ import annotations

import csv
import json
import logging
import os

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
#: Audio formats libsndfile cannot decode: a sidecar folder holding one is refused rather than read without it.
UNDECODABLE_SUFFIXES = (".m4a", ".aac", ".mp4", ".wma", ".webm", ".amr")
#: The metadata files of the audiofolder and LJSpeech layouts.
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
#: The audiofolder layout's column of audio paths.
FILE_NAME_COLUMN = "file_name"
#: Where an LJSpeech row's audio lies, relative to the folder (``{id}`` is the row's first field).
LJSPEECH_AUDIO_PATHS = (os.path.join("wavs", "{id}.wav"), "{id}.wav")


class ClipFolderError(ValueError):
    """A clip folder that cannot be read as pairs of audio and transcript; the message says what to change."""


#: Files of a folder written by `datasets`' ``save_to_disk``, which is a dataset, not a clip folder.
DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def is_saved_dataset(folder) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return any(os.path.isfile(os.path.join(folder, marker)) for marker in DATASET_MARKERS)


def is_clip_folder(source) -> bool:
    """Whether ``source`` names a folder (a path string or ``os.PathLike``) that is not a saved dataset."""
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(source) and not is_saved_dataset(source)


def resolve_clip_source(clips, text_column: str = "text", language_column: str = "language"):
    """``clips`` as ``model.adapt`` reads them: a path is read as a clip folder (:func:`read_clip_folder`), anything
    else (pairs, triples, a `datasets.Dataset`) is returned as it is.

    Raises:
        ClipFolderError: a path that is not a folder, or a folder written by ``save_to_disk`` (a dataset, which
            ``datasets.load_from_disk`` opens), besides what :func:`read_clip_folder` raises.
    """
    if not isinstance(clips, (str, os.PathLike)):
        return clips
    if os.path.isdir(clips) and is_saved_dataset(clips):
        raise ClipFolderError(f"{os.fspath(clips)} is a saved dataset, not a clip folder: pass "
                              f"datasets.load_from_disk({os.fspath(clips)!r}) (one split of it), or use "
                              "hf-metatts adapt --clips with --split.")
    return read_clip_folder(clips, text_column, language_column)


def read_clip_folder(folder: str | os.PathLike, text_column: str = "text",
                     language_column: str = "language") -> list[tuple]:
    """``(audio path, transcript)`` for each clip of ``folder``, in the order of its metadata file, else sorted by
    file name; ``(audio path, transcript, language)`` where an audiofolder metadata file has ``language_column``
    (an empty cell: None, the caller's default language).

    Args:
        folder: a folder in one of the three layouts of this module.
        text_column: the transcript column of an audiofolder ``metadata.csv`` / ``metadata.jsonl``.
        language_column: its column of espeak-ng language codes, where it has one.

    Raises:
        ClipFolderError: the folder does not exist or holds no clip; an audio file has no transcript; a metadata
            file lacks a column, names a file that is not there, or has a row it cannot read; the folder holds
            both metadata files.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ClipFolderError(f"{folder} is not a folder: give a folder of audio files and their transcripts, a "
                              "list of (audio, transcript) pairs or a datasets.Dataset.")
    present = [name for name in METADATA_FILES if os.path.isfile(os.path.join(folder, name))]
    if len(present) > 1:
        raise ClipFolderError(f"{folder} holds both {' and '.join(present)}: keep the one that lists the clips.")
    if not present:
        pairs = _sidecar_pairs(folder)
    elif present[0] == "metadata.jsonl":
        pairs = _audiofolder_pairs(folder, "metadata.jsonl", _jsonl_rows(folder), text_column, language_column)
    else:
        pairs = _metadata_csv_pairs(folder, text_column, language_column)
    if not pairs:
        raise ClipFolderError(f"{folder} holds no clip: put audio files ({', '.join(AUDIO_SUFFIXES)}) there, each "
                              "with a same-named .txt transcript, or list them in a metadata.csv.")
    logger.info("%s: %d clips (%s)", folder, len(pairs), present[0] if present else "sidecar .txt transcripts")
    return pairs


def _sidecar_pairs(folder: str) -> list[tuple[str, str]]:
    pairs = []
    for name in sorted(os.listdir(folder)):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() in UNDECODABLE_SUFFIXES:
            raise ClipFolderError(f"Clip {os.path.join(folder, name)} is {suffix.lower()}, which cannot be decoded "
                                  f"here: convert it to WAV or FLAC (e.g. ffmpeg -i {name} {stem}.wav), or move it "
                                  "out of the folder.")
        if suffix.lower() not in AUDIO_SUFFIXES:
            continue
        transcript = os.path.join(folder, stem + ".txt")
        if not os.path.isfile(transcript):
            raise ClipFolderError(f"Clip {os.path.join(folder, name)} has no transcript: write the words spoken in it "
                                  f"to {transcript}.")
        with open(transcript, encoding="utf-8-sig") as handle:
            pairs.append((os.path.join(folder, name), handle.read().strip()))
    return pairs


def _metadata_csv_pairs(folder: str, text_column: str, language_column: str) -> list[tuple]:
    path = os.path.join(folder, "metadata.csv")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        header = next(csv.reader([first]), [])
        if FILE_NAME_COLUMN in (cell.strip() for cell in header):
            return _audiofolder_pairs(folder, "metadata.csv", list(csv.DictReader(handle)), text_column,
                                      language_column)
        if "|" in first:
            return _ljspeech_pairs(folder, handle.read().splitlines())
    raise ClipFolderError(f"{path} is neither an audiofolder metadata file (a header with a {FILE_NAME_COLUMN!r} "
                          "column) nor LJSpeech metadata (id|transcript rows): its first line is "
                          f"{first.strip()[:80]!r}.")


def _jsonl_rows(folder: str) -> list[dict]:
    path = os.path.join(folder, "metadata.jsonl")
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ClipFolderError(f"{path}, line {number}, is not JSON ({error.msg}): write one JSON object a "
                                      "line.") from None
            if not isinstance(row, dict):
                raise ClipFolderError(f"{path}, line {number}, is not a JSON object: write one object a line, e.g. "
                                      f'{{"{FILE_NAME_COLUMN}": "clip1.wav", "text": "Its transcript."}}.')
            rows.append(row)
    return rows


def _audiofolder_pairs(folder: str, metadata: str, rows: list[dict], text_column: str,
                       language_column: str) -> list[tuple]:
    path = os.path.join(folder, metadata)
    columns = sorted({key.strip() for row in rows for key in row if key is not None})
    for column in (FILE_NAME_COLUMN, text_column):
        if rows and column not in columns:
            hint = " (pass text_column= / --text-column)" if column == text_column else ""
            raise ClipFolderError(f"{path} has no {column!r} column{hint}; its columns: {columns}.")
    pairs = []
    for number, row in enumerate(rows, start=2 if metadata == "metadata.csv" else 1):
        row = {str(key).strip(): value for key, value in row.items() if key is not None}
        audio = os.path.join(folder, str(row.get(FILE_NAME_COLUMN) or ""))
        if not row.get(FILE_NAME_COLUMN) or not os.path.isfile(audio):
            raise ClipFolderError(f"{path}, line {number}, names {row.get(FILE_NAME_COLUMN)!r}, which is not a file "
                                  f"in {folder}: give each clip's path relative to the folder.")
        text = row.get(text_column)
        pair = (audio, text.strip() if isinstance(text, str) else text)
        if language_column in columns:
            language = row.get(language_column)
            pair += (str(language).strip() or None if language is not None else None,)
        pairs.append(pair)
    return pairs


def _ljspeech_pairs(folder: str, lines: list[str]) -> list[tuple[str, str]]:
    path = os.path.join(folder, "metadata.csv")
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            raise ClipFolderError(f"{path}, line {number}, is not an id|transcript row: {line.strip()[:80]!r}.")
        clip_id = fields[0].strip()
        candidates = [os.path.join(folder, pattern.format(id=clip_id)) for pattern in LJSPEECH_AUDIO_PATHS]
        audio = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
        if audio is None:
            raise ClipFolderError(f"{path}, line {number}: clip {clip_id!r} has no audio file; put it at "
                                  f"{' or '.join(candidates)}.")
        normalised = fields[2].strip() if len(fields) > 2 else ""
        pairs.append((audio, normalised or fields[1].strip()))
    return pairs


__all__ = ["AUDIO_SUFFIXES", "ClipFolderError", "DATASET_MARKERS", "UNDECODABLE_SUFFIXES", "is_clip_folder",
           "is_saved_dataset", "read_clip_folder"]
