import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from transformers import pipeline

import hf_metatts  # noqa: F401  (registers the Auto classes)


@pytest.fixture(scope="module")
def tts(tiny_checkpoint):
    return pipeline("text-to-speech", model=str(tiny_checkpoint))


def expected_samples(tts, text, language="en-us"):
    tokens = len(tts.tokenizer(text, language=language)["input_ids"])
    return tokens * 3 * 256  # the tiny checkpoint speaks 3 frames per token


def test_one_text(tts):
    out = tts("Hello from the pipeline.")
    assert set(out) == {"audio", "sampling_rate"}
    assert out["sampling_rate"] == 16000
    assert out["audio"].ndim == 1 and out["audio"].dtype == np.float32
    assert len(out["audio"]) == expected_samples(tts, "Hello from the pipeline.")
    assert np.isfinite(out["audio"]).all() and np.abs(out["audio"]).max() <= 1.0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_list_and_batch_each_output_as_long_as_its_text(tts, batch_size):
    texts = ["Hi.", "A considerably longer sentence than the first.", "Medium length one."]
    outs = tts(texts, batch_size=batch_size)
    assert [len(o["audio"]) for o in outs] == [expected_samples(tts, t) for t in texts]


def test_batched_audio_equals_single_audio(tts):
    texts = ["Short one.", "And a much longer sentence follows it."]
    batched = tts(texts, batch_size=2)
    for text, out in zip(texts, batched):
        np.testing.assert_allclose(out["audio"], tts(text)["audio"], atol=1e-4)


def test_forward_params(tts):
    text = "Rate and pitch."
    normal = tts(text)["audio"]
    slow = tts(text, forward_params={"speaking_rate": 0.5})["audio"]
    assert len(slow) == 2 * len(normal)
    shifted = tts(text, forward_params={"pitch_shift": 4.0})["audio"]
    assert len(shifted) == len(normal) and not np.allclose(shifted, normal)
    with pytest.raises(TypeError):
        tts(text, forward_params={"no_such_parameter": 1})


def test_language_is_a_preprocess_parameter(tts):
    german = tts("Guten Morgen, wie geht es dir?", preprocess_params={"language": "de"})["audio"]
    assert len(german) == expected_samples(tts, "Guten Morgen, wie geht es dir?", language="de")
    with pytest.raises(ValueError, match="preprocess_params"):
        tts("Guten Morgen.", forward_params={"language": "de"})


def test_long_paragraph_is_not_truncated(tts):
    paragraph = " ".join(f"This is sentence {i} of a long paragraph about speech." for i in range(38))
    assert len(paragraph) >= 2000
    audio = tts(paragraph)["audio"]
    assert len(audio) > expected_samples(tts, paragraph)  # every token spoken, plus pauses between chunks


@pytest.mark.parametrize("text", ["", "   ", "?!"])
def test_bad_text_raises_a_clear_error(tts, text):
    with pytest.raises(hf_metatts.InvalidTextError):
        tts(text)


def test_remote_code_loads_without_the_plugin(tiny_checkpoint, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from transformers import pipeline
        tts = pipeline("text-to-speech", model={str(tiny_checkpoint)!r}, trust_remote_code=True)
        out = tts("Loaded as remote code.")
        assert "hf_metatts" not in sys.modules, "the plugin was imported"
        assert type(tts.model).__module__.startswith("transformers_modules"), type(tts.model).__module__
        print(len(out["audio"]), out["sampling_rate"])
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    samples, rate = result.stdout.split()[-2:]
    assert int(rate) == 16000 and int(samples) > 0
