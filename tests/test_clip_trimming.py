"""`model.adapt` cuts each support clip's leading and trailing silence (`voice_validation.trim_silence`)."""

import numpy as np
import pytest
from test_voice_adapt import (
    SR,
    TEXTS,
    _fresh_bases,
    assert_same_weights,
    checkpoint,
    model,
    one_thread,
    speechlike,
    weights,
)

from hf_metatts.voice_errors import ClipDurationError
from hf_metatts.voice_validation import ClipValidation, load_clips, speech_bounds, trim_silence

__all__ = ["_fresh_bases", "checkpoint", "model", "one_thread"]  # the voice tests' fixtures

QUIET = 1e-3  # RMS of the padding: -60 dBFS, a quiet room


def padded(seconds_before: float, sound: np.ndarray, seconds_after: float, seed: int = 0) -> np.ndarray:
    """``sound`` with quiet noise of the given lengths before and after it."""
    rng = np.random.default_rng(seed)
    before = rng.normal(0.0, QUIET, int(seconds_before * SR))
    after = rng.normal(0.0, QUIET, int(seconds_after * SR))
    return np.concatenate([before, sound, after]).astype(np.float32)


def test_the_bounds_hold_the_sound_and_the_margin_around_it():
    validation = ClipValidation()
    sound = speechlike(1.0)
    start, end = speech_bounds(padded(0.7, sound, 0.4), SR, validation)
    frame = validation.trim_frame_seconds
    margin = validation.trim_margin_seconds
    # the first loud frame may begin up to one frame before the sound; the last may end up to one frame after it
    assert 0.7 - margin - frame <= start / SR <= 0.7 - margin
    assert 1.7 + margin <= end / SR <= 1.7 + margin + frame


def test_a_clip_without_quiet_ends_is_kept_whole():
    sound = speechlike(1.3)
    assert speech_bounds(sound, SR, ClipValidation()) == (0, len(sound))
    assert trim_silence("#0", sound, SR, ClipValidation()) is sound


def test_trimming_off_keeps_the_silence():
    clip = padded(0.5, speechlike(1.0), 0.5)
    assert speech_bounds(clip, SR, ClipValidation(trim_silence_db=None)) == (0, len(clip))


def test_a_lower_threshold_cuts_into_soft_sound():
    """Sound 30 dB below the loud part counts as silence at 20 dB, as sound at 40 dB."""
    soft = speechlike(0.5) * 10 ** (-30 / 20)
    clip = np.concatenate([soft, speechlike(1.0)]).astype(np.float32)
    assert speech_bounds(clip, SR, ClipValidation(trim_floor_db=None))[0] == 0
    start, _ = speech_bounds(clip, SR, ClipValidation(trim_silence_db=20.0, trim_floor_db=None,
                                                      trim_margin_seconds=0.0))
    assert 0.45 <= start / SR <= 0.5


