"""Shared fixtures: every test runs offline with its own Hugging Face caches."""

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _offline_isolated_hub(tmp_path_factory, monkeypatch):
    """Point every Hub cache at a temporary folder and forbid network access."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_MODULES_CACHE", str(home / "modules"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    yield


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A saved tiny MetaTTS checkpoint folder (model, tokenizer, feature extractor, remote code)."""
    from tiny_models import save_tiny_checkpoint

    path = tmp_path_factory.mktemp("tiny_checkpoint")
    save_tiny_checkpoint(path)
    return path
