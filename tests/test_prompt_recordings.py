"""hf_metatts.data.prompt_recordings and `hf-metatts import-prompts`: the Asterisk prompts (G.722 recordings and
their transcripts) as a corpus of test voices, with every kind of prompt the filter leaves out."""

import gzip

import numpy as np
import pytest

from hf_metatts.cli import main as cli_main
from hf_metatts.data.errors import CorpusBuildError
from hf_metatts.data.prompt_recordings import (
    PROMPT_VOICES,
    PromptFilter,
    decode_g722,
    load_prompt_voices,
    read_transcripts,
)
from hf_metatts.data.schema import COLUMNS

G722 = pytest.importorskip("G722")
SR = 16000
ENGLISH = next(voice for voice in PROMPT_VOICES if voice.folder == "en_US_f_Allison")


def _speech_like(seconds: float, pitch: float = 140.0) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope, float32 in [-1, 1)."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3, 4))
    return (0.2 * tone * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 3 * t)))).astype(np.float32)


def _encode(audio: np.ndarray) -> bytes:
    return G722.G722(SR, 64000).encode((audio * 32767).astype(np.int16))


PROMPTS = {  # name -> (transcript, seconds of audio, or None for no recording)
    "good-one": ("Please enter your password now.", 1.6),
    "good-two": ("Note: the call is being recorded.", 2.0),  # a colon inside the text
    "beep": ("[this is a simple beep tone]", 1.2),
    "press-digit": ("Press 1 to continue please.", 1.5),
    "short-words": ("Thank you.", 1.5),
    "too-short-clip": ("This one is far too short.", 0.5),
    "no-recording": ("There is no file for this one.", None),
}


@pytest.fixture()
def installed(tmp_path):
    """A sounds folder and a docs folder laid out as the Debian packages install them, for the English voice."""
    sounds, docs = tmp_path / "sounds", tmp_path / "doc"
    (sounds / ENGLISH.folder).mkdir(parents=True)
    (docs / "asterisk-core-sounds-en").mkdir(parents=True)
    lines = ["; Core Asterisk Sounds in English", ""]
    originals = {}
    for name, (text, seconds) in PROMPTS.items():
        lines.append(f"{name}: {text}")
        if seconds is not None:
            originals[name] = _speech_like(seconds)
            (sounds / ENGLISH.folder / f"{name}.g722").write_bytes(_encode(originals[name]))
    with gzip.open(docs / "asterisk-core-sounds-en" / "core-sounds-en.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return sounds, docs, originals


def test_the_transcripts_split_on_the_first_colon_and_skip_comments(installed):
    _, docs, _ = installed
    transcripts = read_transcripts(str(docs / "asterisk-core-sounds-en" / "core-sounds-en.txt.gz"))
    assert transcripts["good-two"] == "Note: the call is being recorded."
    assert len(transcripts) == len(PROMPTS) and not any(name.startswith(";") for name in transcripts)


def test_the_filter_names_why_a_prompt_is_not_a_sentence():
    keep = PromptFilter()
    assert keep.text_reason("[ascending tones]") == "tone"
    assert keep.text_reason("Press 2 for sales.") == "digits"
    assert keep.text_reason("Thank you.") == "too_few_words"
    assert keep.text_reason("Please hold the line.") is None
    assert PromptFilter(min_words=2).text_reason("Thank you.") is None


def test_g722_decodes_to_16_khz_floats_close_to_what_was_encoded():
    audio = _speech_like(1.0)
    decoded = decode_g722(_encode(audio))
    assert decoded.dtype == np.float32 and decoded.shape == audio.shape
    assert np.abs(decoded).max() < 1.0
    # the codec delays the signal by a few samples: the best lag correlates closely
    best = max(np.corrcoef(decoded[lag:], audio[: audio.size - lag])[0, 1] for lag in range(0, 40))
    assert best > 0.95


def test_the_kept_prompts_become_corpus_rows_of_one_test_voice(installed):
    sounds, docs, originals = installed
    corpus = load_prompt_voices([ENGLISH], str(sounds), str(docs))
    assert list(corpus) == ["test"]
    test = corpus["test"]
    assert tuple(test.column_names) == COLUMNS
    rows = test.remove_columns("audio").to_list()
    assert [row["id"] for row in rows] == ["asterisk:en_US_f_Allison/good-one", "asterisk:en_US_f_Allison/good-two"]
    for row in rows:
        assert row["speaker_id"] == "asterisk:en_US_f_Allison" and row["base_speaker"] == "asterisk:Allison Smith"
        assert row["language"] == "en-us" and row["style"] == "neutral" and row["phone_timings"] == []
        assert row["phonemes"].strip() and row["phonemes"] != row["text"]
    assert rows[0]["duration"] == pytest.approx(1.6, abs=1e-3)

    from datasets import Audio

    from hf_metatts.data import decode_audio

    stored = decode_audio(test.cast_column("audio", Audio(decode=False))[0]["audio"], SR)
    best = max(np.corrcoef(stored[lag:], originals["good-one"][: stored.size - lag])[0, 1] for lag in range(40))
    assert best > 0.95


def test_a_voice_that_is_not_installed_is_refused_with_the_install_command(installed, tmp_path):
    sounds, docs, _ = installed
    french = next(voice for voice in PROMPT_VOICES if voice.folder == "fr_CA_f_June")
    with pytest.raises(CorpusBuildError, match="install_recordings.sh"):
        load_prompt_voices([ENGLISH, french], str(sounds), str(docs))
    with pytest.raises(CorpusBuildError, match="No prompt"):
        load_prompt_voices([ENGLISH], str(sounds), str(docs), PromptFilter(min_words=50))


def test_the_command_writes_the_corpus_and_refuses_without_touching_anything(installed, tmp_path, capsys):
    from datasets import load_from_disk

    sounds, docs, _ = installed
    out = tmp_path / "prompts"
    base = ["import-prompts", "--voices", "en_US_f_Allison", "--sounds-dir", str(sounds), "--docs-dir", str(docs)]
    assert cli_main([*base, "--out", str(out)]) == 0
    assert "asterisk:en_US_f_Allison: 2 prompts" in capsys.readouterr().out
    assert load_from_disk(str(out))["test"].num_rows == 2
    before = sorted(p.name for p in out.iterdir())

    assert cli_main([*base, "--out", str(out)]) == 1  # the folder exists: nothing is overwritten
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before

    assert cli_main([*base, "--min-words", "0", "--out", str(tmp_path / "zero")]) == 1
    assert cli_main(["import-prompts", "--voices", "fr_CA_f_June", "--sounds-dir", str(sounds), "--docs-dir",
                     str(docs), "--out", str(tmp_path / "missing")]) == 1
    assert "install_recordings.sh" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists() and not (tmp_path / "missing").exists()
