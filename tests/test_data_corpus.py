"""The corpus builder on the tiny preset: splits, held-out voices, sentences, schema, report, resume."""

from __future__ import annotations

import io
import json
from collections import defaultdict

import datasets
import numpy as np
import pytest
import soundfile as sf
from data_fixtures import requires_flite, requires_fortunes

from hf_metatts.data import (
    HELDOUT_VOICES,
    CorpusBuildError,
    build_corpus,
    corpus_features,
    decode_audio,
    get_preset,
)
from hf_metatts.data import builder as builder_module
from hf_metatts.data.builder import MANIFEST, REPORT
from hf_metatts.data.cli import main as cli_main
from hf_metatts.data.cli import register

pytestmark = requires_fortunes

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    report = build_corpus(out, "tiny", num_workers=2)
    return out, report, datasets.load_from_disk(str(out))


def _column_sets(dd, column):
    return {s: set(dd[s][column]) for s in SPLITS}


def test_splits_are_disjoint_by_task_and_by_source_voice(tiny_corpus):
    _, _, dd = tiny_corpus
    assert set(dd) == set(SPLITS)
    for column in ("speaker_id", "base_speaker"):
        sets = _column_sets(dd, column)
        assert all(sets[s] for s in SPLITS)
        assert not sets["train"] & sets["validation"]
        assert not sets["train"] & sets["test"]
        assert not sets["validation"] & sets["test"]


def test_perturbed_voices_stay_in_the_split_of_their_source(tiny_corpus):
    _, _, dd = tiny_corpus
    split_of_base = {}
    for split in SPLITS:
        for spk, base, pert in zip(dd[split]["speaker_id"], dd[split]["base_speaker"], dd[split]["perturbation"]):
            assert split_of_base.setdefault(base, split) == split
            assert (pert != "") == (spk != base)
            if pert:
                assert spk == f"{base}~{pert}"


@requires_flite
def test_heldout_voices_and_their_perturbations_only_in_test(tiny_corpus):
    _, _, dd = tiny_corpus
    for split in ("train", "validation"):
        assert not set(dd[split]["base_speaker"]) & set(HELDOUT_VOICES)
    test_speakers = set(dd["test"]["speaker_id"])
    assert "flite:awb" in test_speakers
    assert any(s.startswith("flite:awb~") for s in test_speakers)
    assert "flite:kal16" in set(dd["train"]["speaker_id"]) | set(dd["validation"]["speaker_id"])


def test_no_sentence_in_two_splits_and_sentences_are_clean(tiny_corpus):
    _, _, dd = tiny_corpus
    texts = _column_sets(dd, "text")
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    for split in SPLITS:
        for text in dd[split]["text"]:
            assert 3 <= len(text.split()) <= 25
            assert text[-1] in ".!?"


def test_columns_and_sample_rate_as_documented(tiny_corpus):
    _, _, dd = tiny_corpus
    expected = corpus_features()
    for split in SPLITS:
        assert dd[split].features == expected
        assert dd[split].features["audio"].sampling_rate == 16000
    rows = dd["train"].cast_column("audio", datasets.Audio(decode=False)).select(range(5))
    for row in rows:
        assert sf.info(io.BytesIO(row["audio"]["bytes"])).samplerate == 16000
        audio = decode_audio(row["audio"])
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(audio.size / 16000 - row["duration"]) < 1e-3
        assert row["phonemes"].strip() and row["language"] and row["style"] == "neutral"
        timings = row["phone_timings"]
        assert timings, "espeak and flite report phone timings"
        starts = [t["start"] for t in timings]
        assert starts == sorted(starts)
        assert all(0 <= t["start"] <= t["end"] <= row["duration"] + 1e-3 for t in timings)


def test_languages_sources_and_task_sizes(tiny_corpus):
    _, report, dd = tiny_corpus
    preset = get_preset("tiny")
    assert {"en-us", "cs"} <= set(dd["train"]["language"])
    assert {s.split(":")[0] for s in dd["train"]["source"]} >= {"espeak"}
    for split in SPLITS:
        counts = defaultdict(int)
        for spk in dd[split]["speaker_id"]:
            counts[spk] += 1
        assert min(counts.values()) >= preset.min_utterances
    ids = [i for s in SPLITS for i in dd[s]["id"]]
    assert len(ids) == len(set(ids))


