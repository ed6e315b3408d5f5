"""benchmarks/vocoder_voice_adaptation.py: its named vocoder parameter sets, and a vocoder speaking with adapted
values without a copy of its weights."""

import copy

import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import tiny_model

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")


@pytest.fixture(scope="module")
def study():
    return load_benchmark_script("vocoder_voice_adaptation")


def test_every_named_set_matches_parameters_of_the_vocoder_and_an_unknown_one_is_refused(study):
    from hf_metatts.voice_vocoder import VocoderAdaptationError, vocoder_parameter_names

    vocoder = tiny_model(vocoder_type="istft").vocoder
    adaptations = {name: study.set_adaptation(name, steps=3, learning_rate=1e-3) for name in study.PARAMETER_SETS}
    sizes = {name: len(vocoder_parameter_names(vocoder, adaptation.parameters))
             for name, adaptation in adaptations.items()}
    assert sizes["all"] == len(list(vocoder.parameters()))
    assert sizes["eq"] == 1 and sizes["head"] == 4 and 0 < sizes["norms"] < sizes["all"]
    assert sizes["head_magnitude"] == 4 and sizes["magnitude"] == 2
    assert {name for name, a in adaptations.items() if not a.adapt_phase} == {"head_magnitude", "magnitude"}
    assert {name for name, a in adaptations.items() if a.clip_context} == {"head_clip"}
    assert all(a.steps == 3 and a.learning_rate == 1e-3 for a in adaptations.values())
    for adaptation in adaptations.values():
        adaptation.validate()  # every set is a setting model.adapt accepts
    with pytest.raises(VocoderAdaptationError, match="Unknown vocoder parameter set 'everything'"):
        study.set_adaptation("everything", steps=3)


def test_the_voiced_vocoder_speaks_as_a_copy_with_those_weights_would(study):
    vocoder = tiny_model(vocoder_type="istft").vocoder.eval()
    values = {"vocoder.head.bias": torch.randn_like(vocoder.head.bias)}
    copied = copy.deepcopy(vocoder)
    with torch.no_grad():
        copied.head.bias.copy_(values["vocoder.head.bias"])
        log_mel = torch.randn(1, 12, vocoder.config.num_mel_bins) - 4.0
        torch.testing.assert_close(study.voiced_vocoder(vocoder, values)(log_mel), copied(log_mel))
        assert not torch.allclose(vocoder(log_mel), copied(log_mel))
