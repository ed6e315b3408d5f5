"""VocoderAdaptation(clip_context=True): the vocoder's output layer adapts on segments of whole-clip hidden states."""

import numpy as np
import pytest
import torch

import hf_metatts
from hf_metatts.training.vocoder_aligned import AlignedClip
from hf_metatts.voice_vocoder import (
    OutputLayer,
    VocoderAdaptation,
    VocoderAdaptationError,
    adapt_vocoder,
    hidden_state_pairs,
)

OUTPUT_LAYER = ("head.*", "final_norm.*")


@pytest.fixture
def model(tiny_istft_checkpoint):
    """A tiny model with an iSTFT vocoder, loaded afresh for each test (some change its config)."""
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tiny_istft_checkpoint)


def aligned_pairs(model, lengths=(40, 23)) -> list[AlignedClip]:
    """Support pairs of random log-mels ``(T, M)`` and noise ``(T * hop,)``; the numbers do not need to be speech."""
    rng = np.random.default_rng(0)
    hop, mels = model.config.hop_length, model.config.num_mel_bins
    return [AlignedClip(str(index), "support", (rng.standard_normal((frames, mels)) - 3).astype(np.float32),
                        (0.1 * rng.standard_normal(frames * hop)).astype(np.float32), "support")
            for index, frames in enumerate(lengths)]


def test_the_vocoder_is_its_hidden_states_then_its_output_layer(model):
    log_mel = torch.from_numpy(aligned_pairs(model)[0].mel).unsqueeze(0)
    with torch.no_grad():
        whole = model.vocoder(log_mel)
        hidden = model.vocoder.hidden_states(log_mel)
        assert hidden.shape == (1, model.config.vocoder_hidden_size, log_mel.shape[1])
        assert torch.equal(model.vocoder.output_layer(hidden), whole)
        pair = hidden_state_pairs(model.vocoder, aligned_pairs(model)[:1])[0]
        assert pair.mel.shape == (log_mel.shape[1], model.config.vocoder_hidden_size)
        assert torch.equal(OutputLayer(model.vocoder)(torch.from_numpy(pair.mel).unsqueeze(0)), whole)


def test_a_segment_that_is_the_whole_clip_reads_the_same_hidden_states_either_way(model):
    pairs = aligned_pairs(model, lengths=(30,))
    settings = dict(steps=4, learning_rate=3e-3, parameters=OUTPUT_LAYER, batch_size=2, segment_frames=30)
    segments, segment_report = adapt_vocoder(model.vocoder, pairs, VocoderAdaptation(**settings))
    whole_clips, report = adapt_vocoder(model.vocoder, pairs, VocoderAdaptation(**settings, clip_context=True))
    assert sorted(whole_clips) == sorted(segments)
    for loss in ("mel_l1", "stft"):  # the same hidden states in, the same loss out (after the steps Adam's
        # normalised first steps turn float rounding of near-zero gradients into visible differences)
        assert report["before"][loss] == pytest.approx(segment_report["before"][loss], rel=1e-5), loss
        assert report["after"][loss] < report["before"][loss] - 0.01, loss


def test_clip_context_fits_the_support_from_other_hidden_states_and_leaves_the_vocoder_alone(model):
    before = {name: value.detach().clone() for name, value in model.vocoder.named_parameters()}
    pairs = aligned_pairs(model)
    settings = dict(steps=15, learning_rate=1e-2, parameters=OUTPUT_LAYER, batch_size=4, segment_frames=8)
    values, report = adapt_vocoder(model.vocoder, pairs, VocoderAdaptation(**settings, clip_context=True))
    segment_values, _ = adapt_vocoder(model.vocoder, pairs, VocoderAdaptation(**settings))
    assert sorted(values) == sorted(f"vocoder.{name}" for name, _ in model.vocoder.named_parameters()
                                    if name.startswith(("head.", "final_norm.")))
    assert report["after"]["mel_l1"] < report["before"]["mel_l1"], report
    assert not torch.equal(values["vocoder.head.weight"], segment_values["vocoder.head.weight"])
    for name, value in model.vocoder.named_parameters():
        assert torch.equal(value, before[name]) and value.requires_grad, name


@pytest.mark.parametrize("kwargs, message", [
    ({"parameters": ("*",)}, r"clip_context adapts the output layer alone \(head\.\*, final_norm\.\*\), but the "
                              r"parameter patterns \['\*'\] reach beyond it"),
    ({"parameters": ("head.*", "norm.*")}, r"patterns \['norm\.\*'\] reach beyond it"),
])
def test_clip_context_refuses_parameters_below_the_output_layer(model, kwargs, message):
    before = {name: value.detach().clone() for name, value in model.vocoder.named_parameters()}
    adaptation = VocoderAdaptation(steps=2, learning_rate=1e-3, clip_context=True, **kwargs)
    with pytest.raises(VocoderAdaptationError, match=message):
        adapt_vocoder(model.vocoder, aligned_pairs(model), adaptation)
    for name, value in model.vocoder.named_parameters():
        assert torch.equal(value, before[name]), name


def test_a_clip_context_that_is_not_true_or_false_is_refused():
    with pytest.raises(VocoderAdaptationError, match="clip_context='yes' must be True or False"):
        VocoderAdaptation(steps=1, learning_rate=1e-3, clip_context="yes").validate()
    with pytest.raises(ValueError, match="voice_vocoder_clip_context must be True or False, got 1"):
        hf_metatts.MetaTTSConfig(voice_vocoder_clip_context=1)


def test_the_config_turns_it_on_for_model_adapt(model):
    from test_voice_adapt import make_clips

    model.config.voice_vocoder_parameters = list(OUTPUT_LAYER)
    model.config.voice_vocoder_clip_context = True
    adaptation = VocoderAdaptation.from_config(model.config, steps=3)
    assert adaptation.clip_context is True and adaptation.parameters == OUTPUT_LAYER
    voice = model.adapt(make_clips(2), method="finetune", steps=1, progress=False, vocoder_steps=3)
    assert sorted(n for n in voice.adapted_parameters if n.startswith("vocoder.")) == [
        "vocoder.final_norm.bias", "vocoder.final_norm.weight", "vocoder.head.bias", "vocoder.head.weight"]
    model.config.voice_vocoder_parameters = ["*"]  # beyond the output layer: refused before anything is adapted
    with pytest.raises(VocoderAdaptationError, match=r"patterns \['\*'\] reach beyond it"):
        model.adapt(make_clips(2), method="finetune", steps=1, progress=False, vocoder_steps=3)
