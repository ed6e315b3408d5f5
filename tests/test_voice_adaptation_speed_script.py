"""benchmarks/voice_adaptation_speed.py: its ``--vocoder SETTING=VALUE`` settings."""

import pytest
from benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("voice_adaptation_speed")


def test_vocoder_settings_are_typed_as_the_config_fields(script):
    settings = script.vocoder_settings(["steps=20", "learning_rate=3e-3", "parameters=head.*,final_norm.*",
                                        "adapt_phase=false"])
    assert settings == {"steps": 20, "learning_rate": 3e-3, "parameters": ["head.*", "final_norm.*"],
                        "adapt_phase": False}
    assert script.vocoder_settings(["adapt_phase=True"]) == {"adapt_phase": True}
    assert script.vocoder_settings(["clip_context=true"]) == {"clip_context": True}


@pytest.mark.parametrize("item, message", [
    ("adapt_phase=no", "adapt_phase='no': give true or false"),
    ("clip_context=1", "clip_context='1': give true or false"),
    ("phase=false", "is not SETTING=VALUE"),
    ("steps=", "is not SETTING=VALUE"),
])
def test_a_bad_vocoder_setting_is_refused_with_its_name(script, item, message):
    with pytest.raises(ValueError, match=message):
        script.vocoder_settings([item])
