"""`hf-metatts average`: the mean of several runs' model and meta-learner weights, and the runs it refuses with
nothing written and the runs untouched."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.cli import main
from hf_metatts.meta import load_meta_learner
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead
from hf_metatts.training.average import CheckpointAverageError, average_checkpoints


def _run(path, rate: float, method: str = "metasgd", **overrides):
    """A tiny checkpoint (random weights) with a meta-learner whose learned rates all equal ``rate``."""
    model = save_tiny_checkpoint(path, **overrides)
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    head = MetaLearnerHead(MetaLearnerConfig(method=method, inner_lr=rate, inner_optimizer="adam",
                                             adapted_parameter_names=names), shapes)
    with torch.no_grad():
        for tensor in head.state_dict().values():
            tensor.fill_(rate)
    head.save_pretrained(str(path))
    return path


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_the_average_is_the_mean_of_the_model_and_meta_learner_weights_and_it_speaks(tmp_path):
    first, second = _run(tmp_path / "a", 0.02), _run(tmp_path / "b", 0.04)
    before = [_snapshot(first), _snapshot(second)]
    out = tmp_path / "soup"
    result = average_checkpoints([str(first), str(second)], str(out))
    assert [_snapshot(first), _snapshot(second)] == before  # the runs are untouched
    a, b, soup = (load_file(str(folder / "model.safetensors")) for folder in (first, second, out))
    assert set(soup) == set(a)
    floats = [name for name in a if a[name].is_floating_point()]
    assert any(not torch.equal(a[name], b[name]) for name in floats)  # the runs differ
    for name in floats:
        torch.testing.assert_close(soup[name], (a[name] + b[name]) / 2)
    rates = load_file(str(out / "meta_learner.safetensors"))
    assert rates and all(torch.allclose(t, torch.full_like(t, 0.03)) for t in rates.values())
    assert result["weights"] == [0.5, 0.5]
    assert json.loads((out / "averaged_from.json").read_text())["models"][1] == {"path": str(second), "weight": 0.5}
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(str(out))
    with torch.no_grad():
        waveform = model(**processor(text="a test", return_tensors="pt")).waveform
    assert waveform.shape[-1] > 0 and torch.isfinite(waveform).all()
    assert load_meta_learner(str(out)).config.method == "metasgd"
    assert not (tmp_path / "soup.partial").exists()


def test_weights_are_normalised_and_the_cli_takes_them(tmp_path):
    first, second = _run(tmp_path / "a", 0.02), _run(tmp_path / "b", 0.06)
    out = tmp_path / "soup"
    assert main(["average", "--models", str(first), str(second), "--out", str(out), "--weights", "3", "1"]) == 0
    rates = load_file(str(out / "meta_learner.safetensors"))
    assert all(torch.allclose(t, torch.full_like(t, 0.03)) for t in rates.values())  # 0.75 * 0.02 + 0.25 * 0.06
    a, b, soup = (load_file(str(folder / "model.safetensors")) for folder in (first, second, out))
    name = "voice.speaker_vector"
    torch.testing.assert_close(soup[name], 0.75 * a[name] + 0.25 * b[name])


@pytest.mark.parametrize("case, message", [
    ("one run", "two or more runs"),
    ("out is a run", "is one of the runs"),
    ("weights count", "one weight per run"),
    ("negative weight", "positive sum"),
    ("architecture", "another model configuration"),
    ("method", "another inner loop"),
    ("maml rate", "inner_lr differ"),
    ("no meta-learner", "no meta-learner"),
])
def test_runs_that_cannot_be_averaged_are_refused_before_anything_is_written(tmp_path, case, message):
    first = _run(tmp_path / "a", 0.02)
    if case == "architecture":
        second = _run(tmp_path / "b", 0.04, hidden_size=16, ffn_dim=32)
    elif case == "method":
        second = _run(tmp_path / "b", 0.04, method="maml")
    elif case == "maml rate":
        first, second = _run(tmp_path / "a", 0.02, method="maml"), _run(tmp_path / "b", 0.04, method="maml")
    elif case == "no meta-learner":
        second = tmp_path / "b"
        save_tiny_checkpoint(second)
    else:
        second = _run(tmp_path / "b", 0.04)
    models, out, weights = [str(first), str(second)], tmp_path / "soup", None
    if case == "one run":
        models = [str(first)]
    elif case == "out is a run":
        out = second
    elif case == "weights count":
        weights = [1.0]
    elif case == "negative weight":
        weights = [1.0, -1.0]
    before = [_snapshot(first), _snapshot(second)]
    with pytest.raises(CheckpointAverageError, match=message):
        average_checkpoints(models, str(out), weights=weights)
    assert [_snapshot(first), _snapshot(second)] == before
    assert not (tmp_path / "soup").exists() and not (tmp_path / "soup.partial").exists()


def test_an_output_folder_with_files_is_kept_unless_overwritten(tmp_path):
    first, second = _run(tmp_path / "a", 0.02), _run(tmp_path / "b", 0.04)
    out = tmp_path / "soup"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointAverageError, match="--overwrite"):
        average_checkpoints([str(first), str(second)], str(out))
    assert (out / "notes.txt").read_text() == "keep me"
    average_checkpoints([str(first), str(second)], str(out), overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "model.safetensors").is_file()
