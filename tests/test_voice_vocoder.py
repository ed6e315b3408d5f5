"""model.adapt(..., vocoder_steps=N): the neural vocoder adapts to the support clips and travels with the voice."""

import numpy as np
import pytest
import torch
from test_voice_adapt import _fresh_bases, assert_same_weights, make_clips, one_thread, synth, weights
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_vocoder import (
    VocoderAdaptation,
    VocoderAdaptationError,
    adapt_vocoder,
    support_pairs,
    vocoder_parameter_names,
)

__all__ = ["_fresh_bases", "one_thread"]  # the voice tests' autouse fixtures: one torch thread, no cached bases


@pytest.fixture(scope="module")
def checkpoint(tiny_istft_checkpoint):
    return tiny_istft_checkpoint


@pytest.fixture
def model(checkpoint):
    return hf_metatts.MetaTTSForTextToSpeech.from_pretrained(checkpoint)


def vocoder_names(voice) -> list[str]:
    return [name for name in voice.adapted_parameters if name.startswith("vocoder.")]


def test_the_adapted_vocoder_fits_the_support_and_travels_with_the_voice(model, tmp_path):
    before = weights(model)
    clips = make_clips(3)
    plain = model.adapt(clips, method="finetune", steps=2, progress=False)
    voice = model.adapt(clips, method="finetune", steps=2, progress=False, vocoder_steps=15, vocoder_lr=1e-2)
    assert_same_weights(model, before)  # the base is untouched, vocoder included
    assert not vocoder_names(plain)
    own = dict(model.named_parameters())
    names = vocoder_names(voice)
    assert sorted(names) == sorted("vocoder." + n for n, _ in model.vocoder.named_parameters())
    assert any(not torch.equal(voice.adapted_parameters[n], own[n].detach()) for n in names)
    for name in plain.adapted_parameters:  # the acoustic part is the same adaptation
        torch.testing.assert_close(voice.adapted_parameters[name], plain.adapted_parameters[name])
    assert voice.config.vocoder_steps == 15 and voice.config.vocoder_learning_rate == 1e-2
    loss = voice.config.vocoder_support_loss
    assert loss["after"] < loss["before"], loss
    with torch.no_grad():
        heard = synth(model, voice=voice)
        assert not torch.allclose(heard, synth(model, voice=plain))
    voice.save_pretrained(tmp_path / "voice")
    loaded = MetaTTSVoice.from_pretrained(tmp_path / "voice")
    assert loaded.config.vocoder_steps == 15
    with torch.no_grad():
        torch.testing.assert_close(synth(model, voice=loaded), heard)
    voiced = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "voice")
    with torch.no_grad():
        torch.testing.assert_close(synth(voiced), heard)
    card = (tmp_path / "voice" / "README.md").read_text()
    assert "the neural vocoder adapted to the same clips in\n15 Adam step(s)" in card
    assert "| vocoder steps | 15 (support log-mel L1" in card


def test_the_alignment_search_runs_once_per_clip_and_once_per_support_batch(model, monkeypatch):
    """The transcript check reads each clip; the durations it finds for the batch serve both the acoustic steps and
    the vocoder's teacher-forced read, which gives the same log-mels as finding them again."""
    import hf_metatts.modeling_metatts as modeling
    from hf_metatts.meta.maml import with_fixed_alignment
    from hf_metatts.voice_adapt import collate, prepare_support, processor_for
    from hf_metatts.voice_validation import ClipValidation, load_clips

    calls = []
    search = modeling.monotonic_alignment_search
    monkeypatch.setattr(modeling, "monotonic_alignment_search", lambda *a: calls.append(1) or search(*a))
    clips = make_clips(3)
    model.adapt(clips, method="finetune", steps=2, progress=False, vocoder_steps=2)
    assert len(calls) == 3 + 1  # 3 transcript checks + 1 batch of durations; the vocoder's read finds none
    validation = ClipValidation()
    support = load_clips(clips, model.config.sampling_rate, validation)
    batches = collate(prepare_support(support, processor_for(model), validation, model.device),
                      validation.max_clips_per_batch)
    params = dict(model.named_parameters())
    model.eval()
    found_again = support_pairs(model, params, batches, [clip.audio for clip in support])
    fixed = support_pairs(model, params, with_fixed_alignment(model, batches), [clip.audio for clip in support])
    assert [len(pair.mel) for pair in fixed] == [len(pair.mel) for pair in found_again]
    for again, once in zip(found_again, fixed):
        np.testing.assert_array_equal(once.mel, again.mel)


