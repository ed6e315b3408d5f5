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


def test_language_as_forward_or_preprocess_parameter(tts):
    text = "Guten Morgen, wie geht es dir?"
    german = tts(text, forward_params={"language": "de"})["audio"]
    assert len(german) == expected_samples(tts, text, language="de")
    assert expected_samples(tts, text, language="de") != expected_samples(tts, text)  # not read as English
    np.testing.assert_array_equal(tts(text, preprocess_params={"language": "de"})["audio"], german)
    with pytest.raises(hf_metatts.UnsupportedLanguageError, match="hf-metatts languages"):
        tts(text, forward_params={"language": "xx-yy"})
    assert len(tts(text)["audio"]) == expected_samples(tts, text)  # the default language is unchanged


def test_other_text_to_speech_models_are_untouched(tmp_path):
    from transformers import VitsConfig, VitsModel, VitsTokenizer
    from transformers.pipelines.text_to_audio import TextToAudioPipeline

    vocab = {ch: i for i, ch in enumerate(" abcdefghijklmnopqrstuvwxyz")}
    (tmp_path / "vocab.json").write_text(__import__("json").dumps(vocab))
    VitsTokenizer(str(tmp_path / "vocab.json"), add_blank=False, phonemize=False).save_pretrained(tmp_path)
    VitsModel(VitsConfig(vocab_size=len(vocab) + 8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         ffn_dim=16, flow_size=16, upsample_initial_channel=16, prior_encoder_num_flows=1,
                         posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
                         duration_predictor_filter_channels=16, spectrogram_bins=33)).save_pretrained(tmp_path)
    vits = pipeline("text-to-speech", model=str(tmp_path))
    assert isinstance(vits, TextToAudioPipeline)
    assert vits("hello world")["audio"].size > 0
    preprocess, forward, _ = vits._sanitize_parameters(forward_params={"language": "de"})
    assert forward["forward_params"] == {"language": "de"} and "language" not in preprocess  # as before


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
