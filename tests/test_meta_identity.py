"""The speaker-identity term of the meta-objective: the encoder, its training, and the objective it adds."""

import json
import os

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from test_meta_metatts import mel_corpus, tiny_model

from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.meta import EpisodeSampler, InvalidMetaConfigError, MetaTrainer, MetaTrainingArguments
from hf_metatts.meta.identity import (
    IDENTITY_WEIGHTS_NAME,
    IdentityEncoderConfig,
    SpeakerIdentityEncoder,
    identity_loss,
    load_identity_encoder,
)
from hf_metatts.training.identity_encoder import (
    IdentityEncoderTrainingArguments,
    IdentityEncoderTrainingError,
    train_identity_encoder,
)

SMALL = IdentityEncoderConfig(channels=16, kernel_sizes=(3, 3), dilations=(1, 2), embedding_dim=8)


def speaker_mels(num_speakers, per_speaker, seed):
    """Rows whose speakers differ in their mean spectrum (as voices differ in timbre), frames vary around it."""
    rng = np.random.default_rng(seed)
    rows = {"speaker_id": [], "labels": []}
    for s in range(num_speakers):
        mean = rng.normal(-2, 1, size=80)
        for _ in range(per_speaker):
            frames = int(rng.integers(20, 40))
            rows["speaker_id"].append(f"spk{seed}_{s}")
            rows["labels"].append((mean + 0.5 * rng.normal(size=(frames, 80))).astype(np.float32).tolist())
    return Dataset.from_dict(rows)


