"""Task splits by language and by style, and the held-out voice rule in every mode."""

from __future__ import annotations

from collections import defaultdict

import datasets
import pytest
from data_fixtures import requires_fortunes

from hf_metatts.data import HELDOUT_VOICES, CorpusBuildError, build_corpus, get_preset
from hf_metatts.data.plan import make_plan

pytestmark = requires_fortunes


@pytest.fixture(scope="module")
def preset():
    return get_preset("tiny").replace(
        espeak_voices={"en-us": ("m1", "m3", "f1", "f3"), "cs": ("m1", "f1"), "de": ("m1", "f1")},
        festival_voices=(), utterances_per_task=3, min_utterances=2, style_utterances_per_voice=2,
    )


def _splits_by(jobs, key):
    out = defaultdict(set)
    for job in jobs:
        out[job.split].add(key(job))
    return out


def test_language_tasks_hold_one_language_out(preset):
    plan = make_plan(preset, task_column="language", holdout_language="cs", validation_language="de")
    langs = _splits_by(plan.jobs, lambda j: j.voice.language)
    assert langs["test"] == {"cs"} and langs["validation"] == {"de"} and langs["train"] == {"en-us"}
    assert all(j.split == "test" for j in plan.jobs if j.base_speaker in HELDOUT_VOICES) or not any(
        j.base_speaker in HELDOUT_VOICES for j in plan.jobs
    )
    assert not any(j.base_speaker in HELDOUT_VOICES for j in plan.jobs), "English is not the test language"
    sentences = _splits_by(plan.jobs, lambda j: tuple(j.sentences))
    flat = {s: {x for t in v for x in t} for s, v in sentences.items()}
    assert not (flat["train"] & flat["validation"] or flat["train"] & flat["test"])


def test_language_tasks_pick_a_validation_language_and_refuse_unknown_ones(preset):
    plan = make_plan(preset, task_column="language", holdout_language="de")
    assert _splits_by(plan.jobs, lambda j: j.voice.language)["validation"] == {"cs"}
    with pytest.raises(CorpusBuildError, match="holdout-language"):
        make_plan(preset, task_column="language")
    with pytest.raises(CorpusBuildError, match="'xx' has no voices"):
        make_plan(preset, task_column="language", holdout_language="xx")


def test_style_tasks_split_by_style_with_heldout_voices_in_test_only(preset):
    plan = make_plan(preset, task_column="style")
    styles = _splits_by(plan.jobs, lambda j: j.style.name)
    expected = defaultdict(set)
    for name, split in preset.style_splits.items():
        expected[split].add(name)
    assert dict(styles) == dict(expected)
    for job in plan.jobs:
        if job.base_speaker in HELDOUT_VOICES:
            assert job.split == "test"
        assert len(job.sentences) == preset.style_utterances_per_voice
    fast = next(j for j in plan.jobs if j.style.name == "fast")
    assert fast.style.rate > 1.0


def test_unknown_task_column_is_refused(preset):
    with pytest.raises(CorpusBuildError, match="unknown task column"):
        make_plan(preset, task_column="accent")


def test_language_build_end_to_end(tmp_path, preset):
    report = build_corpus(tmp_path / "lang", preset, task_column="language", holdout_language="cs",
                          validation_language="de", sources=("espeak",), num_workers=0)
    dd = datasets.load_from_disk(str(tmp_path / "lang"))
    assert set(dd["test"]["language"]) == {"cs"} and set(dd["validation"]["language"]) == {"de"}
    assert set(dd["train"]["language"]) == {"en-us"}
    assert report.task_column == "language" and report.splits["test"]["tasks"] == 1
    assert set(dd["test"]["speaker_id"]) == {"espeak:cs+m1", "espeak:cs+f1"}
