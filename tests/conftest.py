"""Shared fixtures: every test runs offline with its own Hugging Face caches."""

import logging
import os
import tempfile

# huggingface_hub and transformers read these once, at import: set them before anything imports them.
_SESSION_HF_HOME = tempfile.mkdtemp(prefix="hf_metatts_tests_")
os.environ.update(
    HF_HOME=_SESSION_HF_HOME,
    HF_HUB_CACHE=os.path.join(_SESSION_HF_HOME, "hub"),
    HF_MODULES_CACHE=os.path.join(_SESSION_HF_HOME, "modules"),
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    GRADIO_ANALYTICS_ENABLED="False",
)

import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


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
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield


@pytest.fixture(autouse=True)
def _library_log_level():
    """A benchmark script's ``main`` quiets the library's logger; its level comes back after each test, so that a
    later test reading the library's log lines sees them."""
    logger = logging.getLogger("hf_metatts")
    level = logger.level
    yield
    logger.setLevel(level)


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


@pytest.fixture(scope="session")
def tiny_istft_checkpoint(tmp_path_factory) -> str:
    """A saved tiny checkpoint that owns an (untrained) iSTFT vocoder, the kind whose weights a voice adapts."""
    from tiny_models import save_tiny_checkpoint

    path = tmp_path_factory.mktemp("tiny_istft_checkpoint")
    save_tiny_checkpoint(path, vocoder_type="istft")
    return str(path)
