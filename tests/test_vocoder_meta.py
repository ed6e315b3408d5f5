"""Vocoder meta-training for its adaptation to a voice (`hf_metatts.training.vocoder_meta`, ``hf-metatts
meta-train-vocoder``): the episodes are the adapted model's support and query pairs, the meta-gradient is the
first-order MAML one, a run lowers the validation loss after adaptation and writes a vocoder ``bundle --vocoder``
takes, and bad settings are refused before anything is written."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_fixtures import aligned_corpora, speaker_row_order
from datasets import load_from_disk
from torch.func import functional_call

from hf_metatts import MetaTTSForTextToSpeech
from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.training.vocoder import (
    CHECKPOINT_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    VocoderLoss,
    VocoderTrainingArguments,
    VocoderTrainingError,
    load_trained_vocoder,
)
from hf_metatts.training.vocoder_aligned import (
    AlignedSegmentSampler,
    aligned_clips,
    default_adaptation,
    teacher_forced_mels,
)
from hf_metatts.training.vocoder_meta import (
    MetaVocoderArguments,
    episode_gradients,
    inner_adaptation,
    meta_train_vocoder,
    speaker_episodes,
)
from hf_metatts.voice_vocoder import VocoderAdaptation, VocoderAdaptationError, adapt_vocoder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A corpus (train: 2 speakers x 5 clips; validation: 2 x 4), its prepared copy, and a tiny checkpoint that
    owns a (random) neural vocoder."""
    return aligned_corpora(tmp_path_factory.mktemp("meta_vocoder"), 5, 4)


def tiny_args(corpora, output_dir, **overrides) -> MetaVocoderArguments:
    values = dict(dataset_path=corpora.corpus, output_dir=str(output_dir), aligned_model=corpora.model, shots=2,
                  query_clips_per_speaker=3, validation_query_clips_per_speaker=2, episodes=12, inner_steps=3,
                  inner_learning_rate=1e-2, query_batch_size=4, outer_learning_rate=3e-3, logging_episodes=4,
                  eval_episodes=12, threads=1)
    values.update(overrides)
    return MetaVocoderArguments(**values)


def test_support_pairs_are_the_adapted_models_reading_of_the_clips_it_adapted_to(corpora):
    model = MetaTTSForTextToSpeech.from_pretrained(corpora.model).eval()
    plain = aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2, clips_per_speaker=3)
    both = aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2, clips_per_speaker=3,
                         with_support=True)
    targets = [clip for clip in both if clip.role == "target"]
    assert [c.id for c in targets] == [c.id for c in plain] and all(c.role == "target" for c in plain)
    for ours, theirs in zip(targets, plain):
        np.testing.assert_array_equal(ours.mel, theirs.mel)
    prepared = load_from_disk(corpora.prepared)["train"]
    index_of = {row_id: index for index, row_id in enumerate(prepared["id"])}
    collate = MetaTTSDataCollator()
    for number, speaker in enumerate(["speaker0", "speaker1"]):
        order = speaker_row_order(prepared["speaker_id"], speaker, number)
        support = [c for c in both if c.speaker == speaker and c.role == "support"]
        assert [index_of[c.id] for c in support] == order[:2]
        params = default_adaptation(model, None, collate([prepared[i] for i in order[:2]]))
        for clip, mel in zip(support, teacher_forced_mels(model, params, collate([prepared[i] for i in order[:2]]))):
            np.testing.assert_allclose(clip.mel, mel, atol=1e-5)
    episodes = speaker_episodes(both)
    assert [(e.speaker, len(e.support), len(e.query)) for e in episodes] == [("speaker0", 2, 3), ("speaker1", 2, 3)]
    assert speaker_episodes(plain) == []  # no support pairs: no episode


