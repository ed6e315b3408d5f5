"""benchmarks/aligner_durations.py: the support clips' durations against the corpus's phone timings, one row per
weight of the duration predictor in the aligner's search, on the tiny corpus with a tiny checkpoint."""

import json

import pytest
import torch
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("aligner_durations")


def test_frame_errors_count_only_the_valid_tokens(script):
    durations = torch.tensor([[3, 5, 2, 0], [4, 4, 4, 4]])
    timings = torch.tensor([[3, 2, 2, 7], [4, 4, 8, 4]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    # valid tokens: |0|,|3|,|0| and |0|,|0|,|4|,|0| -> 7 frames over 7 tokens, 2 of them more than 2 off
    assert script.frame_errors(durations, timings, mask) == {
        "mean_abs_frames": pytest.approx(1.0), "tokens_off_by_more_than_2": pytest.approx(2 / 7)}


def test_each_weight_is_read_on_the_same_clips_and_written_with_a_plot(script, tmp_path):
    from hf_metatts.data import build_corpus

    corpus = tmp_path / "voices"
    build_corpus(corpus, "tiny", num_workers=2)
    model_dir = tmp_path / "model"
    model = save_tiny_checkpoint(model_dir)
    with torch.no_grad():  # uneven expected durations, so a strong weight pulls the search towards them
        model.duration_predictor.head.weight.normal_(std=0.3, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(model_dir)
    out = tmp_path / "durations.json"
    script.main(["--checkpoint", str(model_dir), "--corpus", str(corpus), "--split", "test", "--shots", "2",
                 "--heldout", "1", "--weights", "0", "1000", "--threads", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert result["weights"] == [0.0, 1000.0] and len(result["tasks"]) >= 2
    assert list(result["summary"]) == ["0", "1000", script.PREDICTOR]
    for name in result["tasks"]:
        rows = result["per_task"][name]
        assert set(rows) == {"0", "1000", script.PREDICTOR}
        assert all(row["mean_abs_frames"] >= 0 and 0 <= row["tokens_off_by_more_than_2"] <= 1 for row in rows.values())
    summary = result["summary"]
    # held hard to the predictor, the search lands within rounding of the predictor's own stretched durations
    assert abs(summary["1000"]["mean_abs_frames"] - summary[script.PREDICTOR]["mean_abs_frames"]) < 0.6
    assert summary["0"]["mean_abs_frames"] != summary["1000"]["mean_abs_frames"]
    families = {name.split(":")[0] for name in result["tasks"]}
    assert set(summary["0"]["by_family"]) == families


def test_weights_out_of_range_are_refused_before_anything_is_read(script, tmp_path):
    out = tmp_path / "never.json"
    with pytest.raises(SystemExit):
        script.main(["--checkpoint", str(tmp_path), "--weights", "30", "-1", "--out", str(out)])
    assert not out.exists()
