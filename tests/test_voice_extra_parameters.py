"""``model.adapt(..., extra_parameters=...)``: further parameters adapted beside the checkpoint's set."""

import json

import numpy as np
import pytest
import torch
from test_voice_adapt import SR, assert_same_weights, make_clips, one_thread, synth, weights
from test_voice_cli import base, clip_folder
from tiny_models import tiny_model

import hf_metatts
from hf_metatts.cli import main
from hf_metatts.meta import MetaLearnerConfig, MetaLearnerHead
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache
from hf_metatts.voice_errors import ExtraParametersError

__all__ = ["base", "clip_folder", "one_thread"]
DECODER = "decoder.layers.*"


@pytest.fixture(autouse=True)
def _fresh_bases():
    clear_base_cache()
    yield
    clear_base_cache()


@pytest.fixture
def model(tiny_checkpoint):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tiny_checkpoint))


def decoder_weights(model) -> list[str]:
    return [n for n in model.adapted_parameter_names([DECODER]) if n not in model.adapted_parameter_names()]


def test_the_decoder_is_adapted_too_saved_in_the_voice_and_the_base_is_untouched(model, tmp_path):
    before = weights(model)
    plain = model.adapt(make_clips(), sampling_rate=SR, steps=3, lr=0.01, progress=False)
    wide = model.adapt(make_clips(), sampling_rate=SR, steps=3, lr=0.01, progress=False, extra_parameters=[DECODER])
    assert_same_weights(model, before)
    extra = decoder_weights(model)
    assert extra and all(n.startswith("decoder.layers.") for n in extra)
    assert list(wide.adapted_parameters) == list(plain.adapted_parameters) + extra
    assert all(not torch.equal(wide.adapted_parameters[n], before[n]) for n in extra if n.endswith(".weight"))
    assert wide.num_parameters == plain.num_parameters + sum(before[n].numel() for n in extra)
    # the extra weights change what the voice says: not the plain voice's audio
    assert not torch.allclose(synth(model, voice=wide), synth(model, voice=plain))
    wide.save_pretrained(tmp_path / "voice")
    loaded = MetaTTSVoice.from_pretrained(tmp_path / "voice")
    assert sorted(loaded.adapted_parameters) == sorted(wide.adapted_parameters)
    np.testing.assert_array_equal(synth(model, voice=loaded).numpy(), synth(model, voice=wide).numpy())
    voiced = loaded.apply_to(model)
    np.testing.assert_array_equal(synth(voiced).numpy(), synth(model, voice=wide).numpy())
    assert_same_weights(model, before)


def test_extra_parameters_take_the_measured_steps_and_rate_unless_told(model):
    from hf_metatts.voice_adapt import EXTRA_PARAMETERS_LR, EXTRA_PARAMETERS_STEPS

    losses = []
    voice = model.adapt(make_clips(1), sampling_rate=SR, progress=False, extra_parameters=[DECODER],
                        callback=lambda step, total, loss: losses.append((step, total)))
    assert (EXTRA_PARAMETERS_STEPS, EXTRA_PARAMETERS_LR) == (40, 1e-3)
    assert (voice.config.steps, voice.config.learning_rate) == (EXTRA_PARAMETERS_STEPS, EXTRA_PARAMETERS_LR)
    assert losses[-1] == (40, 40)
    told = model.adapt(make_clips(1), sampling_rate=SR, progress=False, extra_parameters=[DECODER], steps=2, lr=0.01)
    assert (told.config.steps, told.config.learning_rate) == (2, 0.01)
    plain = model.adapt(make_clips(1), sampling_rate=SR, progress=False)
    assert plain.config.steps == 5 and plain.config.learning_rate is None


def test_one_pattern_as_a_string_and_the_finetune_method(model):
    voice = model.adapt(make_clips(2), sampling_rate=SR, method="finetune", steps=2, progress=False,
                        extra_parameters=DECODER)
    assert set(decoder_weights(model)) <= set(voice.adapted_parameters)
    assert voice.config.method == "finetune"


