import io

import numpy as np
import pytest
import soundfile
from transformers import SpeechT5FeatureExtractor

from hf_metatts import InvalidAudioError, MetaTTSFeatureExtractor


def tone(frequency=150.0, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture(scope="module")
def extractor():
    return MetaTTSFeatureExtractor()


def test_matches_speecht5_mel_definition(extractor):
    audio = np.random.RandomState(0).randn(24000).astype(np.float32) * 0.1
    ours = extractor(audio, sampling_rate=16000)["input_features"][0]
    reference = SpeechT5FeatureExtractor()(audio_target=audio, sampling_rate=16000)["input_values"][0]
    assert ours.shape == reference.shape == (1 + 24000 // 256, 80)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_resamples_any_rate(extractor):
    at16k = extractor(tone(rate=16000), sampling_rate=16000)["input_features"][0]
    at44k = extractor(tone(rate=44100), sampling_rate=44100)["input_features"][0]
    assert abs(at16k.shape[0] - at44k.shape[0]) <= 1
    frames = min(at16k.shape[0], at44k.shape[0])
    assert np.abs(at16k[2 : frames - 2] - at44k[2 : frames - 2]).mean() < 0.05


def test_stereo_is_mixed_to_mono(extractor):
    mono = tone()
    stereo = np.stack([mono, mono], axis=1)
    mixed = extractor(stereo, sampling_rate=16000)["input_features"]
    np.testing.assert_allclose(mixed, extractor(mono, sampling_rate=16000)["input_features"], atol=1e-5)


def test_pitch_of_a_tone(extractor):
    pitch = extractor(tone(150.0), sampling_rate=16000, return_pitch=True)["pitch"][0]
    voiced = pitch[pitch > 0]
    assert len(voiced) > 0.8 * len(pitch)
    assert np.median(np.exp(voiced)) == pytest.approx(150.0, rel=0.03)


def test_decodes_file_bytes_and_paths(extractor, tmp_path):
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(rate=22050), 22050, format="WAV")
    from_bytes = extractor({"bytes": buffer.getvalue(), "path": None})["input_features"]
    path = tmp_path / "clip.wav"
    path.write_bytes(buffer.getvalue())
    from_path = extractor(str(path))["input_features"]
    np.testing.assert_allclose(from_bytes, from_path)
    assert from_path.shape[1] == 1 + int(len(tone(rate=22050)) * 16000 / 22050) // 256


def test_batch_is_padded_with_silence_and_masked(extractor):
    batch = extractor([tone(seconds=0.5), tone(seconds=1.0)], sampling_rate=16000, return_tensors="pt")
    assert batch["input_features"].shape[:2] == batch["attention_mask"].shape
    short = int(batch["attention_mask"][0].sum())
    assert short == 1 + 8000 // 256
    assert (batch["input_features"][0, short:] == -10.0).all()


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2] * 1000, dtype=np.float32), "NaN or infinite"),
        (np.array([0.1, np.inf] * 1000, dtype=np.float32), "NaN or infinite"),
        ({"bytes": b"this is not audio", "path": None}, "Could not decode"),
        ({"path": None}, "neither 'array' nor 'bytes' nor 'path'"),
    ],
)
def test_bad_audio_raises(extractor, audio, message):
    original = audio.copy() if isinstance(audio, np.ndarray) else dict(audio)
    with pytest.raises(InvalidAudioError, match=message):
        extractor(audio, sampling_rate=16000)
    if isinstance(audio, np.ndarray):
        np.testing.assert_array_equal(audio, original)


def test_integer_pcm_is_scaled_like_float_audio(extractor):
    audio = np.random.RandomState(1).uniform(-0.3, 0.3, 16000).astype(np.float32)  # energy in every mel bin
    pcm = np.round(audio * 32768).astype(np.int16)
    as_float = extractor(audio, sampling_rate=16000)["input_features"]
    as_int = extractor(pcm, sampling_rate=16000)["input_features"]
    # 16-bit quantisation noise only: unscaled PCM would be log10(32767) = 4.5 higher everywhere
    assert np.abs(as_int - as_float).max() < 0.1 and np.abs(as_int - as_float).mean() < 0.01