def test_pauses_in_a_noisy_room_are_cut_above_the_noise_floor():
    """Room noise 35 dB below the loudest frame is within the 40 dB of the loudest-frame threshold; the noise floor
    (its 5th-percentile frame) + 10 dB puts it below the threshold."""
    rng = np.random.default_rng(1)
    sound = speechlike(1.0)
    noise = [rng.normal(0.0, 0.01, SR // 2) for _ in range(2)]  # -40 dBFS, ~35 dB below the loudest frame
    clip = np.concatenate([noise[0], sound + rng.normal(0.0, 0.01, len(sound)), noise[1]]).astype(np.float32)
    assert speech_bounds(clip, SR, ClipValidation(trim_floor_db=None)) == (0, len(clip))
    start, end = speech_bounds(clip, SR, ClipValidation())
    assert 0.5 - 0.1 - 0.025 <= start / SR <= 0.5 - 0.1 and 1.5 + 0.1 <= end / SR <= 1.5 + 0.1 + 0.025


def test_a_clip_without_pauses_and_little_dynamic_range_is_kept_whole():
    """Its noise floor is sound; the cap keeps the threshold 20 dB below the loudest frame."""
    tone = sine(1.5, 0.3)
    assert speech_bounds(tone, SR, ClipValidation()) == (0, len(tone))


def test_load_clips_cuts_the_silence_and_keeps_the_transcript():
    clip = padded(0.8, speechlike(1.2), 0.6)
    (loaded,) = load_clips([(clip, TEXTS[0])], SR, array_sampling_rate=SR)
    assert loaded.text == TEXTS[0]
    assert 1.2 + 0.2 <= loaded.seconds <= 1.2 + 0.2 + 2 * ClipValidation().trim_frame_seconds
    (whole,) = load_clips([(clip, TEXTS[0])], SR, ClipValidation(trim_silence_db=None), array_sampling_rate=SR)
    assert whole.seconds == pytest.approx(len(clip) / SR)


def test_adapt_reads_the_trimmed_clips(model):
    clips = [(padded(0.9, speechlike(1.6 + 0.2 * i, 160 + 7 * i, seed=i), 0.7, seed=i), TEXTS[i]) for i in range(2)]
    voice = model.adapt(clips, sampling_rate=SR, steps=1, progress=False)
    untrimmed = model.adapt(clips, sampling_rate=SR, steps=1, progress=False,
                            validation=ClipValidation(trim_silence_db=None))
    speech = 1.6 + 1.8
    assert speech + 0.4 <= voice.config.support_seconds <= speech + 0.4 + 4 * ClipValidation().trim_frame_seconds
    assert untrimmed.config.support_seconds == pytest.approx(speech + 2 * 1.6, abs=1e-3)


def test_a_clip_with_too_little_sound_is_refused_naming_it_and_nothing_changes(model):
    before = weights(model)
    clips = [(speechlike(1.6), TEXTS[0]), (padded(1.0, speechlike(0.2), 1.0), TEXTS[1])]
    with pytest.raises(ClipDurationError, match=r"Clip #1 holds only 0\.4\d s of sound") as raised:
        model.adapt(clips, sampling_rate=SR, steps=1, progress=False)
    assert raised.value.clip == "#1"
    assert_same_weights(model, before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("field, value, message", [
    ("trim_silence_db", 0.0, "trim_silence_db=0.0 must be a finite number of dB above 0"),
    ("trim_silence_db", float("nan"), "trim_silence_db=nan"),
    ("trim_margin_seconds", -0.1, "trim_margin_seconds=-0.1 must be a finite number of seconds >= 0"),
    ("trim_floor_db", -1.0, "trim_floor_db=-1.0 must be a finite number of dB above 0"),
    ("trim_floor_percentile", 50.0, r"trim_floor_percentile=50.0 must lie in \[0, 50\)"),
    ("trim_floor_cap_db", float("inf"), "trim_floor_cap_db=inf must be a finite number"),
    ("trim_frame_seconds", 0.0, r"trim_frame_seconds=0.0 must lie in \(0, 0.1\]"),
    ("trim_frame_seconds", 0.5, "trim_frame_seconds=0.5"),
])
def test_bad_trimming_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        ClipValidation(**{field: value})


def sine(seconds: float, amplitude: float, frequency: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_the_speech_level_is_the_rms_of_the_loud_frames():
    from hf_metatts.voice_validation import speech_level_dbfs

    tone = sine(1.0, 0.5)  # RMS 0.5 / sqrt(2): -9.0 dBFS
    assert speech_level_dbfs(tone, SR, ClipValidation()) == pytest.approx(-9.03, abs=0.05)
    # pauses of room noise 51 dB below it do not lower it
    assert speech_level_dbfs(padded(1.0, tone, 1.0), SR, ClipValidation()) == pytest.approx(-9.03, abs=0.15)
    # noise within speech_frame_db of the loudest frame counts as speech
    assert speech_level_dbfs(padded(1.0, sine(1.0, 0.02), 1.0), SR, ClipValidation()) < -37.0
    assert speech_level_dbfs(np.zeros(SR, np.float32), SR, ClipValidation()) == -np.inf


def test_clips_are_set_to_one_speech_level_with_the_peak_held():
    from hf_metatts.voice_validation import set_speech_level, speech_level_dbfs

    validation = ClipValidation(speech_level_dbfs=-20.0)
    for amplitude in (0.003, 0.03, 0.5):
        scaled = set_speech_level("#0", sine(1.0, amplitude), SR, validation)
        assert speech_level_dbfs(scaled, SR, validation) == pytest.approx(-20.0, abs=0.05)
    spiky = sine(1.0, 0.01)
    spiky[SR // 2] = 0.5  # reaching -20 dBFS would put this sample at 7 x full scale
    held = set_speech_level("#0", spiky, SR, validation)
    assert np.max(np.abs(held)) == pytest.approx(validation.level_peak, rel=1e-5)
    unchanged = sine(1.0, 0.003)
    assert set_speech_level("#0", unchanged, SR, ClipValidation(speech_level_dbfs=None)) is unchanged


def test_load_clips_sets_the_level_only_when_asked():
    from hf_metatts.voice_validation import speech_level_dbfs

    clips = [(sine(1.2, 0.005), TEXTS[0]), (sine(1.2, 0.2, 330.0), TEXTS[1])]
    levelled = load_clips(clips, SR, ClipValidation(speech_level_dbfs=-26.0), array_sampling_rate=SR)
    assert [speech_level_dbfs(c.audio, SR, ClipValidation()) for c in levelled] == pytest.approx([-26.0, -26.0],
                                                                                                 abs=0.05)
    kept = load_clips(clips, SR, ClipValidation(speech_level_dbfs=None), array_sampling_rate=SR)
    assert [np.max(np.abs(c.audio)) for c in kept] == pytest.approx([0.005, 0.2], rel=1e-3)


def test_with_a_speech_level_the_voice_does_not_depend_on_the_recording_level(model):
    import torch

    clips = [(speechlike(1.6 + 0.2 * i, 160 + 7 * i, seed=i) * 0.5, TEXTS[i]) for i in range(2)]
    quiet = [(audio * 0.05, text) for audio, text in clips]  # 26 dB quieter
    validation = ClipValidation(speech_level_dbfs=-20.0)
    voices = [model.adapt(c, sampling_rate=SR, steps=1, progress=False, validation=validation) for c in (clips, quiet)]
    for name, value in voices[0].adapted_parameters.items():
        assert torch.allclose(value, voices[1].adapted_parameters[name], atol=1e-4), name
    as_recorded = [model.adapt(c, sampling_rate=SR, steps=1, progress=False,
                               validation=ClipValidation(speech_level_dbfs=None)) for c in (clips, quiet)]
    assert any(not torch.allclose(value, as_recorded[1].adapted_parameters[name], atol=1e-4)
               for name, value in as_recorded[0].adapted_parameters.items())


@pytest.mark.parametrize("field, value, message", [
    ("speech_level_dbfs", 0.0, r"speech_level_dbfs=0.0 must lie in \[-60, -3\] dBFS"),
    ("speech_level_dbfs", -70.0, "speech_level_dbfs=-70.0"),
    ("speech_frame_db", 0.0, "speech_frame_db=0.0 must be a finite number of dB above 0"),
    ("level_peak", 1.5, r"level_peak=1.5 must lie in \(0, 1\]"),
])
def test_bad_level_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        ClipValidation(**{field: value})
