"""`hf-metatts add-adapters`: decoder adapters added to a trained checkpoint leave its outputs unchanged, join the
adapted set and the meta-learner (learned rates kept), adapt, and bad requests are refused with nothing written."""

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import save_tiny_checkpoint, tiny_model, tiny_support_batch

import hf_metatts
from hf_metatts.cli import main
from hf_metatts.meta import adapt_parameters, load_meta_learner
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead, _key
from hf_metatts.meta.trainer import continue_meta_learner
from hf_metatts.training.adapters import AdapterError, add_decoder_adapters, widened_meta_learner, widened_model

ADAPTERS = ["decoder.layers.0.lora_a", "decoder.layers.0.lora_b"]  # the tiny model has one decoder block


def _checkpoint(path, method: str = "metasgd", **overrides):
    """A tiny checkpoint with an Adam-direction meta-learner whose learned rates are 0.02 + a ramp (all distinct)."""
    model = save_tiny_checkpoint(path, **overrides)
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    head = MetaLearnerHead(MetaLearnerConfig(method=method, inner_lr=0.03, inner_optimizer="adam",
                                             adapted_parameter_names=names), shapes)
    with torch.no_grad():
        for tensor in head.state_dict().values():
            tensor.copy_(0.02 + 0.001 * torch.arange(tensor.numel()).view_as(tensor))
    head.save_pretrained(str(path))
    return model


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_the_widened_checkpoint_speaks_as_before_and_adapts_its_adapters(tmp_path):
    source = tmp_path / "run"
    _checkpoint(source)
    before = _snapshot(source)
    out = tmp_path / "run_lora"
    result = add_decoder_adapters(str(source), str(out), lora_rank=3, adapter_rate=0.005)
    assert _snapshot(source) == before  # the run is untouched
    assert result["adapter_parameters"] == ADAPTERS
    original = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(source)).eval()
    widened = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    assert widened.config.lora_rank == 3 and original.config.lora_rank == 0
    assert widened.get_parameter("decoder.layers.0.lora_a").shape == (widened.config.hidden_size, 3)
    assert torch.count_nonzero(widened.get_parameter("decoder.layers.0.lora_b")) == 0
    assert widened.adapted_parameter_names() == original.adapted_parameter_names() + ADAPTERS
    processor = hf_metatts.MetaTTSProcessor.from_pretrained(str(out))
    inputs = processor(text="a short test", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(widened(**inputs).spectrogram, original(**inputs).spectrogram)
    # the meta-learner: learned rates kept, the adapters at --adapter-rate
    old, new = load_meta_learner(str(source)), load_meta_learner(str(out))
    assert new.config.adapted_parameter_names == widened.adapted_parameter_names()
    for name in old.config.adapted_parameter_names:
        assert torch.equal(new.inner_lrs[_key(name)], old.inner_lrs[_key(name)]), name
    for name in ADAPTERS:
        assert torch.all(new.inner_lrs[_key(name)] == 0.005), name
    # the adapters move in the inner loop (lora_b first: lora_a has no gradient while lora_b is zero)
    adapted = adapt_parameters(widened, tiny_support_batch(widened), method="metasgd", steps=2, meta_learner=new)
    assert torch.count_nonzero(adapted["decoder.layers.0.lora_b"]) > 0
    assert torch.count_nonzero(widened.get_parameter("decoder.layers.0.lora_b")) == 0  # the model is not changed
    # and a meta-training run from the folder continues this meta-learner
    trainer_head = MetaLearnerHead(new.config, {n: widened.get_parameter(n).shape
                                                for n in new.config.adapted_parameter_names})
    continue_meta_learner(trainer_head, new)
    speaker = _key("voice.speaker_vector")
    assert torch.equal(trainer_head.inner_lrs[speaker], old.inner_lrs[speaker])


def test_the_cli_writes_it_and_maml_meta_learners_take_the_new_names(tmp_path):
    source = tmp_path / "maml"
    _checkpoint(source, method="maml")
    out = tmp_path / "maml_lora"
    assert main(["add-adapters", "--model", str(source), "--lora-rank", "2", "--out", str(out)]) == 0
    head = load_meta_learner(str(out))
    assert head.config.method == "maml" and head.config.inner_lr == 0.03
    assert head.config.adapted_parameter_names[-2:] == ADAPTERS
    assert load_file(str(out / "model.safetensors"))["decoder.layers.0.lora_a"].shape[1] == 2


def test_default_rate_of_the_adapters_is_the_meta_learners_initial_rate(tmp_path):
    _checkpoint(tmp_path / "run")
    add_decoder_adapters(str(tmp_path / "run"), str(tmp_path / "out"), lora_rank=1)
    head = load_meta_learner(str(tmp_path / "out"))
    assert all(torch.all(head.inner_lrs[_key(name)] == 0.03) for name in ADAPTERS)


def test_the_adapters_draw_from_their_seed_and_leave_the_global_generator_alone():
    model = tiny_model()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = widened_model(model, 2, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    second, other = widened_model(model, 2, seed=5), widened_model(model, 2, seed=6)
    a = first.get_parameter("decoder.layers.0.lora_a")
    assert torch.equal(a, second.get_parameter("decoder.layers.0.lora_a"))
    assert not torch.equal(a, other.get_parameter("decoder.layers.0.lora_a"))


@pytest.mark.parametrize("case, message", [
    ("rank 0", "integer in \\[1, 256\\]"),
    ("rank 300", "integer in \\[1, 256\\]"),
    ("already has adapters", "already has rank-2"),
    ("out is the model", "is the checkpoint itself"),
    ("out holds files", "already holds files"),
    ("bad rate", "finite number > 0"),
])
def test_bad_requests_are_refused_and_nothing_is_written(tmp_path, case, message):
    source = tmp_path / "run"
    _checkpoint(source, **({"lora_rank": 2} if case == "already has adapters" else {}))
    out = tmp_path / "out"
    if case == "out holds files":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    kwargs = {"lora_rank": {"rank 0": 0, "rank 300": 300}.get(case, 2)}
    if case == "bad rate":
        kwargs["adapter_rate"] = -0.01
    target = source if case == "out is the model" else out
    before, out_before = _snapshot(source), _snapshot(out) if out.exists() else None
    with pytest.raises(AdapterError, match=message):
        add_decoder_adapters(str(source), str(target), **kwargs)
    assert _snapshot(source) == before
    assert (_snapshot(out) if out.exists() else None) == out_before
    assert not (tmp_path / "out.partial").exists() and not (tmp_path / "run.partial").exists()


def test_per_step_rates_get_a_rate_per_step_for_the_adapters():
    model = tiny_model()
    names = model.adapted_parameter_names()
    head = MetaLearnerHead(MetaLearnerConfig(method="metasgd", inner_lr=0.03, inner_steps=3, per_step_rates=True,
                                             inner_optimizer="adam", adapted_parameter_names=names),
                           {name: model.get_parameter(name).shape for name in names})
    widened = widened_model(model, 2)
    wide_names = widened.adapted_parameter_names()
    wide = widened_meta_learner(head, wide_names, {n: widened.get_parameter(n).shape for n in wide_names}, 0.004)
    hidden = model.config.hidden_size
    assert wide.inner_lrs[_key("decoder.layers.0.lora_a")].shape == (3, hidden, 2)
    assert torch.all(wide.inner_lrs[_key("decoder.layers.0.lora_b")] == 0.004)
    assert torch.equal(wide.inner_lrs[_key("voice.speaker_vector")], head.inner_lrs[_key("voice.speaker_vector")])
    with pytest.raises(AdapterError, match="lost"):
        widened_meta_learner(head, wide_names[1:], {n: widened.get_parameter(n).shape for n in wide_names[1:]})