@pytest.fixture(scope="module")
def trained_encoder(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    DatasetDict({"train": speaker_mels(8, 6, seed=0), "validation": speaker_mels(4, 8, seed=1)}).save_to_disk(
        str(root / "corpus"))
    args = IdentityEncoderTrainingArguments(dataset_path=str(root / "corpus"), output_dir=str(root / "encoder"),
                                            max_steps=60, speakers_per_batch=4, segment_frames=16, log_every=20,
                                            enrol_utterances=3, learning_rate=3e-3)
    summary = train_identity_encoder(args, config=SMALL)
    return root, summary


def test_the_trained_encoder_tells_unseen_speakers_apart_and_reloads_frozen(trained_encoder):
    root, summary = trained_encoder
    history = summary["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    validation = summary["validation"]
    assert validation["speakers"] == 4 and validation["trials"] == 4 * 5
    assert validation["identification"] >= 0.9 and validation["eer"] <= 0.1, validation
    encoder = load_identity_encoder(str(root / "encoder"))
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    saved = json.loads((root / "encoder" / "identity_encoder_config.json").read_text())
    assert saved["training"]["validation"] == validation and saved["channels"] == SMALL.channels


def test_identity_loss_is_zero_for_the_same_mels_and_moves_only_the_prediction():
    torch.manual_seed(0)
    encoder = SpeakerIdentityEncoder(SMALL).requires_grad_(False).eval()
    target = torch.randn(2, 30, 80)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    assert float(identity_loss(encoder, target.clone(), target, mask)) == pytest.approx(0.0, abs=1e-6)
    # padded frames do not count
    padded = target.clone()
    padded[1, 20:] = 99.0
    assert float(identity_loss(encoder, padded, target, mask)) == pytest.approx(0.0, abs=1e-5)
    predicted = (target + torch.randn_like(target)).requires_grad_(True)
    loss = identity_loss(encoder, predicted, target, mask)
    assert float(loss.detach()) > 0.0
    loss.backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        identity_loss(encoder, target[:, :10], target)


def test_a_folder_without_an_encoder_and_bad_training_settings_are_clear_errors(tmp_path):
    with pytest.raises(InvalidMetaConfigError, match="train-identity-encoder"):
        load_identity_encoder(str(tmp_path))
    with pytest.raises(IdentityEncoderTrainingError, match="max_steps=0"):
        IdentityEncoderTrainingArguments(max_steps=0)
    with pytest.raises(IdentityEncoderTrainingError, match="margin"):
        IdentityEncoderTrainingArguments(margin=1.5)
    Dataset.from_dict({"speaker_id": ["a"], "text": ["x"]}).save_to_disk(str(tmp_path / "raw"))
    DatasetDict({"train": Dataset.from_dict({"speaker_id": ["a"], "text": ["x"]})}).save_to_disk(
        str(tmp_path / "raw"))
    with pytest.raises(IdentityEncoderTrainingError, match="prepare-corpus"):
        train_identity_encoder(IdentityEncoderTrainingArguments(dataset_path=str(tmp_path / "raw"),
                                                                output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), method="metasgd", max_steps=2, inner_steps=2, inner_lr=0.05,
                shots=3, query_shots=3, tasks_per_step=2, learning_rate=0.01, save_strategy="no", seed=0,
                use_cpu=True, disable_tqdm=True, first_order=True, report_to="none")
    base.update(kw)
    return MetaTrainingArguments(**base)


def test_the_identity_term_adds_to_the_query_loss_and_changes_the_meta_gradient(tmp_path, trained_encoder):
    root, _ = trained_encoder
    encoder_dir = str(root / "encoder")
    train = mel_corpus()
    sampler = EpisodeSampler(train, "speaker_id", 3, 3, 2, seed=0)
    episode = sampler.collate(sampler.episode(0), MetaTTSDataCollator())
    results = {}
    for weight in (0.0, 2.0):
        kw = dict(identity_encoder=encoder_dir, identity_loss_weight=weight) if weight else {}
        t = MetaTrainer(tiny_model(), _args(tmp_path / str(weight), **kw), train_dataset=train,
                        data_collator=MetaTTSDataCollator())
        learner = t.model
        out = learner(episode["support"], episode["query"])
        out.loss.backward()
        rates = {n: p.grad.clone() for n, p in learner.head.named_parameters()}
        adapted = learner.run_task(episode["support"][0], episode["query"][0], 2, True, False)[0].params
        results[weight] = (float(out.loss.detach()), dict(learner.last_stats), rates, learner, adapted)
    plain_loss, plain_stats, plain_rates, _, plain_adapted = results[0.0]
    loss, stats, rates, learner, adapted = results[2.0]
    assert "identity_loss_after" not in plain_stats
    assert stats["identity_loss_after"] > 0
    assert loss == pytest.approx(plain_loss + 2.0 * stats["identity_loss_after"], rel=1e-4)
    assert any(not torch.allclose(rates[n], plain_rates[n]) for n in rates)  # it reaches the learned rates
    assert not any(p.requires_grad for p in learner.identity_encoder.parameters())
    learner.train()  # as the Trainer does every step: the critic stays a constant, batch norms included
    frozen = {k: v.clone() for k, v in learner.identity_encoder.state_dict().items()}
    learner(episode["support"], episode["query"])
    assert not learner.identity_encoder.training
    assert all(torch.equal(v, learner.identity_encoder.state_dict()[k]) for k, v in frozen.items())
    # the inner loop still takes the model's own loss: the same adapted voice with and without the term
    assert all(torch.allclose(adapted[n], plain_adapted[n]) for n in adapted)


def test_the_identity_encoder_is_not_saved_with_the_checkpoint(tmp_path, trained_encoder):
    root, _ = trained_encoder
    t = MetaTrainer(tiny_model(), _args(tmp_path, identity_encoder=str(root / "encoder"), identity_loss_weight=1.0,
                                        logging_steps=1),
                    train_dataset=mel_corpus(), data_collator=MetaTTSDataCollator())
    t.train()
    t.save_model()
    saved = os.listdir(tmp_path / "out")
    assert IDENTITY_WEIGHTS_NAME not in saved
    from safetensors.torch import load_file

    assert not any(k.startswith("identity") for k in load_file(str(tmp_path / "out" / "model.safetensors")))
    logged = [h for h in t.state.log_history if "identity_loss_after" in h]
    assert logged and all(np.isfinite(h["identity_loss_after"]) for h in logged)


@pytest.mark.parametrize("kw, message", [
    (dict(identity_loss_weight=1.0), "needs identity_encoder"),
    (dict(identity_loss_weight=-1.0, identity_encoder="x"), "identity_loss_weight=-1"),
    (dict(identity_loss_weight=1.0, identity_encoder="x", method="pretrain"), "not to method='pretrain'"),
])
def test_bad_identity_settings_are_refused(tmp_path, kw, message):
    with pytest.raises(InvalidMetaConfigError, match=message):
        _args(tmp_path, **kw)


def test_the_command_line_trains_and_saves_an_encoder(tmp_path, trained_encoder):
    from hf_metatts.cli import main

    root, _ = trained_encoder
    code = main(["train-identity-encoder", "--dataset", str(root / "corpus"), "--out", str(tmp_path / "enc"),
                 "--max-steps", "3", "--speakers-per-batch", "4", "--segment-frames", "16", "--enrol-utterances", "3"])
    assert code == 0
    encoder = load_identity_encoder(str(tmp_path / "enc"))
    assert encoder.config.embedding_dim == IdentityEncoderConfig().embedding_dim
    saved = json.loads((tmp_path / "enc" / "identity_encoder_config.json").read_text())
    assert saved["training"]["arguments"]["max_steps"] == 3


def test_the_identity_term_ignores_the_padding_of_shorter_query_clips(trained_encoder):
    from hf_metatts.meta.identity import IdentityObjective

    root, _ = trained_encoder
    model = tiny_model().eval()
    rows = [mel_corpus()[i] for i in range(3)]
    batch = MetaTTSDataCollator()(rows)
    padding = ~batch["labels_attention_mask"].bool()
    assert padding.any(), "the rows should differ in length"
    objective = IdentityObjective(model, load_identity_encoder(str(root / "encoder")), 1.0)
    params = {n: p for n, p in model.named_parameters() if n in model.adapted_parameter_names()}
    with torch.no_grad():
        loss = objective(params, [batch])
        first = objective.last_identity
        changed = {**batch, "labels": batch["labels"].masked_fill(padding[..., None], 3.0)}
        assert float(objective(params, [changed])) == pytest.approx(float(loss), rel=1e-5)
    assert objective.last_identity == pytest.approx(first, rel=1e-5)


def test_an_identity_term_in_the_support_loss_changes_the_adapted_voice_and_not_the_model():
    from hf_metatts.meta import adapt_parameters
    from hf_metatts.meta.identity import identity_term

    model = tiny_model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    encoder = SpeakerIdentityEncoder(SMALL).requires_grad_(False).eval()
    sampler = EpisodeSampler(mel_corpus(), "speaker_id", 3, 3, 2, seed=0)
    support = sampler.collate(sampler.episode(0), MetaTTSDataCollator())["support"][0]
    plain = adapt_parameters(model, support, method="maml", steps=2, lr=0.05)
    weightless = adapt_parameters(model, support, method="maml", steps=2, lr=0.05,
                                  loss_term=identity_term(encoder, 0.0))
    weighted = adapt_parameters(model, support, method="maml", steps=2, lr=0.05,
                                loss_term=identity_term(encoder, 5.0))
    assert all(torch.allclose(plain[n], weightless[n], atol=1e-6) for n in plain)
    assert any(not torch.allclose(plain[n], weighted[n], atol=1e-5) for n in plain)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
