"""The ``recorded_screen`` preset: new timbres of the recorded English training voices, on sentences the
training presets never train on, all in ``validation``."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from data_fixtures import requires_flite, requires_fortunes, voiced_clip

from hf_metatts.data import build_corpus, get_preset
from hf_metatts.data.errors import TooFewTasksError
from hf_metatts.data.plan import make_plan
from hf_metatts.data.sources.base import Synthesis

SR = 16000


def _fake_espeak(voice, texts, style):
    return [Synthesis(voiced_clip(1.0, sr=SR), SR, [{"phone": "a", "start": 0.0, "end": 1.0}]) for _ in texts]


def _validation_only_preset(**changes):
    """Four espeak voices, all forced into validation (a screening split of a tiny size)."""
    voices = ("m1", "m3", "f1", "f3")
    return get_preset("tiny").replace(
        espeak_voices={"en-us": voices}, flite_voices=(), festival_voices=(), perturbations=(),
        validation_voices=tuple(f"espeak:en-us+{v}" for v in voices), utterances_per_task=3, min_utterances=2,
        **changes)


@requires_fortunes
@requires_flite
def test_screen_voices_are_new_shifts_of_training_voices_reading_unseen_sentences():
    screen_preset = get_preset("recorded_screen").replace(num_workers=0)
    screen = make_plan(screen_preset, sources=("flite",))
    augmented = make_plan(get_preset("augmented").replace(num_workers=0), sources=("flite",))

    assert {job.split for job in screen.jobs} == {"validation"}
    shifted = {job.speaker_id for job in screen.jobs if job.perturbation is not None}
    assert shifted == {f"flite:kal16~{p.name}" for p in screen_preset.perturbations}
    assert all(job.base_speaker == "flite:kal16" for job in screen.jobs)

    trained = {job.speaker_id for job in augmented.jobs if job.split == "train"}
    assert "flite:kal16" in trained, "the screen's base voice should be a training voice of the augmented preset"
    assert not shifted & {job.speaker_id for job in augmented.jobs}, "a screen voice is a speaker of augmented"

    trained_sentences = {s for job in augmented.jobs if job.split == "train" for s in job.sentences}
    screen_sentences = {s for job in screen.jobs for s in job.sentences}
    assert len(screen_sentences) >= screen_preset.min_utterances
    assert not screen_sentences & trained_sentences


def test_screen_shifts_are_new_directions():
    screen = {p.name for p in get_preset("recorded_screen").perturbations}
    augmented = get_preset("augmented")
    used = {p.name for p in augmented.perturbations + augmented.train_perturbations}
    assert len(screen) == 4 and not screen & used


@requires_fortunes
def test_a_preset_may_build_its_validation_split_alone(tmp_path):
    report = build_corpus(tmp_path / "c", _validation_only_preset(splits=("validation",)), num_workers=0,
                          synthesizers={"espeak": _fake_espeak})
    built = datasets.load_from_disk(str(tmp_path / "c"))
    assert list(built) == ["validation"] and list(report.splits) == ["validation"]
    assert len(set(built["validation"]["speaker_id"])) == 4
    assert np.allclose(built["validation"]["duration"], 1.0)


@requires_fortunes
def test_a_required_split_without_voices_is_still_an_error(tmp_path):
    with pytest.raises(TooFewTasksError, match="split 'train' is empty"):
        build_corpus(tmp_path / "c", _validation_only_preset(), num_workers=0, synthesizers={"espeak": _fake_espeak})
    assert not (tmp_path / "c" / "validation").exists(), "nothing is written when the build is refused"


@pytest.mark.parametrize("splits", [(), ("train", "dev")])
def test_unknown_or_no_splits_are_refused(splits):
    with pytest.raises(ValueError, match="splits must be some of"):
        get_preset("tiny").replace(splits=splits)
