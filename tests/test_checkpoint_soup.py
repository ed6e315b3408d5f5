"""benchmarks/checkpoint_soup.py: the greedy soup keeps a run only when the soup with it scores at least as well,
on tiny checkpoints with a scorer whose best point is known."""

import json

import pytest
import torch
from benchmark_scripts import load_benchmark_script
from safetensors.torch import load_file, save_file
from tiny_models import save_tiny_checkpoint

from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead


@pytest.fixture(scope="module")
def soup_script():
    return load_benchmark_script("checkpoint_soup")


def _run(path, speaker_vector: torch.Tensor):
    """A tiny metasgd checkpoint whose ``voice.speaker_vector`` is ``speaker_vector`` (the rest shared)."""
    torch.manual_seed(0)
    model = save_tiny_checkpoint(path)
    names = model.adapted_parameter_names()
    MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_optimizer="adam", adapted_parameter_names=names),
                    {n: model.get_parameter(n).shape for n in names}).save_pretrained(str(path))
    weights = load_file(str(path / "model.safetensors"))
    weights["voice.speaker_vector"] = speaker_vector.clone()
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    return str(path)


def _scorer(target: torch.Tensor, calls: list):
    def score(folder):
        calls.append(folder)
        vector = load_file(f"{folder}/model.safetensors")["voice.speaker_vector"]
        per_task = {f"speaker{i}": float(-abs(v - t)) for i, (v, t) in enumerate(zip(vector, target))}
        return {"similarity": float(-torch.linalg.vector_norm(vector - target)), "identification": 0.5,
                "per_task": per_task}
    return score


def test_runs_join_when_the_soup_improves_and_are_left_out_when_it_does_not(tmp_path, soup_script):
    dim = load_file(_run(tmp_path / "probe", torch.zeros(8)) + "/model.safetensors")["voice.speaker_vector"].numel()
    target = torch.zeros(dim)
    near_a, near_b = torch.full((dim,), 1.0), torch.full((dim,), -1.2)  # their mean (-0.1) is nearer than either
    far = torch.full((dim,), 5.0)
    runs = [_run(tmp_path / "far", far), _run(tmp_path / "b", near_b), _run(tmp_path / "a", near_a)]
    calls = []
    result = soup_script.greedy_soup(runs, _scorer(target, calls), str(tmp_path / "candidate"))
    assert result["order"] == [runs[2], runs[1], runs[0]]  # best first
    assert result["members"] == [runs[2], runs[1]]
    assert [step["kept"] for step in result["steps"]] == [True, False]
    assert result["similarity"] == pytest.approx(-0.1 * dim ** 0.5, rel=1e-5)
    assert result["similarity"] > result["runs"][runs[2]]["similarity"]
    assert result["steps"][1]["members"] == [runs[2], runs[1], runs[0]]
    assert result["uniform"]["similarity"] == pytest.approx(-((5 - 0.2) / 3) * dim ** 0.5, rel=1e-5)
    assert len(calls) == 6  # three runs, the uniform soup, two candidate soups
    # every element ("speaker") of the soup is 0.1 from the target, of the best run 1.0: 0.9 ahead on all of them
    paired = result["soup_vs_best_run"]
    assert paired["mean"] == pytest.approx(0.9, abs=1e-4) and paired["above"] == paired["tasks"] == dim
    assert paired["low"] == pytest.approx(0.9, abs=1e-4)
    assert soup_script.soup_against_best_run(result["runs"][runs[2]], result["runs"][runs[2]]) is None
    assert soup_script.soup_against_best_run({"similarity": 0.7}, result["runs"][runs[2]]) is None
    assert not (tmp_path / "candidate").exists()
    soup_script.plot({**result, "split": "validation"}, str(tmp_path / "soup.png"))
    assert (tmp_path / "soup.png").stat().st_size > 0


def test_main_writes_the_soup_the_json_and_the_plot(tmp_path, soup_script, monkeypatch):
    dim = 8
    runs = [_run(tmp_path / "a", torch.full((dim,), 1.0)), _run(tmp_path / "b", torch.full((dim,), -1.2))]
    monkeypatch.setattr(soup_script, "validation_scorer", lambda *args: _scorer(torch.zeros(dim), []))
    out, path = tmp_path / "soup", tmp_path / "soup.json"
    soup_script.main(["--runs", *runs, "--out", str(out), "--json", str(path), "--steps", "3"])
    result = json.loads(path.read_text())
    assert result["members"] == runs and result["out"] == str(out) and result["inner_steps"] == 3
    assert [step["kept"] for step in result["steps"]] == [True] and result["uniform"] is None
    vector = load_file(str(out / "model.safetensors"))["voice.speaker_vector"]
    torch.testing.assert_close(vector, torch.full((dim,), -0.1))
    assert (tmp_path / "soup.png").stat().st_size > 0


def test_a_single_run_is_refused(tmp_path, soup_script):
    with pytest.raises(ValueError, match="two or more runs"):
        soup_script.greedy_soup([_run(tmp_path / "a", torch.zeros(8))], _scorer(torch.zeros(8), []),
                                str(tmp_path / "candidate"))


def test_the_test_split_is_refused(tmp_path, soup_script):
    with pytest.raises(SystemExit):
        soup_script.main(["--runs", "a", "b", "--out", str(tmp_path / "soup"), "--split", "test"])
    assert not (tmp_path / "soup").exists()
