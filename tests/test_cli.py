import json

import pytest
import soundfile

from hf_metatts.cli import main


def test_synthesize_writes_a_wav(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "hello.wav"
    code = main(["synthesize", "--model", str(tiny_checkpoint), "--text", "Hello from the command line.",
                 "--out", str(out), "--speaking-rate", "0.5"])
    assert code == 0
    audio, rate = soundfile.read(out)
    assert rate == 16000 and len(audio) > 16000 * 0.5
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["seconds"] == round(len(audio) / 16000, 3)


def test_synthesize_in_another_language(tiny_checkpoint, tmp_path):
    out = tmp_path / "de.wav"
    assert main(["synthesize", "--model", str(tiny_checkpoint), "--text", "Guten Tag.", "--language", "de",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_languages_lists_espeak_codes(capsys):
    assert main(["languages"]) == 0
    codes = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert {"en-us", "de", "cs", "it", "ru"} <= set(codes) and len(codes) > 100



def test_synthesize_with_a_voice(tmp_path, capsys):
    from test_voice_adapt import SR, make_clips
    from tiny_models import save_tiny_checkpoint, tiny_model

    import hf_metatts
    from hf_metatts.voice_base import clear_base_cache

    clear_base_cache()
    base_dir, voice_dir = tmp_path / "base", tmp_path / "voice"
    save_tiny_checkpoint(base_dir)
    base = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(str(base_dir))
    base.adapt(make_clips(2, pitch=220.0), sampling_rate=SR, steps=2, lr=0.5, progress=False).save_pretrained(
        voice_dir)
    outputs = {name: tmp_path / f"{name}.wav" for name in ("alone", "with_base", "base")}
    assert main(["synthesize", "--voice", str(voice_dir), "--text", "A voice.", "--out", str(outputs["alone"])]) == 0
    assert main(["synthesize", "--model", str(base_dir), "--voice", str(voice_dir), "--text", "A voice.",
                 "--out", str(outputs["with_base"])]) == 0
    assert main(["synthesize", "--model", str(base_dir), "--text", "A voice.", "--out", str(outputs["base"])]) == 0
    alone, with_base, plain = (soundfile.read(outputs[name])[0] for name in ("alone", "with_base", "base"))
    assert len(alone) == len(with_base) and abs(alone - with_base).max() < 1e-3
    assert len(alone) != len(plain) or abs(alone - plain).max() > 1e-3  # the voice changes the audio
    other = tmp_path / "other_base"
    tiny_model().save_pretrained(other)
    hf_metatts.MetaTTSProcessor.from_pretrained(str(base_dir)).save_pretrained(other)
    capsys.readouterr()
    assert main(["synthesize", "--model", str(other), "--voice", str(voice_dir), "--text", "Hi.",
                 "--out", str(tmp_path / "x.wav")]) == 2
    assert "fingerprint" in capsys.readouterr().err  # one line, no traceback
    assert not (tmp_path / "x.wav").exists()


def test_synthesize_without_a_model_uses_the_bundled_checkpoint(tmp_path, capsys):
    assert main(["synthesize", "--text", "Hi there.", "--out", str(tmp_path / "x.wav")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["seconds"] > 0.2 and summary["out"] == str(tmp_path / "x.wav")
    audio, rate = soundfile.read(tmp_path / "x.wav")
    assert rate == 16000 and len(audio) > rate // 5


def test_commands_that_read_clips_print_no_third_party_deprecation_notice():
    """pyworld 0.3.x and pysptk import pkg_resources; its deprecation notice is not ours to print on every adapt."""
    import subprocess
    import sys

    def stderr_of(code: str) -> str:
        return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                              timeout=120, check=True).stderr

    if "pkg_resources is deprecated" not in stderr_of("import pyworld, pysptk"):
        pytest.skip("this setuptools prints no pkg_resources notice")
    assert "pkg_resources" not in stderr_of("import hf_metatts, pyworld, pysptk")


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from hf_metatts.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    silent = {name: [action.option_strings[0] if action.option_strings else action.dest
                     for action in command._actions
                     if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
              for name, command in commands.items()}
    assert len(commands) >= 16
    assert {name: options for name, options in silent.items() if options} == {}


def test_synthesize_reads_the_text_from_a_file_or_standard_input(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import io

    text = "Hello from a file. It holds two sentences."
    (tmp_path / "text.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # with a byte-order mark
    outputs = {}
    for name, source in (("inline", ["--text", text]), ("file", ["--text-file", str(tmp_path / "text.txt")]),
                         ("stdin", ["--text-file", "-"])):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        outputs[name] = tmp_path / f"{name}.wav"
        assert main(["synthesize", "--model", str(tiny_checkpoint), *source, "--out", str(outputs[name])]) == 0
    inline = soundfile.read(outputs["inline"])[0]
    for name in ("file", "stdin"):
        assert (soundfile.read(outputs[name])[0] == inline).all(), name


@pytest.mark.parametrize("problem", ["missing", "not utf-8", "both"])
def test_a_text_file_that_cannot_be_read_is_refused_and_nothing_is_written(tiny_checkpoint, tmp_path, capsys,
                                                                           problem):
    path, out = tmp_path / "text.txt", tmp_path / "x.wav"
    if problem == "not utf-8":
        path.write_bytes("Grüße".encode("latin-1"))
    arguments = ["synthesize", "--model", str(tiny_checkpoint), "--text-file", str(path), "--out", str(out)]
    if problem == "both":
        path.write_text("Hi.")
        with pytest.raises(SystemExit):
            main([*arguments, "--text", "Hi."])
        assert "not allowed with argument" in capsys.readouterr().err
    else:
        assert main(arguments) == 2
        expected = "no such file" if problem == "missing" else "is not UTF-8 text"
        assert expected in capsys.readouterr().err
    assert not out.exists()
