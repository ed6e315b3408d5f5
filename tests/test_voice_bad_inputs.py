"""Every bad input to the voice API: a specific error, and nothing changed (base weights, files on disk)."""

import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from test_voice_adapt import (
    SR,
    TEXTS,
    _fresh_bases,
    assert_same_weights,
    checkpoint,
    make_clips,
    model,
    one_thread,
    speechlike,
    synth,
    weights,
)
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache
from hf_metatts.voice_errors import (
    ClipDurationError,
    ClipError,
    ClippedAudioError,
    NoClipsError,
    SilentClipError,
    TranscriptMismatchError,
    TranscriptMismatchWarning,
    VoiceConfigMissingError,
    VoiceFileError,
    VoiceMismatchError,
)
from hf_metatts.voice_validation import ClipValidation

__all__ = ["_fresh_bases", "checkpoint", "model", "one_thread"]  # the voice tests' fixtures


@pytest.fixture(scope="module")
def saved_voice(checkpoint, tmp_path_factory):
    clear_base_cache()
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(checkpoint))
    voice = base.adapt(make_clips(2), sampling_rate=SR, steps=1, lr=0.5, progress=False)
    path = tmp_path_factory.mktemp("saved_voice") / "voice"
    voice.save_pretrained(path)
    return path


def folder_digest(path) -> str:
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(open(os.path.join(root, name), "rb").read())
    return digest.hexdigest()


def clipped() -> np.ndarray:
    return np.clip(speechlike(1.5) * 8.0, -1.0, 1.0)


def nan_audio() -> np.ndarray:
    audio = speechlike(1.5)
    audio[100:200] = np.nan
    return audio


BAD_CLIPS = {
    "no clips": ([], NoClipsError, "No support clips"),
    "too short": ([(speechlike(0.3), TEXTS[0])], ClipDurationError, "lasts 0.30 s"),
    "too long": ([(speechlike(31.0), TEXTS[0])], ClipDurationError, "lasts 31.00 s"),
    "silence": ([(np.zeros(SR * 2, np.float32), TEXTS[0])], SilentClipError, "is silent"),
    "near silence": ([(speechlike(2.0) * 1e-4, TEXTS[0])], SilentClipError, "dBFS"),
    "clipping": ([(clipped(), TEXTS[0])], ClippedAudioError, "is clipped"),
    "nan": ([(nan_audio(), TEXTS[0])], ClipError, "NaN"),
    "undecodable": ([(b"not audio at all", TEXTS[0])], ClipError, "could not decode"),
    "long transcript": ([(speechlike(1.0), " ".join(["word"] * 60))], TranscriptMismatchError, "only 63 frames"),
    "wrong transcript": ([(speechlike(6.0), "Hi.")], TranscriptMismatchError, "does not match its audio"),
    "empty transcript": ([(speechlike(1.5), "  ")], hf_metatts.InvalidTextError, "empty transcript"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLIPS))
def test_bad_clips_raise_and_change_nothing(model, case, tmp_path):
    clips, error, message = BAD_CLIPS[case]
    clips = make_clips(1) + clips if case not in ("no clips",) else clips
    before = weights(model)
    with pytest.raises(error, match=message) as raised:
        model.adapt(clips, sampling_rate=SR, steps=1, progress=False)
    assert isinstance(raised.value, ValueError)
    if isinstance(raised.value, ClipError) and case != "no clips":
        assert raised.value.clip == "#1"  # the clip is named
    assert_same_weights(model, before)
    assert all(p.grad is None for p in model.parameters())


def test_a_doubtful_transcript_warns_naming_the_clip(model):
    clips = make_clips(1) + [(speechlike(6.0), "Hi there.")]
    with pytest.warns(TranscriptMismatchWarning, match="clip #1 may not match"):
        voice = model.adapt(clips, sampling_rate=SR, steps=1, progress=False,
                            validation=ClipValidation(alignment_error_score=None))
    assert voice.config.shots == 2


def test_the_path_score_warns_then_refuses_naming_the_clip():
    from hf_metatts.voice_validation import check_alignment

    validation = ClipValidation(path_warn_score=5.0, path_error_score=8.0)
    check_alignment(["a", "b"], [10.0, 10.0], validation, [3.0, 4.9])  # both fit: silent
    with pytest.warns(TranscriptMismatchWarning, match=r"clip b may not match its audio \(aligner path score 6.00"):
        check_alignment(["a", "b"], [10.0, 10.0], validation, [3.0, 6.0])
    with pytest.raises(TranscriptMismatchError, match="clip b does not match.*path_error_score") as raised:
        check_alignment(["a", "b"], [10.0, 10.0], validation, [3.0, 9.0])
    assert raised.value.clip == "b"
    check_alignment(["a"], [10.0], validation, [None])  # a model without a path score: forward-sum only


def test_one_aligner_pass_gives_the_training_forward_sum_score(model):
    from hf_metatts.voice_adapt import prepare_support, processor_for
    from hf_metatts.voice_validation import load_clips, transcript_scores

    validation = ClipValidation()
    examples = prepare_support(load_clips(make_clips(2), SR, validation), processor_for(model), validation, "cpu")
    forward_sums, _ = transcript_scores(model, examples)
    with torch.no_grad():
        trained = [float(model(**{k: v for k, v in e.items() if k != "pitch"}).losses["alignment"]) for e in examples]
    assert forward_sums == pytest.approx(trained, rel=1e-5)