def test_the_meta_gradient_is_the_adapted_copys_query_gradient_plus_the_start_term(corpora):
    model = MetaTTSForTextToSpeech.from_pretrained(corpora.model).eval()
    episode = speaker_episodes(aligned_clips(model, None, corpora.prepared, corpora.corpus, "train", shots=2,
                                             clips_per_speaker=3, with_support=True))[0]
    vocoder = load_trained_vocoder(corpora.model).train()
    start = {name: tensor.clone() for name, tensor in vocoder.state_dict().items()}
    adaptation = VocoderAdaptation(steps=3, learning_rate=1e-2, parameters=("head.*",), batch_size=4,
                                   segment_frames=8)
    criterion = VocoderLoss(vocoder.config, VocoderTrainingArguments())
    losses = episode_gradients(vocoder, criterion, episode, adaptation, 4, 0.5, seed=7)
    for name, tensor in vocoder.state_dict().items():
        assert torch.equal(tensor, start[name])  # only gradients: the weights are not changed
    # The same by hand: the copy adapted on the support segments, the query segments drawn with the same seed.
    values, _ = adapt_vocoder(vocoder, episode.support, replace(adaptation, seed=7))
    adapted = {name[len("vocoder."):]: value.requires_grad_(True) for name, value in values.items()}
    mels, waves = AlignedSegmentSampler(episode.query, 8, vocoder.config.hop_length, 7).sample(4)
    reference = load_trained_vocoder(corpora.model).train()
    after = criterion(functional_call(reference, adapted, (mels,)), waves)["loss"]
    before = criterion(reference(mels), waves)["loss"]
    (after + 0.5 * before).backward()
    assert losses["query_loss_after"] == pytest.approx(float(after.detach()), rel=1e-5)
    assert losses["query_loss_before"] == pytest.approx(float(before.detach()), rel=1e-5)
    assert losses["query_loss_after"] < losses["query_loss_before"]  # the inner steps help on other sentences too
    grads = dict(reference.named_parameters())
    for name, parameter in vocoder.named_parameters():
        expected = grads[name].grad + (adapted[name].grad if name in adapted else 0)
        torch.testing.assert_close(parameter.grad, expected, rtol=1e-4, atol=1e-7)
    assert any(name.startswith("head.") for name in adapted) and not any(n.startswith("blocks.") for n in adapted)

    # Without the start term only the adapted copy's loss moves the vocoder; the unadapted loss is still reported.
    vocoder.zero_grad(set_to_none=True)
    alone = episode_gradients(vocoder, criterion, episode, adaptation, 4, 0.0, seed=7)
    assert alone == pytest.approx(losses, rel=1e-5)
    for name, parameter in vocoder.named_parameters():
        if name in adapted:
            torch.testing.assert_close(parameter.grad, adapted[name].grad, rtol=1e-4, atol=1e-7)


def test_a_run_lowers_the_validation_loss_after_adaptation_and_writes_a_vocoder_bundle_takes(corpora, tmp_path):
    summary = meta_train_vocoder(tiny_args(corpora, tmp_path / "meta"))
    assert summary["episodes"] == 12 and summary["train_speakers"] == 2 and summary["validation_speakers"] == 2
    assert summary["inner_adaptation"]["steps"] == 3 and summary["inner_adaptation"]["learning_rate"] == 1e-2
    records = [json.loads(line) for line in open(tmp_path / "meta" / LOG_NAME)]
    first, last = records[0]["validation"], records[-1]["validation"]
    assert records[0]["episode"] == 0 and records[-1]["episode"] == 12
    assert last["mel_l1_after"] < first["mel_l1_after"]
    assert first["mel_l1_after"] < first["mel_l1_before"]  # the inner loop already helps before meta-training
    assert [r["episode"] for r in records if "query_loss_after" in r] == [4, 8, 12]
    trained = load_trained_vocoder(str(tmp_path / "meta"))
    start = load_trained_vocoder(corpora.model)
    assert any(not torch.equal(trained.state_dict()[n], t) for n, t in start.state_dict().items())
    assert os.path.isfile(tmp_path / "meta" / SUMMARY_NAME)

    # The model a bundle would attach it to takes it.
    model = MetaTTSForTextToSpeech.from_pretrained(corpora.model)
    from hf_metatts.training.vocoder import attach_trained_vocoder

    attach_trained_vocoder(model, str(tmp_path / "meta"))
    torch.testing.assert_close(model.vocoder.head.weight, trained.head.weight)

    # Resumed with more episodes, it continues from episode 12 with the saved optimiser.
    resumed = meta_train_vocoder(tiny_args(corpora, tmp_path / "meta", episodes=16, eval_episodes=4))
    assert resumed["episodes"] == 16
    records = [json.loads(line) for line in open(tmp_path / "meta" / LOG_NAME)]
    assert [r["episode"] for r in records if "validation" in r] == [0, 12, 16]


