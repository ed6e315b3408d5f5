"""benchmarks/user_clips.py: model.adapt on support clips with quiet noise before and after them and at another
level, read as recorded and as model.adapt prepares them, on the tiny corpus with a tiny checkpoint."""

import json

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("user_clips")


def test_a_condition_pads_with_quiet_noise_and_scales_the_clip(script):
    clip = {"audio": np.ones(1000, np.float32), "text": "a", "language": "en"}
    (recorded,) = script.recorded_clips([clip], (0.25, -20.0), -60.0, 16000, seed=0)
    assert recorded["text"] == "a" and len(recorded["audio"]) == 1000 + 2 * 4000
    assert np.allclose(recorded["audio"][4000:5000], 0.1)
    assert np.sqrt(np.mean(recorded["audio"][:4000] ** 2)) == pytest.approx(1e-3, rel=0.05)


def test_each_condition_is_read_as_recorded_and_as_adapt_prepares_it(script, tmp_path):
    from hf_metatts.data import build_corpus
    from hf_metatts.voice_validation import ClipValidation

    corpus = tmp_path / "voices"
    build_corpus(corpus, "tiny", num_workers=2)
    model_dir = tmp_path / "model"
    save_tiny_checkpoint(model_dir)
    out = tmp_path / "user_clips.json"
    script.main(["--checkpoint", str(model_dir), "--corpus", str(corpus), "--split", "test", "--shots", "2",
                 "--heldout", "1", "--conditions", "0:0", "0.5:0", "0:-20", "--threads", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert result["conditions"] == ["pad_0s_gain_0dB", "pad_0.5s_gain_0dB", "pad_0s_gain_-20dB"]
    assert len(result["means"]) == 9 and len(result["tasks"]) >= 2
    assert "pad_0.5s_gain_0dB_default_minus_whole" in result["differences"]
    assert "pad_0s_gain_-20dB_trimmed_minus_pad_0s_gain_0dB" in result["differences"]
    edge = 2 * 2 * (ClipValidation().trim_margin_seconds + ClipValidation().trim_frame_seconds)  # 2 clips, 2 ends
    for name in result["tasks"]:
        row = result["per_task"][name]
        assert all(-1 <= reading["similarity"] <= 1 for reading in row.values())
        # read whole, the voice read 2 clips x 2 x 0.5 s more; cut, about what it read without the padding
        assert row["pad_0.5s_gain_0dB_whole"]["support_seconds"] == pytest.approx(
            row["pad_0s_gain_0dB_whole"]["support_seconds"] + 2.0, abs=2e-3)
        for processing in ("trimmed", "default"):
            assert abs(row[f"pad_0.5s_gain_0dB_{processing}"]["support_seconds"]
                       - row[f"pad_0s_gain_0dB_{processing}"]["support_seconds"]) <= edge
        # scaled to one speech level, 20 dB quieter clips give the same voice, so the same similarity
        assert row["pad_0s_gain_-20dB_default"]["similarity"] == pytest.approx(
            row["pad_0s_gain_0dB_default"]["similarity"], abs=1e-3)


@pytest.mark.parametrize("condition", ["0:-50", "-1:0", "half:0", "0.5"])
def test_a_condition_out_of_range_is_refused_before_anything_is_read(script, tmp_path, condition):
    out = tmp_path / "never.json"
    with pytest.raises(SystemExit):
        script.main(["--checkpoint", str(tmp_path), "--conditions", condition, "--out", str(out)])
    assert not out.exists()
