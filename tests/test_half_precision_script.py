"""benchmarks/half_precision.py: a checkpoint's synthesis in float16 and bfloat16 against float32."""

import json

import pytest
from benchmark_scripts import load_benchmark_script
from test_voice_adapt import make_clips, one_thread
from tiny_models import save_tiny_checkpoint

import hf_metatts

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")

__all__ = ["one_thread"]


def test_the_script_compares_each_precision_with_float32_with_and_without_a_voice(tmp_path):
    half_precision = load_benchmark_script("half_precision")
    save_tiny_checkpoint(tmp_path / "base")  # Griffin-Lim: audible from random weights, unlike an untrained vocoder
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "base")
    model.adapt(make_clips(2), method="finetune", steps=1, progress=False).save_pretrained(tmp_path / "voice")
    out = tmp_path / "half.json"
    half_precision.main(["--checkpoint", str(tmp_path / "base"), "--voice", str(tmp_path / "voice"), "--runs", "1",
                         "--threads", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["dtypes"]) == {"float32", "float16", "bfloat16"}
    float32 = result["dtypes"]["float32"]
    for label in ("base voice", "voice"):
        assert float32[label] == {"same_length": True, "correlation": 1.0, "max_abs_difference": 0.0,
                                  "speaker_similarity_to_float32": pytest.approx(1.0, abs=1e-5)}
        for name in ("float16", "bfloat16"):
            entry = result["dtypes"][name][label]
            assert 0.9 < entry["speaker_similarity_to_float32"] <= 1.0 + 1e-5 and entry["correlation"] > 0.5
    assert float32["rtf_ratio_to_float32"] == 1.0 and all(e["rtf"] > 0 for e in result["dtypes"].values())
    assert result["command"].startswith("python benchmarks/half_precision.py --checkpoint")
    assert (tmp_path / "half.png").exists()