def test_report_counts_match_the_dataset(tiny_corpus):
    out, report, dd = tiny_corpus
    saved = json.loads((out / REPORT).read_text())
    assert json.loads((out / MANIFEST).read_text())["status"] == "complete"
    for split in SPLITS:
        s = saved["splits"][split]
        assert s["utterances"] == len(dd[split])
        assert s["tasks"] == len(set(dd[split]["speaker_id"]))
        assert s["hours"] == pytest.approx(sum(dd[split]["duration"]) / 3600, abs=1e-3)
        assert sum(v["utterances"] for v in s["by_language"].values()) == len(dd[split])
        assert sum(v["utterances"] for v in s["by_source"].values()) == len(dd[split])
    assert "espeak" in saved["sources"]
    assert "train" in report.table() and "tasks" in report.table()


def test_rerun_of_a_finished_build_returns_its_report_and_cli_prints_table(tiny_corpus, capsys):
    out, report, dd = tiny_corpus
    assert cli_main(["--preset", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for split in SPLITS:
        assert split in printed
    assert f"{report.splits['train']['utterances']:>8}" in printed
    assert len(datasets.load_from_disk(str(out))["train"]) == len(dd["train"])


def test_other_settings_into_a_finished_build_are_refused(tiny_corpus):
    out, _, _ = tiny_corpus
    with pytest.raises(CorpusBuildError, match="overwrite"):
        build_corpus(out, "tiny", task_column="style", num_workers=0)


def test_out_dir_with_foreign_content_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CorpusBuildError, match="not empty"):
        build_corpus(tmp_path, "tiny", num_workers=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_register_adds_build_corpus_subcommand():
    import argparse

    parser = argparse.ArgumentParser(prog="hf-metatts")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["build-corpus", "--preset", "tiny", "--out", "x", "--task-column", "language",
                              "--holdout-language", "cs"])
    assert args.preset == "tiny" and args.task_column == "language" and args.holdout_language == "cs"
    assert callable(args.func)


def _small_preset():
    return get_preset("tiny").replace(
        espeak_voices={"en-us": ("m1", "m3", "f1", "f3", "m5", "f5")}, flite_voices=(), festival_voices=(),
        perturbations=(), utterances_per_task=4, min_utterances=3, voice_fractions=(0.34, 0.33, 0.33),
    )


def test_a_rebuild_renders_the_same_clips_whatever_the_number_of_workers(tiny_corpus, tmp_path):
    """espeak-ng's state and noise would make a clip depend on what its worker rendered before (the breathy
    variants most); every batch renders from a fresh state with seeded noise, so builds agree byte for byte."""
    _, _, two_workers = tiny_corpus
    build_corpus(tmp_path / "again", "tiny", num_workers=0)
    in_process = datasets.load_from_disk(str(tmp_path / "again"))
    assert any(name.startswith("espeak:en-us+f5") for name in two_workers["train"]["speaker_id"])  # breathy
    for split in SPLITS:
        first, second = (dd[split].cast_column("audio", datasets.Audio(decode=False))
                         for dd in (two_workers, in_process))
        audio = {row["id"]: row["audio"]["bytes"] for row in first}
        assert audio == {row["id"]: row["audio"]["bytes"] for row in second}, split


def test_interrupted_build_resumes_without_duplicates(tmp_path, monkeypatch):
    preset = _small_preset()
    real = builder_module.render_job
    calls = {"n": 0}

    def crash_after_three(*args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(builder_module, "render_job", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path / "resumed", preset, num_workers=0)
    assert json.loads((tmp_path / "resumed" / MANIFEST).read_text())["status"] == "building"
    shards = [p for p in (tmp_path / "resumed" / "_work" / "shards").iterdir() if not p.name.startswith(".")]
    assert len(shards) == 3

    rendered = []
    monkeypatch.setattr(builder_module, "render_job", lambda job, *a, **k: rendered.append(job) or real(job, *a, **k))
    build_corpus(tmp_path / "resumed", preset, num_workers=0)
    assert len(rendered) == 6 - 3, "finished shards are not rendered again"
    monkeypatch.setattr(builder_module, "render_job", real)
    build_corpus(tmp_path / "fresh", preset, num_workers=0)

    resumed = datasets.load_from_disk(str(tmp_path / "resumed"))
    fresh = datasets.load_from_disk(str(tmp_path / "fresh"))
    for split in SPLITS:
        assert sorted(resumed[split]["id"]) == sorted(fresh[split]["id"])
        assert len(set(resumed[split]["id"])) == len(resumed[split])
    assert not (tmp_path / "resumed" / "_work").exists()
