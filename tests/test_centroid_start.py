"""``hf-metatts centroid-start``: a zero-shot-start checkpoint copied with its adapted set at the mean of its support
encoder's voices and a meta-learner that starts from it; everything else bit for bit; bad inputs write nothing."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from data_fixtures import aligned_corpora, speaker_row_order
from datasets import load_from_disk
from safetensors.torch import load_file

import hf_metatts
from hf_metatts.data_collator import MetaTTSDataCollator
from hf_metatts.meta import adapt_parameters, load_meta_learner
from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead
from hf_metatts.training.centroid_start import CentroidStartError, write_centroid_start
from hf_metatts.training.unbundle import RunFolderExistsError

torch.set_num_threads(1)
SHOTS = 2


def save_meta_learner(folder, zero_shot_start: bool) -> None:
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(folder))
    names = model.adapted_parameter_names()
    shapes = {name: model.get_parameter(name).shape for name in names}
    config = MetaLearnerConfig(method="maml", inner_lr=0.03, inner_optimizer="adam", zero_shot_start=zero_shot_start,
                               zero_shot_loss_weight=1.0 if zero_shot_start else 0.0, adapted_parameter_names=names)
    MetaLearnerHead(config, shapes).save_pretrained(str(folder))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The aligned-vocoder corpus; its tiny checkpoint (convolutional support encoder) gets a zero-shot meta-learner."""
    corpora = aligned_corpora(tmp_path_factory.mktemp("centroid"), 4, 3)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(corpora.model)
    with torch.no_grad():  # a fresh encoder emits the model's own voice; a trained one, a voice per speaker
        for parameter in model.voice_encoder.parameters():
            parameter.normal_(0.0, 0.2)
    model.save_pretrained(corpora.model)
    save_meta_learner(corpora.model, zero_shot_start=True)
    return corpora


def folder_bytes(folder) -> dict[str, bytes]:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_the_start_is_the_mean_encoder_voice_and_nothing_else_changes(corpora, tmp_path):
    source = folder_bytes(corpora.model)
    out = tmp_path / "centroid"
    report = write_centroid_start(corpora.model, corpora.prepared, str(out), shots=SHOTS, inner_lr=0.02,
                                  global_variance_weight=0.3)
    assert folder_bytes(corpora.model) == source  # the source checkpoint is untouched
    assert report["speakers"] == 2 and {"model.safetensors", "meta_learner_config.json"} <= set(report["files"])
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(corpora.model).eval()
    names = base.adapted_parameter_names()
    rows = load_from_disk(corpora.prepared)["train"]
    collate = MetaTTSDataCollator()
    head = load_meta_learner(corpora.model)
    voices = []
    for number, speaker in enumerate(["speaker0", "speaker1"]):  # each speaker's first SHOTS rows in the drawn order
        chosen = speaker_row_order(rows["speaker_id"], speaker, number)[:SHOTS]
        voices.append(adapt_parameters(base, collate([rows[i] for i in chosen]), method="zero_shot", steps=0,
                                       meta_learner=head))
    assert any(not torch.allclose(voices[0][name], voices[1][name]) for name in names)  # two voices, one mean
    written = load_file(str(out / "model.safetensors"))
    original = load_file(os.path.join(corpora.model, "model.safetensors"))
    assert written.keys() == original.keys()
    for name in names:
        torch.testing.assert_close(written[name], (voices[0][name] + voices[1][name]) / 2, atol=1e-6, rtol=0)
        assert report["moved"][name] == pytest.approx(float((written[name] - original[name]).norm()), abs=1e-5)
    assert any(report["moved"][name] > 0 for name in names)
    for name in set(written) - set(names):
        assert torch.equal(written[name], original[name]), name
    meta = load_meta_learner(str(out)).config
    assert (meta.zero_shot_start, meta.zero_shot_loss_weight, meta.inner_lr, meta.global_variance_weight) == (
        False, 0.0, 0.02, 0.3)
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(out)).eval()
    support = collate([rows[i] for i in speaker_row_order(rows["speaker_id"], "speaker0", 0)[:SHOTS]])
    start = adapt_parameters(model, support, method="maml", steps=0, meta_learner=load_meta_learner(str(out)))
    for name in names:  # maml from this folder starts from the centroid, whatever the clips
        torch.testing.assert_close(start[name], written[name])