def test_the_config_sets_the_default_steps_and_the_parameter_set(checkpoint, tmp_path):
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(
        checkpoint, voice_vocoder_steps=2, voice_vocoder_parameters=["head.*"])
    voice = model.adapt(make_clips(2), method="finetune", steps=1, progress=False)
    assert sorted(vocoder_names(voice)) == ["vocoder.head.bias", "vocoder.head.weight"]
    assert voice.config.vocoder_steps == 2
    off = model.adapt(make_clips(2), method="finetune", steps=1, progress=False, vocoder_steps=0)
    assert not vocoder_names(off) and off.config.vocoder_steps == 0


def test_the_config_can_keep_the_phase_rows_of_the_output_layer(checkpoint, tmp_path):
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(
        checkpoint, voice_vocoder_steps=3, voice_vocoder_learning_rate=1e-2,
        voice_vocoder_parameters=["head.*", "final_norm.*"], voice_vocoder_adapt_phase=False)
    clips = make_clips(2)
    voice = model.adapt(clips, method="finetune", steps=1, progress=False)
    both = model.adapt(clips, method="finetune", steps=1, progress=False, vocoder_steps=3)
    half = model.vocoder.head.out_features // 2
    own = dict(model.vocoder.named_parameters())
    for name in ("head.weight", "head.bias"):
        kept = voice.adapted_parameters["vocoder." + name]
        assert torch.equal(kept[half:], own[name][half:].detach())  # the phase rows as trained
        assert not torch.equal(kept[:half], own[name][:half].detach())  # the magnitude rows adapted
    assert not torch.equal(voice.adapted_parameters["vocoder.final_norm.weight"], own["final_norm.weight"].detach())
    model.config.voice_vocoder_adapt_phase = True
    changed = model.adapt(clips, method="finetune", steps=1, progress=False)
    assert not torch.equal(changed.adapted_parameters["vocoder.head.bias"][half:], own["head.bias"][half:].detach())
    assert voice.config.vocoder_support_loss["after"] < voice.config.vocoder_support_loss["before"]
    assert both.config.vocoder_steps == 3
    model.config.voice_vocoder_adapt_phase = False
    model.save_pretrained(tmp_path / "kept")
    assert hf_metatts.MetaTTSConfig.from_pretrained(tmp_path / "kept").voice_vocoder_adapt_phase is False


def test_a_phase_setting_that_is_not_true_or_false_is_refused(model):
    with pytest.raises(VocoderAdaptationError, match="adapt_phase='no' must be True or False"):
        VocoderAdaptation(steps=1, learning_rate=1e-3, adapt_phase="no").validate()
    with pytest.raises(ValueError, match="voice_vocoder_adapt_phase must be True or False, got 0"):
        hf_metatts.MetaTTSConfig(voice_vocoder_adapt_phase=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"vocoder_steps": -1}, r"vocoder_steps=-1 must be a whole number >= 0"),
    ({"vocoder_steps": 2.5}, r"vocoder_steps=2.5 must be a whole number"),
    ({"vocoder_steps": 2, "vocoder_lr": 0.0}, r"vocoder_lr=0.0 must lie in \(0, 1\)"),
    ({"vocoder_steps": 2, "vocoder_lr": float("nan")}, r"vocoder_lr=nan must lie in \(0, 1\)"),
])
def test_bad_vocoder_settings_are_refused_before_anything_is_adapted(model, kwargs, message):
    before = weights(model)
    with pytest.raises(VocoderAdaptationError, match=message):
        model.adapt(make_clips(2), method="finetune", steps=1, progress=False, **kwargs)
    assert_same_weights(model, before)


def test_a_griffin_lim_model_refuses_vocoder_steps_and_ignores_the_config_default(tmp_path):
    path = tmp_path / "griffin_lim"
    save_tiny_checkpoint(path)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(path)
    before = weights(model)
    with pytest.raises(VocoderAdaptationError, match=r"vocoder_type='griffin_lim', which has no weights"):
        model.adapt(make_clips(2), method="finetune", steps=1, progress=False, vocoder_steps=3)
    assert_same_weights(model, before)
    model.config.voice_vocoder_steps = 3  # a config default is skipped on a vocoder without weights
    voice = model.adapt(make_clips(2), method="finetune", steps=1, progress=False)
    assert not vocoder_names(voice) and voice.config.vocoder_steps == 0


