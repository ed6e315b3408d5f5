"""`hf-metatts unbundle`: a bundle back to a Griffin-Lim run folder, with the bundle untouched and bad options
refused before anything is written."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.cli import main
from hf_metatts.meta import load_meta_learner
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead
from hf_metatts.modeling_vocoder import ISTFTVocoder
from hf_metatts.training.bundle import BundleConfigError, bundle_checkpoint
from hf_metatts.training.unbundle import RunFolderExistsError, unbundle_checkpoint
from hf_metatts.training.vocoder import VocoderTrainingArguments, save_vocoder, vocoder_config


def _bundle(tmp_path, method: str):
    """A tiny bundle (model + trained iSTFT vocoder + meta-learner of ``method`` with rate 0.25 + one run summary)."""
    model_dir, vocoder_dir, out = tmp_path / "model", tmp_path / "vocoder", tmp_path / "bundle"
    model = save_tiny_checkpoint(model_dir)
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    MetaLearnerHead(MetaLearnerConfig(method=method, inner_lr=0.25, inner_optimizer="adam",
                                      adapted_parameter_names=names), shapes).save_pretrained(str(model_dir))
    (model_dir / "training_summary.json").write_text(json.dumps({"method": method, "steps": 7, "wall_seconds": 9.0}))
    torch.manual_seed(0)
    vocoder = ISTFTVocoder(vocoder_config(VocoderTrainingArguments(hidden_size=8, intermediate_size=16, layers=1)))
    save_vocoder(vocoder, vocoder.config, str(vocoder_dir))
    bundle_checkpoint(str(model_dir), str(vocoder_dir), str(out), runs=[str(model_dir)])
    return out


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("method", ["maml", "metasgd"])
def test_the_run_folder_keeps_the_acoustic_model_and_meta_learner_and_speaks_through_griffin_lim(tmp_path, method):
    bundle = _bundle(tmp_path, method)
    before = _snapshot(bundle)
    out = tmp_path / "run"
    unbundle_checkpoint(str(bundle), str(out))
    assert _snapshot(bundle) == before  # the bundle is untouched
    bundled, unbundled = load_file(str(bundle / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(name.startswith("vocoder.") for name in bundled)
    assert not any(name.startswith("vocoder.") for name in unbundled)  # Griffin-Lim has no weights
    assert set(unbundled) == {name for name in bundled if not name.startswith("vocoder.")}
    assert all(torch.equal(unbundled[name], bundled[name]) for name in unbundled)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    assert model.config.vocoder_type == "griffin_lim"
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(str(out))
    with torch.no_grad():
        waveform = model(**processor(text="a test", return_tensors="pt")).waveform
    assert waveform.shape[-1] > 0 and torch.isfinite(waveform).all()
    head = load_meta_learner(str(out))
    assert head.config.method == method and head.config.inner_lr == 0.25
    assert json.loads((out / "training_runs.json").read_text())[0]["steps"] == 7
    assert not (tmp_path / "run.partial").exists()


def test_the_cli_writes_the_meta_training_step_size_and_global_variance_weight(tmp_path):
    bundle = _bundle(tmp_path, "maml")
    out = tmp_path / "run"
    assert main(["unbundle", "--model", str(bundle), "--out", str(out), "--inner-lr", "0.03",
                 "--global-variance-weight", "0"]) == 0
    config = load_meta_learner(str(out)).config
    assert config.inner_lr == 0.03 and config.global_variance_weight == 0.0
    assert load_meta_learner(str(bundle)).config.inner_lr == 0.25  # the bundle keeps its own


def test_an_output_folder_with_files_is_refused_unless_overwritten(tmp_path):
    bundle = _bundle(tmp_path, "maml")
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderExistsError, match="--overwrite"):
        unbundle_checkpoint(str(bundle), str(out))
    assert [path.name for path in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    unbundle_checkpoint(str(bundle), str(out), overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("options, message", [({"inner_lr": 0.03}, "learned rates"),
                                               ({"inner_lr": -0.1, "method": "maml"}, "must be positive"),
                                               ({"global_variance_weight": -1.0}, "finite number >= 0")])
def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path, options, message):
    options = dict(options)
    bundle = _bundle(tmp_path, options.pop("method", "metasgd"))
    out = tmp_path / "run"
    with pytest.raises(BundleConfigError, match=message):
        unbundle_checkpoint(str(bundle), str(out), **options)
    assert not out.exists() and not (tmp_path / "run.partial").exists()