def test_the_command_writes_the_folder_and_bad_inputs_write_nothing(corpora, tmp_path, capsys):
    from hf_metatts.cli import main as cli_main

    out = tmp_path / "centroid"
    assert cli_main(["centroid-start", "--model", corpora.model, "--dataset", corpora.prepared, "--out", str(out),
                     "--shots", str(SHOTS), "--seed", "1"]) == 0
    written = folder_bytes(out)
    assert json.loads(written["meta_learner_config.json"])["zero_shot_start"] is False
    with pytest.raises(RunFolderExistsError, match="--overwrite"):
        write_centroid_start(corpora.model, corpora.prepared, str(out), shots=SHOTS)
    with pytest.raises(CentroidStartError, match="no split 'heldout'"):
        write_centroid_start(corpora.model, corpora.prepared, str(out), split="heldout", shots=SHOTS, overwrite=True)
    with pytest.raises(CentroidStartError, match="No speaker has 9 rows"):
        write_centroid_start(corpora.model, corpora.prepared, str(out), shots=9, overwrite=True)
    assert folder_bytes(out) == written  # every refusal left the folder as it was
    plain = tmp_path / "plain"
    shutil.copytree(corpora.model, plain)
    save_meta_learner(plain, zero_shot_start=False)
    with pytest.raises(CentroidStartError, match="zero_shot_start"):
        write_centroid_start(str(plain), corpora.prepared, str(tmp_path / "from_plain"), shots=SHOTS)
    assert not (tmp_path / "from_plain").exists()


@pytest.fixture(scope="module")
def embedding_model(corpora, tmp_path_factory):
    """The corpus's tiny checkpoint with a support encoder on a (random, frozen) speaker encoder whose head is
    trained-looking (nonzero), and a zero-shot meta-learner."""
    from test_speaker_embedding_voice_encoder import speaker_encoder

    folder = tmp_path_factory.mktemp("embedding_model") / "model"
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(corpora.model)
    model.use_speaker_embedding_voice_encoder(speaker_encoder())
    with torch.no_grad():
        for parameter in model.voice_encoder.head.parameters():
            parameter.normal_(0.0, 0.3)
    model.save_pretrained(str(folder))
    for name in os.listdir(corpora.model):  # the processor files
        if not os.path.exists(folder / name):
            shutil.copy(os.path.join(corpora.model, name), folder / name)
    save_meta_learner(folder, zero_shot_start=True)
    return str(folder)


def test_average_embeddings_is_the_head_on_the_unit_mean_embedding(corpora, embedding_model, tmp_path):
    import torch.nn.functional as F

    from hf_metatts.modeling_blocks import split_flat_changes

    report = write_centroid_start(embedding_model, corpora.prepared, str(tmp_path / "embeddings"), shots=SHOTS,
                                  average="embeddings")
    assert report["speakers"] == 2
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(embedding_model).eval()
    rows = load_from_disk(corpora.prepared)["train"]
    collate = MetaTTSDataCollator()
    embeddings = []
    for number, speaker in enumerate(["speaker0", "speaker1"]):
        batch = collate([rows[i] for i in speaker_row_order(rows["speaker_id"], speaker, number)[:SHOTS]])
        embeddings.append(base.voice_encoder.embed(batch["labels"], batch["labels_attention_mask"]))
    assert not torch.allclose(embeddings[0], embeddings[1])
    mean = F.normalize((embeddings[0] + embeddings[1]) / 2, dim=-1)
    encoder = base.voice_encoder
    with torch.no_grad():
        changes = split_flat_changes(encoder.head(mean), encoder.names, encoder.shapes)
    written = load_file(str(tmp_path / "embeddings" / "model.safetensors"))
    for name in base.adapted_parameter_names():
        torch.testing.assert_close(written[name], base.get_parameter(name).detach() + changes[name], atol=1e-6,
                                   rtol=0)
    # the head is nonlinear: the voice of the mean embedding is not the mean of the voices
    write_centroid_start(embedding_model, corpora.prepared, str(tmp_path / "voices"), shots=SHOTS)
    voices = load_file(str(tmp_path / "voices" / "model.safetensors"))
    assert any(not torch.allclose(written[name], voices[name], atol=1e-5)
               for name in base.adapted_parameter_names())


def test_average_embeddings_needs_a_speaker_embedding_encoder_and_a_known_average(corpora, tmp_path):
    out = tmp_path / "centroid"
    with pytest.raises(CentroidStartError, match="speaker_embedding"):
        write_centroid_start(corpora.model, corpora.prepared, str(out), shots=SHOTS, average="embeddings")
    with pytest.raises(CentroidStartError, match="average='median' is unknown: choose one of voices, embeddings"):
        write_centroid_start(corpora.model, corpora.prepared, str(out), shots=SHOTS, average="median")
    assert not out.exists()