def test_outer_parameters_leave_the_rest_of_the_vocoder_as_it_was(corpora, tmp_path):
    meta_train_vocoder(tiny_args(corpora, tmp_path / "head", episodes=4, eval_episodes=4, outer_parameters="head.*"))
    trained, start = load_trained_vocoder(str(tmp_path / "head")), load_trained_vocoder(corpora.model)
    for name, tensor in start.state_dict().items():
        if name.startswith("head."):
            assert not torch.equal(trained.state_dict()[name], tensor)
        else:
            assert torch.equal(trained.state_dict()[name], tensor)


@pytest.mark.parametrize("overrides, error, message", [
    (dict(inner_steps=None), VocoderAdaptationError, "voice_vocoder_steps=0"),
    (dict(outer_parameters="decoder.*"), VocoderTrainingError, "matches no vocoder parameter"),
    (dict(start_loss_weight=-1.0), VocoderTrainingError, "start_loss_weight=-1.0"),
    (dict(episodes=0), VocoderTrainingError, "episodes=0"),
    (dict(inner_learning_rate=2.0), VocoderAdaptationError, "vocoder_lr=2.0"),
    (dict(aligned_model="no/such/folder"), VocoderTrainingError, "aligned_model=no/such/folder"),
])
def test_bad_settings_are_refused_before_anything_is_written(corpora, tmp_path, overrides, error, message):
    out = tmp_path / "refused"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(error, match=message):
        meta_train_vocoder(tiny_args(corpora, out, **overrides))
    assert sorted(os.listdir(out)) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert not os.path.exists(out / CHECKPOINT_NAME)


def test_the_inner_loop_is_the_checkpoints_own_vocoder_adaptation():
    config = SimpleNamespace(voice_vocoder_steps=15, voice_vocoder_learning_rate=3e-3,
                             voice_vocoder_parameters=["head.*", "final_norm.*"], voice_vocoder_batch_size=8,
                             voice_vocoder_segment_frames=32, voice_vocoder_adapt_phase=False,
                             voice_vocoder_clip_context=True)
    shipped = inner_adaptation(config, MetaVocoderArguments())
    assert (shipped.steps, shipped.learning_rate, shipped.parameters) == (15, 3e-3, ("head.*", "final_norm.*"))
    assert shipped.adapt_phase is False  # the phase rows kept, as the checkpoint's own adaptation keeps them
    assert shipped.clip_context is True  # and the output layer read on whole-clip hidden states, as it reads them
    longer = inner_adaptation(config, MetaVocoderArguments(inner_steps=30, inner_learning_rate=1e-3))
    assert (longer.steps, longer.learning_rate, longer.batch_size) == (30, 1e-3, 8)


def test_the_command_line_gives_typed_arguments(monkeypatch):
    import hf_metatts.training.vocoder_meta as vocoder_meta
    from hf_metatts.cli import main

    seen = []
    monkeypatch.setattr(vocoder_meta, "meta_train_vocoder", seen.append)
    assert main(["meta-train-vocoder", "--dataset", "data/x", "--out", "outputs/y", "--episodes", "30",
                 "--inner-steps", "15", "--outer-learning-rate", "2e-4", "--outer-parameters", "head.*"]) == 0
    (args,) = seen
    assert args == MetaVocoderArguments(dataset_path="data/x", output_dir="outputs/y", episodes=30, inner_steps=15,
                                        outer_learning_rate=2e-4, outer_parameters="head.*")
