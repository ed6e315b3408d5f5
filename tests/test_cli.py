import json

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
