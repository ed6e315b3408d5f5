"""Hub round trip offline: create_repo/create_commit write into a temporary Hub cache, then everything loads by
repo id with HF_HUB_OFFLINE=1. A test against the real Hub runs only when HF_TOKEN is set."""

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from test_voice_adapt import SR, make_clips, one_thread
from tiny_models import tiny_model, tiny_processor
from transformers import pipeline

import hf_metatts
from hf_metatts.hub import push_base_to_hub
from hf_metatts.voice import MetaTTSVoice
from hf_metatts.voice_base import clear_base_cache

__all__ = ["one_thread", "local_hub"]  # fixtures shared with the other Hub tests

RESULTS = [{"dataset_name": "tiny espeak voices (test split)", "dataset_type": "hf-metatts/tiny-voices",
            "metric_type": "mcd", "metric_name": "MCD after 5 steps (dB)", "metric_value": 11.8}]


class LocalHub:
    """``HfApi.create_repo`` / ``create_commit`` answered by writing snapshots into the Hub cache."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.commits: list[tuple[str, list[str]]] = []

    def folder(self, repo_id: str) -> Path:
        return self.cache / f"models--{repo_id.replace('/', '--')}"

    def create_repo(self, api, repo_id, *, exist_ok=False, **_):
        folder = self.folder(repo_id)
        if folder.exists() and not exist_ok:
            raise FileExistsError(repo_id)
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "snapshots").mkdir(exist_ok=True)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, api, repo_id, operations, *, commit_message, revision=None, **_):
        folder = self.folder(repo_id)
        if not (folder / "refs").is_dir():
            raise FileNotFoundError(f"Repository {repo_id} does not exist")
        ref = folder / "refs" / (revision or "main")
        files = {}
        if ref.exists():
            parent = folder / "snapshots" / ref.read_text()
            files = {str(p.relative_to(parent)): p.read_bytes() for p in parent.rglob("*") if p.is_file()}
        for operation in operations:
            with operation.as_file() as handle:
                files[operation.path_in_repo] = handle.read()
        digest = hashlib.sha1(commit_message.encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        sha = digest.hexdigest()
        for name, data in files.items():
            target = folder / "snapshots" / sha / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        ref.write_text(sha)
        self.commits.append((repo_id, sorted(op.path_in_repo for op in operations)))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{sha}", commit_message=commit_message,
                          commit_description="", oid=sha)


@pytest.fixture
def local_hub(monkeypatch):
    import huggingface_hub.constants

    hub = LocalHub(Path(os.environ["HF_HUB_CACHE"]))
    # the Hub library reads these at import time, before the per-test environment exists
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub.cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: hub.create_repo(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "create_commit",
                        lambda api, repo_id, operations, **kw: hub.create_commit(api, repo_id, operations, **kw))
    clear_base_cache()
    yield hub
    clear_base_cache()


def test_base_and_voice_round_trip_by_repo_id(local_hub):
    model = tiny_model()
    info = push_base_to_hub(model, "acme/metatts-tiny", processor=tiny_processor(model.config), results=RESULTS,
                            datasets=["hf-metatts/tiny-voices"], base_model="acme/metatts-pretrain")
    pushed = local_hub.commits[-1][1]
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "vocab.json", "processor_config.json",
                 "configuration_metatts.py", "modeling_metatts.py", "modeling_vocoder.py", "tokenization_metatts.py",
                 "feature_extraction_metatts.py", "README.md"):
        assert name in pushed, name
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in pushed)

    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained("acme/metatts-tiny")
    assert base.config.auto_map["AutoModelForTextToWaveform"].startswith("modeling_metatts.")
    voice = base.adapt(make_clips(2), sampling_rate=SR, steps=2, lr=0.5, progress=False)
    assert (voice.config.base_model, voice.config.base_revision) == ("acme/metatts-tiny", info.oid)
    voice.push_to_hub("acme/my-voice")
    assert {"voice.safetensors", "voice_config.json", "config.json", "README.md"} <= set(local_hub.commits[-1][1])

    clear_base_cache()
    tts = pipeline("text-to-speech", model="acme/my-voice")
    processor = hf_metatts.MetaTTSProcessor.from_pretrained("acme/metatts-tiny")
    inputs = processor(text="Loaded by repo id.", return_tensors="pt")
    expected = base(**inputs, voice=voice).waveform[0].numpy()
    np.testing.assert_array_equal(tts("Loaded by repo id.")["audio"], expected)
    loaded = MetaTTSVoice.from_pretrained("acme/my-voice")
    np.testing.assert_array_equal(base(**inputs, voice=loaded).waveform[0].numpy(), expected)


def test_base_card_metadata_and_results(local_hub, tmp_path):
    model = tiny_model()
    push_base_to_hub(model, "acme/with-results", processor=tiny_processor(model.config), results=RESULTS,
                     datasets=["hf-metatts/tiny-voices"], base_model="acme/metatts-pretrain")
    card = ModelCard.load(local_hub.folder("acme/with-results") / "snapshots" /
                          (local_hub.folder("acme/with-results") / "refs" / "main").read_text() / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-to-speech"
    assert {"hf-metatts", "text-to-speech", "custom_code"} <= set(data["tags"])
    assert data["datasets"] == ["hf-metatts/tiny-voices"] and data["base_model"] == "acme/metatts-pretrain"
    metric = data["model-index"][0]["results"][0]["metrics"][0]
    assert (metric["type"], metric["value"]) == ("mcd", 11.8)
    assert "| tiny espeak voices (test split) | MCD after 5 steps (dB) | 11.8 |" in card.text

    push_base_to_hub(model, "acme/no-results", processor=tiny_processor(model.config))
    folder = local_hub.folder("acme/no-results")
    card = ModelCard.load(folder / "snapshots" / (folder / "refs" / "main").read_text() / "README.md")
    assert "model-index" not in card.data.to_dict() and "No evaluation results" in card.text


def test_voice_card(local_hub, tmp_path):
    model = tiny_model()
    push_base_to_hub(model, "acme/base", processor=tiny_processor(model.config))
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained("acme/base")
    voice = base.adapt(make_clips(1), sampling_rate=SR, steps=1, progress=False)
    voice.save_pretrained(tmp_path / "voice", repo_id="acme/voice")
    card = ModelCard.load(tmp_path / "voice" / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "acme/base" and data["pipeline_tag"] == "text-to-speech"
    assert "voice" in data["tags"] and data["language"] == ["en"]
    assert voice.config.base_fingerprint in card.text and f"{voice.num_parameters:,} numbers" in card.text
    assert 'pipeline("text-to-speech", model="acme/voice")' in card.text
    # what was adapted, by module, with its size: the card tells a 2,304-float voice from a decoder-wide one
    sizes = {name: value.numel() for name, value in voice.adapted_parameters.items()}
    speaker = sizes["voice.speaker_vector"]
    assert f"| adapted | `voice.speaker_vector` (1 tensor, {speaker:,} floats), `decoder.layers` (" in card.text


def test_voice_card_lists_what_was_adapted_by_module():
    from hf_metatts.model_cards import adapted_parts

    names = ["voice.speaker_vector", "decoder.layers.0.attention_norm.shift.bias", "decoder.layers.1.ffn.weight",
             "decoder.final_norm.scale.bias", "vocoder.head.weight"]
    floats = {"voice.speaker_vector": 256, "decoder.layers.0.attention_norm.shift.bias": 160,
              "decoder.layers.1.ffn.weight": 61440, "decoder.final_norm.scale.bias": 160, "vocoder.head.weight": 1000}
    assert adapted_parts(names, floats) == (
        "`voice.speaker_vector` (1 tensor, 256 floats), `decoder.layers` (2 tensors, 61,600 floats), "
        "`decoder.final_norm` (1 tensor, 160 floats), `vocoder.head` (1 tensor, 1,000 floats)")
    assert adapted_parts(names[:2]) == "`voice.speaker_vector` (1 tensor), `decoder.layers` (1 tensor)"


def test_push_refuses_an_incomplete_base(local_hub, tmp_path):
    tiny_model().save_pretrained(tmp_path / "no_tokenizer")
    with pytest.raises(hf_metatts.CheckpointError, match="tokenizer_config.json"):
        push_base_to_hub(str(tmp_path / "no_tokenizer"), "acme/incomplete")
    assert local_hub.commits == [] and not local_hub.folder("acme/incomplete").exists()


@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN and network access to the Hub")
def test_real_hub_round_trip(monkeypatch, tmp_path):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    api = HfApi(token=os.environ["HF_TOKEN"])
    user = api.whoami()["name"]
    base_id, voice_id = f"{user}/metatts-test-{uuid.uuid4().hex[:8]}", f"{user}/metatts-voice-{uuid.uuid4().hex[:8]}"
    clear_base_cache()
    try:
        model = tiny_model()
        push_base_to_hub(model, base_id, processor=tiny_processor(model.config), private=True)
        base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(base_id)
        voice = base.adapt(make_clips(1), sampling_rate=SR, steps=1, progress=False)
        voice.push_to_hub(voice_id, private=True)
        clear_base_cache()
        audio = pipeline("text-to-speech", model=voice_id)("Real Hub.")["audio"]
        processor = hf_metatts.MetaTTSProcessor.from_pretrained(base_id)
        expected = base(**processor(text="Real Hub.", return_tensors="pt"), voice=voice).waveform[0].numpy()
        np.testing.assert_array_equal(audio, expected)
    finally:
        for repo in (base_id, voice_id):
            api.delete_repo(repo, missing_ok=True)
        clear_base_cache()
