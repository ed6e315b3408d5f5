"""The synthesiser wrappers: espeak-ng timings, flite -psdur and festival segment parsing, real voices."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hf_metatts.data.sources import espeak, festival, flite
from hf_metatts.data.sources.base import Style, VoiceSpec

requires_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="festival not installed")
requires_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")


def test_parse_psdur_and_segs():
    assert flite.parse_psdur("pau:0.164 hh:0.255 ax:0.304 junk") == [
        {"phone": "pau", "start": 0.0, "end": 0.164},
        {"phone": "hh", "start": 0.164, "end": 0.255},
        {"phone": "ax", "start": 0.255, "end": 0.304},
    ]
    segs = "#\n0.2000 100 pau\n0.2610 100 hh\nbad line\n0.2994 100 ax\n"
    assert [t["phone"] for t in festival.parse_segs(segs)] == ["pau", "hh", "ax"]
    assert festival.parse_segs(segs)[1] == {"phone": "hh", "start": 0.2, "end": 0.261}


def test_espeak_timings_cover_the_audio_and_style_changes_rate():
    voice = VoiceSpec("espeak", "en-us+m3", "en-us")
    text = "The weather is lovely today, is it not?"
    normal = espeak.synthesize_batch(voice, [text])[0]
    fast = espeak.synthesize_batch(voice, [text], Style("fast", rate=1.6))[0]
    assert normal.sampling_rate == 22050
    assert len(fast.audio) < 0.8 * len(normal.audio)
    timings = normal.phone_timings
    assert len(timings) >= 20
    assert timings[-1]["end"] == pytest.approx(len(normal.audio) / 22050)
    assert all(a["end"] == b["start"] for a, b in zip(timings, timings[1:]))


def test_an_espeak_voice_renders_the_same_clips_whatever_was_rendered_before():
    """espeak-ng carries state from one synthesis to the next; each batch renders in a fresh child, so a voice's
    clips do not depend on which voices a corpus worker rendered before them."""
    voice = VoiceSpec("espeak", "en-gb+f4", "en-gb")
    texts = ["The quick brown fox jumps over the lazy dog.", "A second sentence carries the state on."]
    first = espeak.synthesize_batch(voice, texts)
    espeak.synthesize_batch(VoiceSpec("espeak", "en-us+m3", "en-us"), ["Another voice renders in between."])
    again = espeak.synthesize_batch(voice, texts)
    for one, other in zip(first, again):
        assert np.array_equal(one.audio, other.audio) and one.phone_timings == other.phone_timings


@requires_flite
def test_flite_voice_with_timings_and_pitch_style():
    voice = VoiceSpec("flite", "kal16", "en-us")
    out = flite.synthesize_batch(voice, ["A short test sentence.", 'With "quotes" inside.'])
    assert all(o is not None and o.sampling_rate == 16000 for o in out)
    assert out[0].phone_timings[0]["phone"] == "pau"
    # flite's final pause may run past the samples (the builder clips timings to the audio)
    assert out[0].phone_timings[-1]["end"] == pytest.approx(len(out[0].audio) / 16000, abs=0.2)
    slow = flite.synthesize_batch(voice, ["A short test sentence."], Style("slow", rate=0.7))[0]
    assert len(slow.audio) > 1.2 * len(out[0].audio)


@requires_festival
def test_festival_batch_survives_unencodable_text_and_reports_segments():
    if "kal_diphone" not in festival.installed_voices():
        pytest.skip("festvox-kallpc16k not installed")
    voice = VoiceSpec("festival", "kal_diphone", "en-us", "latin-1")
    out = festival.synthesize_batch(voice, ["Hello there.", "Привет мир.", 'He said "yes" \\ no.'])
    assert out[1] is None, "text the voice cannot encode is skipped"
    assert out[0] is not None and out[2] is not None
    assert out[0].sampling_rate == 16000 and out[0].phone_timings[0]["phone"] == "pau"
