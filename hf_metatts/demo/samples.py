"""Sample speakers: held-out test speakers of a corpus saved with ``save_to_disk`` (``hf-metatts build-corpus``)."""

import io
import logging
import os
import tempfile

logger = logging.getLogger(__name__)

SAMPLE_CLIPS = 5


def _test_split(corpus: str, split: str = "test"):
    import datasets

    loaded = datasets.load_from_disk(corpus)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"The corpus {corpus} has no {split!r} split (it has {', '.join(loaded)}).")
        loaded = loaded[split]
    return loaded.cast_column("audio", datasets.Audio(decode=False))


def sample_speakers(corpus: str | None, column: str = "speaker_id") -> list[str]:
    """The speakers of the corpus's test split, sorted; [] without a corpus or when it cannot be read."""
    if not corpus:
        return []
    try:
        return sorted(set(_test_split(corpus)[column]))
    except (OSError, ValueError, KeyError, FileNotFoundError) as error:
        logger.warning("No sample speakers from %s: %s", corpus, error)
        return []


def sample_clips(corpus: str, speaker: str, count: int = SAMPLE_CLIPS, column: str = "speaker_id"):
    """Write ``count`` clips of ``speaker`` to a temporary folder -> ``(paths, transcripts)``."""
    import soundfile

    rows = _test_split(corpus).filter(lambda value: value == speaker, input_columns=[column])
    if len(rows) == 0:
        raise ValueError(f"The corpus has no test speaker {speaker!r}.")
    folder = tempfile.mkdtemp(prefix="metatts-sample-")
    paths, texts = [], []
    safe = "".join(char if char.isalnum() else "_" for char in speaker)
    for index, row in enumerate(rows.select(range(min(count, len(rows))))):
        audio = row["audio"]
        data, rate = soundfile.read(io.BytesIO(audio["bytes"])) if audio.get("bytes") else soundfile.read(
            audio["path"])
        path = os.path.join(folder, f"{safe}_{index + 1}.wav")
        soundfile.write(path, data, rate)
        paths.append(path)
        texts.append(" ".join(row["text"].split()))
    return paths, texts
