"""benchmarks/vocoder_adaptation_speed.py: its variants, and a real timing of two of them on a tiny vocoder."""

import json
import statistics

import pytest
from benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("vocoder_adaptation_speed")


def test_a_variant_is_a_name_and_the_settings_it_replaces(script):
    assert script.parse_variant("fast:steps=18,clip_context=true") == ("fast", {"steps": 18, "clip_context": True})
    assert script.parse_variant("head:parameters=head.*+final_norm.*") == (
        "head", {"parameters": ["head.*", "final_norm.*"]})
    assert script.parse_variant("shipped:") == ("shipped", {})


@pytest.mark.parametrize("text, message", [
    (":steps=3", "is not NAME:SETTING=VALUE"),
    ("a:rate=3", "is not SETTING=VALUE"),
    ("a:clip_context=maybe", "clip_context='maybe': give true or false"),
])
def test_a_bad_variant_is_refused_with_what_is_wrong(script, text, message):
    with pytest.raises(ValueError, match=message):
        script.parse_variant(text)


def test_the_variants_are_timed_in_turn_and_compared_to_the_first(script, tmp_path, tiny_istft_checkpoint):
    checkpoint = tiny_istft_checkpoint
    out = tmp_path / "speed.json"
    assert script.main(["--checkpoint", str(checkpoint), "--variant", "segments:steps=2,parameters=head.*",
                        "clips:steps=2,parameters=head.*,clip_context=true", "--rounds", "2", "--frames", "40",
                        "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["variants"]) == ["segments", "clips"]
    assert result["variants"]["segments"]["ratio_to_first_median"] == 1.0
    assert result["variants"]["clips"]["settings"]["clip_context"] is True
    assert result["variants"]["clips"]["settings"]["parameters"] == ["head.*"]
    assert all(len(times) == 2 and min(times) > 0 for times in result["seconds"].values())
    seconds = result["seconds"]
    ratios = [clips / segments for clips, segments in zip(seconds["clips"], seconds["segments"])]
    assert result["variants"]["clips"]["ratio_to_first_median"] == round(statistics.median(ratios), 4)
    assert result["variants"]["clips"]["median_s"] == round(statistics.median(seconds["clips"]), 4)
    with pytest.raises(Exception, match="reach beyond it"):
        script.main(["--checkpoint", str(checkpoint), "--variant", "bad:parameters=*,clip_context=true",
                     "--out", str(tmp_path / "bad.json")])
    assert not (tmp_path / "bad.json").exists()
