"""``--pairs-cache``: aligned vocoder pairs saved once and loaded by later runs, the same pairs either way; a change
of the model, the settings or the corpus builds them again; a damaged file is refused and left as it was."""

from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_fixtures import aligned_corpora, speaker_split
from datasets import DatasetDict

import hf_metatts.training.vocoder_aligned as vocoder_aligned
from hf_metatts import MetaTTSForTextToSpeech
from hf_metatts.training.aligned_pairs_cache import PairsCacheError
from hf_metatts.training.vocoder import SUMMARY_NAME
from hf_metatts.training.vocoder_aligned import aligned_clips

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A corpus (train: 2 speakers x 4 clips; validation: 2 x 3), its prepared copy, and a tiny checkpoint."""
    return aligned_corpora(tmp_path_factory.mktemp("pairs_cache"), 4, 3)


@pytest.fixture
def model(corpora):
    return MetaTTSForTextToSpeech.from_pretrained(corpora.model).eval()


@pytest.fixture
def adaptations(monkeypatch):
    """Counts the voices `aligned_clips` adapts (one per speaker when it builds the pairs, none when it loads)."""
    calls = []
    adapt = vocoder_aligned.default_adaptation
    monkeypatch.setattr(vocoder_aligned, "default_adaptation", lambda *a, **k: calls.append(1) or adapt(*a, **k))
    return calls


def pairs_of(model, corpora, cache_dir, **settings):
    values = dict(shots=2, clips_per_speaker=2, with_support=True)
    values.update(settings)
    return aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", cache_dir=cache_dir, **values)


def assert_same_pairs(first, second):
    assert [(p.id, p.speaker, p.role) for p in first] == [(p.id, p.speaker, p.role) for p in second]
    for one, other in zip(first, second):
        assert one.mel.dtype == other.mel.dtype == np.float32
        np.testing.assert_array_equal(one.mel, other.mel)
        np.testing.assert_array_equal(one.audio, other.audio)


def cache_files(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_the_second_run_loads_the_same_pairs_without_adapting(model, corpora, tmp_path, adaptations):
    uncached = pairs_of(model, corpora, None)
    assert len(adaptations) == 2 and not cache_files(tmp_path / "cache")
    built = pairs_of(model, corpora, str(tmp_path / "cache"))
    assert len(adaptations) == 4  # built: both speakers adapted again, then saved
    files = cache_files(tmp_path / "cache")
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    loaded = pairs_of(model, corpora, str(tmp_path / "cache"))
    assert len(adaptations) == 4  # loaded: no speaker adapted
    assert_same_pairs(built, uncached)
    assert_same_pairs(loaded, uncached)
    assert {p.role for p in loaded} == {"support", "target"}
    parts = json.loads((tmp_path / "cache" / files[0]).read_text())
    assert parts["settings"] == {"split": "train", "shots": 2, "clips_per_speaker": 2, "seed": 0, "batch_size": 4,
                                 "start_fraction": 0.0, "with_support": True}
    assert parts["model_weights"].startswith("sha256:") and parts["prepared_split"]["rows"] == 8


def test_other_settings_weights_or_corpus_files_build_the_pairs_again(model, corpora, tmp_path, adaptations):
    cache = str(tmp_path / "cache")
    pairs_of(model, corpora, cache)
    pairs_of(model, corpora, cache, seed=1)
    pairs_of(model, corpora, cache, with_support=False)
    assert len(adaptations) == 6 and len(cache_files(cache)) == 6
    with torch.no_grad():
        model.mel_head.bias.add_(0.01)  # a weight outside the adapted set changes what the model reads
    changed = pairs_of(model, corpora, cache)
    assert len(adaptations) == 8 and len(cache_files(cache)) == 8
    assert not np.array_equal(changed[0].mel, pairs_of(model.__class__.from_pretrained(corpora.model).eval(),
                                                       corpora, cache)[0].mel)
    assert len(adaptations) == 8  # the unchanged model's pairs were still there
    copy = tmp_path / "corpus_copy"
    shutil.copytree(corpora.corpus, copy)
    moved = SimpleNamespace(corpus=str(copy), prepared=corpora.prepared)
    pairs_of(model, moved, cache)  # another folder: its own key
    pairs_of(model, moved, cache)
    assert len(adaptations) == 10
    shutil.rmtree(copy)  # rebuilt in place: the same folder, new files
    DatasetDict(train=speaker_split(2, 4, 0), validation=speaker_split(2, 3, 100)).save_to_disk(str(copy))
    pairs_of(model, moved, cache)
    assert len(adaptations) == 12 and len(cache_files(cache)) == 12


def test_a_damaged_cache_file_is_refused_and_left_alone(model, corpora, tmp_path, adaptations):
    cache = tmp_path / "cache"
    pairs_of(model, corpora, str(cache))
    npz = next(name for name in cache_files(cache) if name.endswith(".npz"))
    with np.load(cache / npz) as data:
        arrays = dict(data)
    arrays["mel_lengths"] = arrays["mel_lengths"][:-1]
    np.savez(cache / npz, **arrays)
    damaged = (cache / npz).read_bytes()
    with pytest.raises(PairsCacheError, match="arrays disagree.*delete it and run again"):
        pairs_of(model, corpora, str(cache))
    assert (cache / npz).read_bytes() == damaged and len(cache_files(cache)) == 2
    (cache / npz).write_bytes(damaged[: len(damaged) // 2])  # cut short, as by a full disk
    with pytest.raises(PairsCacheError, match="cannot be read.*delete it and run again"):
        pairs_of(model, corpora, str(cache))
    assert len((cache / npz).read_bytes()) == len(damaged) // 2 and len(cache_files(cache)) == 2
    assert len(adaptations) == 2  # the two speakers adapted once, when the pairs were built; not again


def test_the_vocoder_commands_take_a_pairs_cache(corpora, tmp_path, adaptations):
    from hf_metatts.cli import main as cli_main

    cache = tmp_path / "cache"
    argv = ["train-vocoder", "--dataset", corpora.corpus, "--aligned-model", corpora.model, "--init-from",
            corpora.model, "--aligned-shots", "2", "--aligned-clips-per-speaker", "2",
            "--aligned-validation-clips-per-speaker", "1", "--segment-frames", "8", "--batch-size", "2",
            "--max-steps", "2", "--warmup-steps", "1", "--eval-steps", "2", "--save-steps", "2", "--threads", "1",
            "--pairs-cache", str(cache)]
    assert cli_main(argv + ["--out", str(tmp_path / "first")]) == 0
    assert len(adaptations) == 4 and len(cache_files(cache)) == 4  # train and validation pairs, saved
    assert cli_main(argv + ["--out", str(tmp_path / "second")]) == 0
    assert len(adaptations) == 4  # both loaded
    first, second = (json.loads((tmp_path / name / SUMMARY_NAME).read_text()) for name in ("first", "second"))
    assert first["arguments"]["pairs_cache"] == str(cache)
    assert first["validation"] == second["validation"]  # the same pairs, the same seed: the same run
    meta = ["meta-train-vocoder", "--dataset", corpora.corpus, "--out", str(tmp_path / "meta"), "--aligned-model",
            corpora.model, "--shots", "2", "--query-clips-per-speaker", "2", "--validation-query-clips-per-speaker",
            "1", "--episodes", "1", "--inner-steps", "1", "--inner-learning-rate", "1e-3", "--query-batch-size", "2",
            "--eval-episodes", "1", "--threads", "1", "--pairs-cache", str(cache)]
    assert cli_main(meta) == 0
    assert len(adaptations) == 8 and len(cache_files(cache)) == 8  # with support clips: pairs of their own


def test_the_key_follows_the_library_source_but_not_the_bundled_copies(tmp_path, model, corpora):
    from hf_metatts.training.aligned_pairs_cache import pairs_key, source_digest

    package = tmp_path / "package"
    (package / "meta").mkdir(parents=True)
    (package / "checkpoints" / "default").mkdir(parents=True)
    (package / "modeling.py").write_text("A = 1\n")
    (package / "meta" / "maml.py").write_text("B = 2\n")
    (package / "checkpoints" / "default" / "modeling.py").write_text("A = 1\n")
    first = source_digest(str(package))
    (package / "checkpoints" / "default" / "modeling.py").write_text("A = 3\n")
    (package / "notes.txt").write_text("not code")
    assert source_digest(str(package)) == first  # the remote-code copies and other files are not the library
    (package / "meta" / "maml.py").write_text("B = 3\n")
    edited = source_digest(str(package))
    assert edited != first and edited.startswith("sha256:")
    (package / "meta" / "maml.py").rename(package / "meta" / "moved.py")
    assert source_digest(str(package)) not in (first, edited)  # a renamed file is another library too
    rows = vocoder_aligned.prepared_split(corpora.prepared, "train")
    key, parts = pairs_key(model, None, rows, rows, {"seed": 0})
    assert parts["library_source"] == source_digest()
    assert key == pairs_key(model, None, rows, rows, {"seed": 0})[0]
