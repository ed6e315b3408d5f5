"""Sentences, audio decoding and WORLD perturbations."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from data_fixtures import requires_fortunes, voiced_clip, wav_bytes

from hf_metatts.data import Perturbation, decode_audio, encode_audio, perturb
from hf_metatts.data.audio import resample
from hf_metatts.data.errors import InvalidAudioError
from hf_metatts.data.sentences import SentencePool, clean_sentences, load_sentences, split_of
from hf_metatts.data.sources.base import VoiceSpec
from hf_metatts.data.sources.espeak import synthesize_batch

FRACTIONS = (0.8, 0.1, 0.1)


def test_clean_sentences_filters_and_deduplicates():
    raw = [
        "The quick brown fox jumps. THE quick brown fox, jumps! Call 555 1234 now please.",
        "Too short. This sentence is fine, isn't it? See http://example.com for more words here.",
        "  -- attribution line of someone",
        "word " * 30 + "end.",
        "ALL CAPS SHOUTING IS OUT.",
    ]
    kept = clean_sentences(raw, "en")
    assert kept == ["The quick brown fox jumps.", "This sentence is fine, isn't it?"]
    assert clean_sentences(["Příliš žluťoučký kůň úpěl ďábelské ódy."], "cs") == [
        "Příliš žluťoučký kůň úpěl ďábelské ódy."
    ]
    assert clean_sentences(["Příliš žluťoučký kůň úpěl ďábelské ódy."], "en") == []


def test_split_assignment_is_deterministic_and_disjoint():
    sentences = [f"Sentence number {w} goes here." for w in ("one two three four five six seven eight".split())]
    sentences += [f"Another {a} {b} sentence." for a in "abcdefghij" for b in "klmnopqrst"]
    pool = SentencePool.from_sentences("en", sentences, seed=3, fractions=FRACTIONS)
    again = SentencePool.from_sentences("en", list(reversed(sentences)), seed=3, fractions=FRACTIONS)
    assert pool.splits == again.splits
    parts = [set(pool.splits[s]) for s in ("train", "validation", "test")]
    assert sum(map(len, parts)) == len(set(sentences))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert all(split_of(s, 3, FRACTIONS) == "train" for s in pool.splits["train"])
    assert 0.6 < len(parts[0]) / len(sentences) < 0.95
    window = pool.take("train", len(pool.splits["train"]) - 1, 3)
    assert window[1:] == pool.splits["train"][:2], "windows wrap around"


@requires_fortunes
def test_at_least_2000_english_training_sentences_exist():
    sentences = load_sentences("en")
    pool = SentencePool.from_sentences("en", sentences, seed=0, fractions=FRACTIONS)
    assert len(pool.splits["train"]) >= 2000
    assert len({s.lower() for s in sentences}) == len(sentences)


def test_decode_audio_accepts_every_form(tmp_path):
    clip = voiced_clip(0.5, sr=22050)
    data = wav_bytes(clip, 22050)
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    expected_len = 8000
    outs = [
        decode_audio({"array": clip, "sampling_rate": 22050}),
        decode_audio({"bytes": data, "path": "a.wav"}),
        decode_audio({"bytes": None, "path": str(path)}),
        decode_audio(str(path)),
        decode_audio(data),
        decode_audio(clip, sampling_rate=22050),
        decode_audio(np.stack([clip, clip], axis=1), sampling_rate=22050),  # stereo, frames x channels
        decode_audio((clip * 32767).astype(np.int16), sampling_rate=22050),
    ]
    for out in outs:
        assert out.dtype == np.float32 and out.ndim == 1
        assert abs(out.size - expected_len) <= 2
        assert np.corrcoef(out[: expected_len - 2], outs[0][: expected_len - 2])[0, 1] > 0.99
    assert decode_audio({"array": clip, "sampling_rate": 22050}, target_sr=22050).size == clip.size


@pytest.mark.parametrize("bad, message", [
    (b"not audio at all", "cannot decode"),
    ({"bytes": b"\x00\x01garbage", "path": "x.wav"}, "cannot decode"),
    ({"path": "/nonexistent/file.wav"}, "does not exist"),
    ({"foo": 1}, "none of 'array', 'bytes' or 'path'"),
    ({"array": [0.1, 0.2]}, "sampling_rate"),
    (None, "None"),
    (object(), "cannot decode audio of type"),
])
def test_decode_audio_rejects_undecodable_input(bad, message):
    with pytest.raises(InvalidAudioError, match=message):
        decode_audio(bad)


def test_encode_audio_roundtrip_is_16k_flac():
    clip = voiced_clip(0.3, sr=16000)
    value = encode_audio(clip, 16000, path="x.flac")
    info = sf.info(io.BytesIO(value["bytes"]))
    assert info.format == "FLAC" and info.samplerate == 16000
    assert np.max(np.abs(decode_audio(value) - clip)) < 1e-3


def _f0(audio, sr):
    import pyworld as pw

    f0, _ = pw.dio(audio.astype(np.float64), sr)
    return float(np.median(f0[f0 > 0]))


def _envelope_centroid(audio, sr):
    """Centroid (Hz) of the mean WORLD spectral envelope of the voiced frames: it follows the formants."""
    import pyworld as pw

    x = audio.astype(np.float64)
    f0, t = pw.dio(x, sr)
    sp = pw.cheaptrick(x, pw.stonemask(x, f0, t, sr), t, sr)[f0 > 0].mean(axis=0)
    freqs = np.linspace(0, sr / 2, sp.size)
    return float((sp * freqs).sum() / sp.sum())


def test_perturbation_shifts_pitch_and_formants():
    pytest.importorskip("pyworld")
    sr = 16000
    clip = voiced_clip(1.0, f0=120.0, sr=sr)
    up = perturb(clip, sr, Perturbation(pitch=1.25, formant=1.0))
    assert abs(up.size - clip.size) < sr * 0.02
    assert _f0(up, sr) / _f0(clip, sr) == pytest.approx(1.25, rel=0.05)
    speech = resample(synthesize_batch(VoiceSpec("espeak", "en-us+m1", "en-us"), ["Hello world, how are you?"])[0]
                      .audio, 22050, sr)
    higher = perturb(speech, sr, Perturbation(pitch=1.0, formant=1.15))
    lower = perturb(speech, sr, Perturbation(pitch=1.0, formant=0.87))
    assert _f0(higher, sr) == pytest.approx(_f0(speech, sr), rel=0.05), "a formant shift keeps the pitch"
    assert _envelope_centroid(higher, sr) > 1.1 * _envelope_centroid(speech, sr)
    assert _envelope_centroid(lower, sr) < 0.95 * _envelope_centroid(speech, sr)
    assert perturb(clip, sr, Perturbation()) is not None and np.array_equal(perturb(clip, sr, Perturbation()), clip)
    assert np.max(np.abs(perturb(clip, sr, Perturbation(0.8, 0.92)))) <= 0.99 + 1e-6