@pytest.mark.parametrize("extra, kwargs, expected", [
    (["no.such.parameter*"], {}, "matches no parameter"),
    (["aligner.*"], {}, "the aligner takes no part in the mel loss"),
    (["*"], {}, "names parameters the steps cannot adapt"),
    ([], {}, "must be an fnmatch pattern or a list of them"),
    ([3], {}, "must be an fnmatch pattern or a list of them"),
    ({"decoder": 1}, {}, "must be an fnmatch pattern or a list of them"),
    ([DECODER], {"method": "zero_shot", "steps": 0}, "needs steps > 0"),
    ([DECODER], {"method": "meta_lstm"}, "cannot be adapted with method='meta_lstm'"),
])
def test_bad_extra_parameters_are_refused_before_anything_is_read(model, extra, kwargs, expected):
    before = weights(model)
    clips = make_clips(2)
    kept = [audio.copy() for audio, _ in clips]
    with pytest.raises(ExtraParametersError, match=expected) as raised:
        model.adapt(clips, sampling_rate=SR, progress=False, extra_parameters=extra, **kwargs)
    assert isinstance(raised.value, ValueError)
    assert_same_weights(model, before)
    assert all(np.array_equal(audio, copy) for (audio, _), copy in zip(clips, kept))


def test_the_vocoder_is_refused_on_a_model_that_has_one():
    model = tiny_model(vocoder_type="istft")
    before = weights(model)
    for pattern in ("vocoder.*", "vocoder.head.weight"):
        with pytest.raises(ValueError, match="the vocoder is adapted by vocoder_steps"):
            model.adapt(make_clips(1), sampling_rate=SR, progress=False, extra_parameters=[DECODER, pattern])
    assert_same_weights(model, before)


def test_learned_rates_cannot_take_extra_parameters(model):
    names = model.adapted_parameter_names()
    shapes = {n: model.get_parameter(n).shape for n in names}
    head = MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_steps=2, adapted_parameter_names=names), shapes)
    with pytest.raises(ValueError, match="cannot be adapted with method='metasgd'"):
        model.adapt(make_clips(1), sampling_rate=SR, meta_learner=head, progress=False, extra_parameters=[DECODER])


def test_the_command_line_takes_extra_parameters_and_refuses_bad_ones(base, clip_folder, tmp_path, capsys):
    out = tmp_path / "voice"
    assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--steps", "2", "--lr", "0.01",
                 "--extra-parameters", DECODER, "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    voice = MetaTTSVoice.from_pretrained(out)
    assert any(n.startswith("decoder.layers.") and n.endswith(".weight") for n in voice.adapted_parameters)
    assert summary["voice_bytes"] > 4 * voice.num_parameters
    refused = tmp_path / "refused"
    assert main(["adapt", "--model", str(base), "--clips", str(clip_folder), "--extra-parameters", "aligner.*",
                 "--out", str(refused), "--no-progress"]) == 2
    assert "the aligner takes no part in the mel loss" in capsys.readouterr().err
    assert not refused.exists()


def test_a_voice_with_the_decoder_layers_loads_in_the_pipeline_by_folder(model, tmp_path):
    from transformers import pipeline

    voice = model.adapt(make_clips(2), sampling_rate=SR, steps=2, lr=0.01, progress=False, extra_parameters=[DECODER])
    voice.save_pretrained(tmp_path / "voice")
    expected = synth(model, text="Through the pipeline.", voice=voice).numpy()
    clear_base_cache()
    tts = pipeline("text-to-speech", model=str(tmp_path / "voice"))
    before = weights(tts.model)
    np.testing.assert_allclose(tts("Through the pipeline.")["audio"].reshape(-1), expected, atol=1e-5)
    assert_same_weights(tts.model, before)