def test_the_path_score_of_a_random_model_passes_the_default_thresholds(model):
    from hf_metatts.voice_adapt import prepare_support, processor_for
    from hf_metatts.voice_validation import load_clips, transcript_scores

    validation = ClipValidation()
    clips = load_clips(make_clips(3), SR, validation)
    _, scores = transcript_scores(model, prepare_support(clips, processor_for(model), validation, "cpu"))
    assert all(0.0 < score < validation.path_warn_score for score in scores), scores


def test_a_file_clip_is_named_by_its_path(model, tmp_path):
    import soundfile

    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.zeros(SR, np.float32), SR)
    with pytest.raises(SilentClipError, match="quiet.wav") as raised:
        model.adapt([(str(path), TEXTS[0])], progress=False)
    assert raised.value.clip == str(path)


def test_a_voice_on_another_base_names_both_fingerprints(model, saved_voice, tmp_path):
    voice = MetaTTSVoice.from_pretrained(saved_voice)
    other = hf_metatts.MetaTTSForTextToSpeech(model.config)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.mel_head.bias.add_(0.01)
    before = weights(other)
    for attempt in (lambda: voice.apply_to(other), lambda: synth(other, voice=voice)):
        with pytest.raises(VoiceMismatchError) as raised:
            attempt()
        assert voice.config.base_fingerprint in str(raised.value)
        assert str(voice.config.base_fingerprint) != hf_metatts.voice_base.base_fingerprint(other)
        assert hf_metatts.voice_base.base_fingerprint(other) in str(raised.value)
    assert_same_weights(other, before)
    # the same weights in another object are accepted
    np.testing.assert_array_equal(synth(model, voice=voice).numpy(), synth(voice.apply_to(model)).numpy())


def test_a_base_changed_on_disk_is_refused_by_the_voice_folder(saved_voice, checkpoint, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(checkpoint, base)
    voice = MetaTTSVoice.from_pretrained(saved_voice)
    voice.config.base_model = str(base)
    voice.save_pretrained(tmp_path / "voice")
    save_tiny_checkpoint(base, frames_per_token=4.0)  # another base at the same place
    with pytest.raises(VoiceMismatchError, match=str(base)):
        hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(tmp_path / "voice"))


def _damaged_copy(saved_voice, tmp_path, damage):
    path = tmp_path / "damaged"
    shutil.copytree(saved_voice, path)
    damage(path)
    return path


def _truncate(path):
    data = (path / "voice.safetensors").read_bytes()
    (path / "voice.safetensors").write_bytes(data[: len(data) // 2])


def _flip_a_value(path):
    data = bytearray((path / "voice.safetensors").read_bytes())
    data[-3] ^= 0x40
    (path / "voice.safetensors").write_bytes(bytes(data))


def _rename_a_tensor(path):
    config = json.loads((path / "voice_config.json").read_text())
    config["adapted_parameter_names"][0] = "voice.not_a_parameter"
    (path / "voice_config.json").write_text(json.dumps(config))


def _garble_config(path):
    (path / "voice_config.json").write_text("{not json")


def _drop_the_weights(path):
    (path / "voice.safetensors").unlink()


DAMAGES = {"truncated": (_truncate, "truncated or corrupted"), "tampered": (_flip_a_value, "checksum"),
           "renamed": (_rename_a_tensor, "tampered"), "garbled config": (_garble_config, "not valid JSON"),
           "no weights": (_drop_the_weights, "no voice.safetensors")}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damaged_voice_files_are_refused(saved_voice, tmp_path, case):
    damage, message = DAMAGES[case]
    path = _damaged_copy(saved_voice, tmp_path, damage)
    digest = folder_digest(path)
    for load in (MetaTTSVoice.from_pretrained, lambda p: hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(p))):
        with pytest.raises(VoiceFileError, match=message) as raised:
            load(path)
        assert isinstance(raised.value, OSError)
    assert folder_digest(path) == digest


def test_a_voice_folder_without_its_config(saved_voice, tmp_path):
    from transformers import pipeline

    path = _damaged_copy(saved_voice, tmp_path, lambda p: (p / "voice_config.json").unlink())
    digest = folder_digest(path)
    with pytest.raises(VoiceConfigMissingError, match="voice_config.json"):
        MetaTTSVoice.from_pretrained(path)
    with pytest.raises(VoiceConfigMissingError):
        hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(path))
    # the pipeline tries each Auto class and reports their errors together
    with pytest.raises(ValueError, match="VoiceConfigMissingError: .* has no voice_config.json"):
        pipeline("text-to-speech", model=str(path))
    assert folder_digest(path) == digest


class _Payload:
    def __reduce__(self):
        return (open, ("/nonexistent-dir/pickle-was-loaded", "w"))


def test_pickles_are_never_read(saved_voice, tmp_path):
    path = _damaged_copy(saved_voice, tmp_path, _drop_the_weights)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload()).replace(b"/nonexistent-dir/pickle-was-loaded", str(marker).encode())
    for name in ("voice.bin", "voice.pt", "pytorch_model.bin"):
        (path / name).write_bytes(payload)
    with pytest.raises(VoiceFileError, match="no voice.safetensors"):
        MetaTTSVoice.from_pretrained(path)
    assert not marker.exists()
