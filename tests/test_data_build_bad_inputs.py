"""Bad input while building: empty transcripts, failed/silent/too-long clips, tasks left too small."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import requires_fortunes, voiced_clip

from hf_metatts.data import NoSentencesError, SourceUnavailableError, build_corpus, get_preset
from hf_metatts.data.plan import Job, make_plan
from hf_metatts.data.quality import ClipLimits, check_clip
from hf_metatts.data.render import render_rows
from hf_metatts.data.sentences import load_sentences
from hf_metatts.data.sources.base import Synthesis, VoiceSpec

SR = 16000


SILENT_VOICE = "en-us+m1"


def _fake_espeak(voice, texts, style):
    """Good clips, except: 'silent' -> zeros, 'long' -> 20 s, 'fail' -> None, SILENT_VOICE -> all silent."""
    out = []
    for text in texts:
        if voice.voice == SILENT_VOICE or "silent" in text:
            out.append(Synthesis(np.zeros(SR, dtype=np.float32), SR))
        elif "long" in text:
            out.append(Synthesis(voiced_clip(20.0, sr=SR), SR))
        elif "fail" in text:
            out.append(None)
        else:
            out.append(Synthesis(voiced_clip(1.0, sr=SR), SR, [{"phone": "a", "start": 0.0, "end": 1.2}]))
    return out


def test_render_rows_counts_every_bad_clip():
    job = Job(voice=VoiceSpec("espeak", "en-us+f1", "en-us"), speaker_id="espeak:en-us+f1",
              base_speaker="espeak:en-us+f1", split="train",
              sentences=["", "A silent one here.", "A very long one.", "This will fail.", "Fine words here.",
                         "No phonemes here."],
              phonemes=["", "ə", "ə", "ə", "fˈaɪn", ""])
    rows, skipped = render_rows(job, ClipLimits(0.3, 15.0), {"espeak": _fake_espeak})
    assert dict(skipped) == {"empty_text": 1, "silent": 1, "too_long": 1, "synthesis_failed": 1, "no_phonemes": 1}
    assert [r["text"] for r in rows] == ["Fine words here."]
    assert rows[0]["phone_timings"][-1]["end"] == pytest.approx(1.0), "timings are clipped to the audio"


def test_check_clip_reasons():
    limits = ClipLimits(0.3, 2.0)
    good = voiced_clip(1.0, sr=SR)
    assert check_clip(good, SR, "words", limits) is None
    assert check_clip(good, SR, "   ", limits) == "empty_text"
    assert check_clip(np.zeros(SR, np.float32), SR, "words", limits) == "silent"
    assert check_clip(np.zeros(0, np.float32), SR, "words", limits) == "silent"
    assert check_clip(good[: SR // 10], SR, "words", limits) == "too_short"
    assert check_clip(np.tile(good, 3), SR, "words", limits) == "too_long"
    bad = good.copy()
    bad[3] = np.nan
    assert check_clip(bad, SR, "words", limits) == "not_finite"


@requires_fortunes
def test_build_skips_and_counts_bad_clips_and_drops_small_tasks(tmp_path):
    preset = get_preset("tiny").replace(
        espeak_voices={"en-us": ("m1", "m3", "f1", "f3", "m5", "f5", "m7", "f2", "f4")}, flite_voices=(),
        festival_voices=(), perturbations=(), utterances_per_task=4, min_utterances=3,
    )
    train_voices = sorted(j.speaker_id for j in make_plan(preset).jobs if j.split == "train")
    assert f"espeak:{SILENT_VOICE}" in train_voices, "the silent voice must be a training voice for this test"
    report = build_corpus(tmp_path / "c", preset, num_workers=0, synthesizers={"espeak": _fake_espeak})
    dropped = {k.split(":", 1)[1] for k in report.dropped_tasks}
    assert dropped == {f"espeak:{SILENT_VOICE}"}, "the all-silent voice is left out and reported"
    assert report.skipped["silent"] >= 4
    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "c"))
    assert all(f"espeak:{SILENT_VOICE}" not in dd[s]["speaker_id"] for s in dd)
    assert sum(report.splits[s]["tasks"] for s in report.splits) == 8
    assert "dropped tasks (< min utterances): 1" in report.table()


def test_missing_fortunes_give_a_clear_error(tmp_path):
    with pytest.raises(NoSentencesError, match="install_synthesizers"):
        load_sentences("en", root=tmp_path)
    with pytest.raises(NoSentencesError, match="no sentence source"):
        load_sentences("fi", root=tmp_path)


def _espeak_broken_for_f3(voice, texts, style):
    if voice.voice == "en-us+f3":
        raise SourceUnavailableError("espeak-ng has no voice 'en-us+f3'")
    return _fake_espeak(voice, texts, style)


@requires_fortunes
def test_a_failing_voice_is_reported_and_retried_on_rerun(tmp_path):
    import json

    preset = get_preset("tiny").replace(
        espeak_voices={"en-us": ("m3", "f1", "f3", "m5", "f5", "m7")}, flite_voices=(), festival_voices=(),
        perturbations=(), utterances_per_task=3, min_utterances=2, voice_fractions=(0.34, 0.33, 0.33),
    )
    out = tmp_path / "c"
    report = build_corpus(out, preset, num_workers=0, synthesizers={"espeak": _espeak_broken_for_f3})
    assert list(report.extra["failed_tasks"]) == [j.job_id for j in make_plan(preset).jobs
                                                  if j.speaker_id == "espeak:en-us+f3"]
    assert "failed tasks" in report.table()
    assert json.loads((out / "build_manifest.json").read_text())["status"] == "partial"
    report = build_corpus(out, preset, num_workers=0, synthesizers={"espeak": _fake_espeak})
    assert report.extra["failed_tasks"] == {}
    assert sum(report.splits[s]["tasks"] for s in report.splits) == 6


def test_espeak_language_codes_resolve_to_voice_files():
    from hf_metatts.data.sources import espeak

    assert espeak.voice_file("en-gb+m1") == "en+m1"
    assert espeak.voice_file("en-us+f2").lower() == "en-us+f2"
    assert {"en-gb", "en-gb-scotland", "cs", "ru"} <= espeak.known_languages()
    audio = espeak.synthesize_batch(VoiceSpec("espeak", "en-gb+m1", "en-gb"), ["Good morning to you."])[0].audio
    assert audio.size > 0.3 * 22050
