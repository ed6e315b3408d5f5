"""Train-only perturbations (the ``augmented`` preset): more training timbres, the same evaluation speakers."""

from __future__ import annotations

import pytest
from data_fixtures import requires_flite, requires_fortunes

from hf_metatts.data import get_preset
from hf_metatts.data.perturb import Perturbation
from hf_metatts.data.plan import make_plan

pytestmark = [requires_fortunes, requires_flite]

EXTRA = (Perturbation(pitch=1.4, formant=1.14), Perturbation(pitch=0.7, formant=0.88))


def _speakers(plan, split):
    return {job.speaker_id for job in plan.jobs if job.split == split}


def test_train_perturbations_add_training_speakers_only():
    base = get_preset("tiny").replace(num_workers=0)
    plain = make_plan(base)
    augmented = make_plan(base.replace(train_perturbations=EXTRA))
    for split in ("validation", "test"):
        assert _speakers(augmented, split) == _speakers(plain, split)
    added = _speakers(augmented, "train") - _speakers(plain, "train")
    perturbed_train_bases = {job.base_speaker for job in plain.jobs
                             if job.split == "train" and job.voice.source in base.perturb_sources}
    assert perturbed_train_bases, "the tiny preset should have a recorded training voice"
    assert added == {f"{b}~{p.name}" for b in perturbed_train_bases for p in EXTRA}
    assert _speakers(plain, "train") <= _speakers(augmented, "train")
    for job in augmented.jobs:
        if job.perturbation in EXTRA:
            assert job.split == "train" and job.base_speaker not in base.heldout_voices


def test_augmented_preset_keeps_the_default_evaluation_speakers_and_build_fingerprint():
    default, augmented = get_preset("default"), get_preset("augmented")
    assert augmented.train_perturbations and not default.train_perturbations
    assert augmented.replace(name="default", train_perturbations=()) == default
    assert augmented.fingerprint() != default.fingerprint()
    # A build made before the field existed hashed the preset without it: that hash must not change.
    assert default.fingerprint(task_column="speaker_id", holdout=None, validation=None, sources=[]) \
        == "14665e1362a8eb80"


@pytest.mark.parametrize("extra", [(Perturbation(),), (Perturbation(pitch=1.25, formant=1.10),)])
def test_a_train_perturbation_that_repeats_a_voice_is_refused(extra):
    with pytest.raises(ValueError, match="train_perturbations must be new shifts"):
        get_preset("tiny").replace(train_perturbations=extra)