def test_adapt_vocoder_leaves_the_vocoder_alone_and_handles_clips_shorter_than_a_segment(model):
    clips = make_clips(2)
    voice = model.adapt(clips, method="finetune", steps=1, progress=False)
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(model.name_or_path)
    rows = [{"input_ids": torch.tensor([processor.tokenizer(text)["input_ids"]]),
             **{k: torch.from_numpy(v) for k, v in processor.feature_extractor(audio, return_pitch=False).items()
                if k in ("input_features", "attention_mask")}} for audio, text in clips]
    batches = [{"input_ids": row["input_ids"], "attention_mask": torch.ones_like(row["input_ids"]),
                "labels": row["input_features"], "labels_attention_mask": row["attention_mask"]} for row in rows]
    pairs = support_pairs(model, voice.adapted_parameters, batches, [audio for audio, _ in clips])
    hop = model.config.hop_length
    assert [len(p.audio) for p in pairs] == [len(p.mel) * hop for p in pairs]
    np.testing.assert_array_equal(pairs[0].audio[:1000], clips[0][0][:1000])
    before = {n: p.detach().clone() for n, p in model.vocoder.named_parameters()}
    long_segments = VocoderAdaptation(steps=2, learning_rate=1e-3, parameters=("final_norm.*",),
                                      segment_frames=10_000)
    values, report = adapt_vocoder(model.vocoder, pairs, long_segments)
    assert sorted(values) == ["vocoder.final_norm.bias", "vocoder.final_norm.weight"]
    assert report["parameters"] == 2 * model.config.vocoder_hidden_size
    kept_phase = VocoderAdaptation(steps=2, learning_rate=1e-3, parameters=("head.*",), adapt_phase=False)
    _, report = adapt_vocoder(model.vocoder, pairs, kept_phase)
    assert report["parameters"] == model.vocoder.head.out_features // 2 * (model.config.vocoder_hidden_size + 1)
    for name, value in model.vocoder.named_parameters():
        assert torch.equal(value, before[name]) and value.requires_grad, name
    with pytest.raises(VocoderAdaptationError, match="match no parameter"):
        vocoder_parameter_names(model.vocoder, ["nothing.*"])
    with pytest.raises(VocoderAdaptationError, match=r"\['finalnorm.\*'\] match no parameter"):
        vocoder_parameter_names(model.vocoder, ["head.*", "finalnorm.*"])  # one misspelt pattern among good ones
    assert vocoder_parameter_names(model.vocoder, ["head.*", "final_norm.*"]) == [
        name for name, _ in model.vocoder.named_parameters() if name.startswith(("head.", "final_norm."))]
    with pytest.raises(VocoderAdaptationError, match="one recording per support clip"):
        support_pairs(model, voice.adapted_parameters, batches, [clips[0][0]])


def test_the_command_line_adapts_the_vocoder_and_refuses_it_on_griffin_lim(checkpoint, tmp_path, capsys):
    import json

    import soundfile
    from test_voice_adapt import SR

    from hf_metatts.cli import main

    folder = tmp_path / "clips"
    folder.mkdir()
    for index, (audio, text) in enumerate(make_clips(2)):
        soundfile.write(folder / f"utt{index}.wav", audio, SR)
        (folder / f"utt{index}.txt").write_text(text + "\n", encoding="utf-8")
    out = tmp_path / "voice"
    assert main(["adapt", "--model", checkpoint, "--clips", str(folder), "--method", "finetune", "--steps", "1",
                 "--vocoder-steps", "2", "--vocoder-lr", "1e-3", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["vocoder_steps"] == 2
    assert MetaTTSVoice.from_pretrained(out).config.vocoder_learning_rate == 1e-3
    griffin_lim = tmp_path / "griffin_lim"
    save_tiny_checkpoint(griffin_lim)
    refused = tmp_path / "refused"
    assert main(["adapt", "--model", str(griffin_lim), "--clips", str(folder), "--vocoder-steps", "2",
                 "--out", str(refused), "--no-progress"]) == 2
    assert "has no weights to adapt" in capsys.readouterr().err
    assert not refused.exists()


def test_switching_voices_on_a_voiced_model_leaves_no_vocoder_behind(model, tmp_path):
    """A voiced model (a folder of a voice with an adapted vocoder) keeps its base's fingerprint, and another
    voice passed to it speaks exactly as on the base: through the base's vocoder, not the first voice's."""
    from hf_metatts.voice_base import base_fingerprint

    with_vocoder = model.adapt(make_clips(2), method="finetune", steps=1, progress=False, vocoder_steps=3,
                               vocoder_lr=1e-2)
    plain = model.adapt(make_clips(3), method="finetune", steps=1, progress=False)
    with_vocoder.save_pretrained(tmp_path / "voice")
    voiced = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "voice")
    assert base_fingerprint(voiced) == base_fingerprint(model) == with_vocoder.config.base_fingerprint
    assert not any(name.startswith("_metatts_base") for name, _ in voiced.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(synth(voiced, voice=plain), synth(model, voice=plain))
        torch.testing.assert_close(synth(voiced), synth(model, voice=with_vocoder))
        torch.testing.assert_close(synth(plain.apply_to(voiced)), synth(plain.apply_to(model)))
