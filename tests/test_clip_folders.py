"""hf_metatts.clip_folders: the three layouts of a clip folder, read by model.adapt and by ``hf-metatts adapt``."""

import json
import re

import pytest
import soundfile
import torch
from test_voice_adapt import SR, make_clips, one_thread
from tiny_models import save_tiny_checkpoint

import hf_metatts
from hf_metatts.cli import main
from hf_metatts.clip_folders import ClipFolderError, is_clip_folder, read_clip_folder
from hf_metatts.voice import MetaTTSVoice

__all__ = ["one_thread"]

CLIPS = make_clips(2)
TRANSCRIPTS = [text for _, text in CLIPS]


def write_audio(path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, CLIPS[index][0], SR)


def contents(folder) -> dict:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.fixture
def sidecar(tmp_path):
    folder = tmp_path / "sidecar"
    for index in range(2):
        write_audio(folder / f"utt{index}.wav", index)
        (folder / f"utt{index}.txt").write_text(TRANSCRIPTS[index] + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def audiofolder(tmp_path):
    folder = tmp_path / "audiofolder"
    write_audio(folder / "data" / "b.wav", 1)
    write_audio(folder / "a.flac", 0)
    lines = ["file_name,transcription,speaker", f'a.flac,"{TRANSCRIPTS[0]}",me', f'data/b.wav,"{TRANSCRIPTS[1]}",me']
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def ljspeech(tmp_path):
    folder = tmp_path / "ljspeech"
    write_audio(folder / "wavs" / "LJ001-0002.wav", 0)
    write_audio(folder / "LJ001-0001.wav", 1)  # beside the metadata, not under wavs/
    lines = [f"LJ001-0002|{TRANSCRIPTS[0].upper()}|{TRANSCRIPTS[0]}", f"LJ001-0001|{TRANSCRIPTS[1]}", ""]
    (folder / "metadata.csv").write_text("\n".join(lines), encoding="utf-8")
    return folder


def test_sidecar_transcripts_are_read_in_file_name_order(sidecar):
    (sidecar / "notes.md").write_text("not a clip")
    pairs = read_clip_folder(sidecar)
    assert pairs == [(str(sidecar / "utt0.wav"), TRANSCRIPTS[0]), (str(sidecar / "utt1.wav"), TRANSCRIPTS[1])]
    soundfile.write(sidecar / "utt2.opus", CLIPS[0][0], 48000, format="OGG", subtype="OPUS")
    (sidecar / "utt2.txt").write_text(TRANSCRIPTS[0])
    assert read_clip_folder(sidecar)[-1] == (str(sidecar / "utt2.opus"), TRANSCRIPTS[0])
    assert is_clip_folder(sidecar) and is_clip_folder(str(sidecar))
    assert not is_clip_folder(sidecar / "utt0.wav") and not is_clip_folder([("a.wav", "text")])


def test_an_audiofolder_metadata_file_gives_paths_relative_to_the_folder_and_its_text_column(audiofolder):
    pairs = read_clip_folder(audiofolder, text_column="transcription")
    assert pairs == [(str(audiofolder / "a.flac"), TRANSCRIPTS[0]), (str(audiofolder / "data/b.wav"), TRANSCRIPTS[1])]
    (audiofolder / "metadata.csv").unlink()
    rows = [{"file_name": "data/b.wav", "text": TRANSCRIPTS[1]}, {"file_name": "a.flac", "text": TRANSCRIPTS[0]}]
    (audiofolder / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    assert read_clip_folder(audiofolder) == [(str(audiofolder / "data/b.wav"), TRANSCRIPTS[1]),
                                             (str(audiofolder / "a.flac"), TRANSCRIPTS[0])]


def test_metadata_written_by_a_spreadsheet_program_reads_the_same(audiofolder, ljspeech):
    """UTF-8 with a byte-order mark and Windows line endings, as spreadsheet programs save a CSV."""
    expected = {folder: read_clip_folder(folder, text_column="transcription" if folder == audiofolder else "text")
                for folder in (audiofolder, ljspeech)}
    for folder in (audiofolder, ljspeech):
        text = (folder / "metadata.csv").read_text(encoding="utf-8")
        (folder / "metadata.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
        column = "transcription" if folder == audiofolder else "text"
        assert read_clip_folder(folder, text_column=column) == expected[folder]


def test_an_audiofolder_language_column_gives_each_clip_its_language(audiofolder):
    lines = ["file_name,transcription,lang", f'a.flac,"{TRANSCRIPTS[0]}",de', f'data/b.wav,"{TRANSCRIPTS[1]}",']
    (audiofolder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_clip_folder(audiofolder, text_column="transcription", language_column="lang") == [
        (str(audiofolder / "a.flac"), TRANSCRIPTS[0], "de"), (str(audiofolder / "data/b.wav"), TRANSCRIPTS[1], None)]
    assert len(read_clip_folder(audiofolder, text_column="transcription")[0]) == 2  # no 'language' column: pairs


def test_model_adapt_reads_each_clip_in_its_own_language(tmp_path, audiofolder, monkeypatch):
    import hf_metatts.voice_adapt as voice_adapt

    lines = ["file_name,text,language", f'a.flac,"{TRANSCRIPTS[0]}",de', f'data/b.wav,"{TRANSCRIPTS[1]}",']
    (audiofolder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen = []
    prepare = voice_adapt.prepare_support
    monkeypatch.setattr(voice_adapt, "prepare_support",
                        lambda support, *a, **k: seen.extend(c.language for c in support) or prepare(support, *a, **k))
    save_tiny_checkpoint(tmp_path / "base")
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "base")
    model.adapt(str(audiofolder), method="finetune", steps=1, progress=False, language="en-gb")
    assert seen == ["de", "en-gb"]  # the row's language, else the call's


def test_ljspeech_metadata_reads_the_normalised_transcript_where_a_row_has_one(ljspeech):
    assert read_clip_folder(ljspeech) == [(str(ljspeech / "wavs" / "LJ001-0002.wav"), TRANSCRIPTS[0]),
                                          (str(ljspeech / "LJ001-0001.wav"), TRANSCRIPTS[1])]


def test_model_adapt_reads_a_folder_as_it_reads_the_same_pairs(tmp_path, ljspeech):
    save_tiny_checkpoint(tmp_path / "base")
    model = hf_metatts.MetaTTSForTextToSpeech.from_pretrained(tmp_path / "base")
    from_folder = model.adapt(str(ljspeech), method="finetune", steps=2, progress=False)
    from_pairs = model.adapt(read_clip_folder(ljspeech), method="finetune", steps=2, progress=False)
    assert from_folder.config.shots == 2
    assert from_folder.adapted_parameters.keys() == from_pairs.adapted_parameters.keys()
    for name, value in from_folder.adapted_parameters.items():
        assert torch.equal(value, from_pairs.adapted_parameters[name]), name


@pytest.mark.parametrize("layout", ["audiofolder", "ljspeech"])
def test_the_command_line_adapts_from_a_metadata_folder(tmp_path, capsys, layout, audiofolder, ljspeech):
    save_tiny_checkpoint(tmp_path / "base")
    folder, extra = (audiofolder, ["--text-column", "transcription"]) if layout == "audiofolder" else (ljspeech, [])
    out = tmp_path / "voice"
    code = main(["adapt", "--model", str(tmp_path / "base"), "--clips", str(folder), "--steps", "1", "--out",
                 str(out), "--no-progress", *extra])
    assert code == 0 and MetaTTSVoice.from_pretrained(out).config.shots == 2


def _break(layout, folder):
    """Damage ``folder`` in the way ``layout`` names; returns the message expected."""
    if layout == "missing folder":
        return "is not a folder"
    if layout == "no clip":
        for path in folder.iterdir():
            path.unlink()
        return "holds no clip"
    if layout == "missing transcript":
        (folder / "utt1.txt").unlink()
        return "utt1.wav has no transcript"
    if layout == "an m4a clip":
        (folder / "phone.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
        (folder / "phone.txt").write_text("Recorded on a phone.")
        return "phone.m4a is .m4a, which cannot be decoded here: convert it to WAV or FLAC"
    if layout == "two metadata files":
        (folder / "metadata.jsonl").write_text('{"file_name": "utt0.wav", "text": "x"}\n')
        (folder / "metadata.csv").write_text("file_name,text\nutt0.wav,x\n")
        return "holds both metadata.csv and metadata.jsonl"
    if layout == "no text column":
        (folder / "metadata.csv").write_text("file_name,transcription\nutt0.wav,Hello.\n")
        return "has no 'text' column (pass text_column= / --text-column); its columns: ['file_name', 'transcription']"
    if layout == "missing file":
        (folder / "metadata.csv").write_text("file_name,text\nutt0.wav,Hello.\nlost.wav,Gone.\n")
        return "metadata.csv, line 3, names 'lost.wav', which is not a file"
    if layout == "bad jsonl":
        (folder / "metadata.jsonl").write_text('{"file_name": "utt0.wav", "text": "Hello."}\n[1, 2]\n')
        return "metadata.jsonl, line 2, is not a JSON object"
    if layout == "missing ljspeech audio":
        (folder / "metadata.csv").write_text("utt0|Hello.\nLJ404|Nowhere.\n")
        return "line 2: clip 'LJ404' has no audio file; put it at"
    if layout == "bad ljspeech row":
        (folder / "metadata.csv").write_text("utt0|Hello.\n|no id\n")
        return "line 2, is not an id|transcript row"
    (folder / "metadata.csv").write_text("just some words\n")
    return "is neither an audiofolder metadata file"


LAYOUTS = ["missing folder", "no clip", "missing transcript", "an m4a clip", "two metadata files", "no text column",
           "missing file", "bad jsonl", "missing ljspeech audio", "bad ljspeech row", "unknown metadata"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_folder_that_cannot_be_read_is_refused_with_what_to_change_and_left_as_it_was(tmp_path, sidecar, layout):
    folder = tmp_path / "nowhere" if layout == "missing folder" else sidecar
    expected = _break(layout, folder)
    before = contents(folder) if folder.exists() else None
    with pytest.raises(ClipFolderError, match=re.escape(expected)):
        read_clip_folder(folder)
    assert (contents(folder) if folder.exists() else None) == before


@pytest.mark.parametrize("layout", ["no text column", "missing ljspeech audio"])
def test_the_command_line_refuses_such_a_folder_and_writes_no_voice(tmp_path, capsys, sidecar, layout):
    save_tiny_checkpoint(tmp_path / "base")
    expected = _break(layout, sidecar)
    out = tmp_path / "voice"
    assert main(["adapt", "--model", str(tmp_path / "base"), "--clips", str(sidecar), "--out", str(out),
                 "--no-progress"]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_clips_come_as_pairs_or_triples_and_anything_else_is_refused():
    from hf_metatts.voice_validation import iterate_clip_sources

    audio = CLIPS[0][0]
    assert list(iterate_clip_sources([(audio, "Hi."), (audio, "Hallo.", "de")])) == [(audio, "Hi.", None),
                                                                                    (audio, "Hallo.", "de")]
    with pytest.raises(TypeError, match=r"Clip #1 must be an \(audio, transcript\) pair or an \(audio, transcript, "
                                        r"language\) triple, got tuple"):
        list(iterate_clip_sources([(audio, "Hi."), (audio, "a", "de", "extra")]))


def _many(folder, count: int):
    """``folder`` as an LJSpeech folder of ``count`` clips (the same audio under many ids)."""
    (folder / "wavs").mkdir(parents=True)
    lines = []
    for index in range(count):
        write_audio(folder / "wavs" / f"c{index:03d}.wav", index % 2)
        lines.append(f"c{index:03d}|{TRANSCRIPTS[index % 2]}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_more_clips_than_max_clips_are_refused_before_any_is_read(tmp_path, monkeypatch):
    import hf_metatts.voice_validation as voice_validation
    from hf_metatts.voice_errors import TooManyClipsError
    from hf_metatts.voice_validation import ClipValidation, load_clips

    folder = _many(tmp_path / "corpus", 6)
    decoded = []
    decode = voice_validation._decode_native
    monkeypatch.setattr(voice_validation, "_decode_native", lambda *a: decoded.append(1) or decode(*a))
    with pytest.raises(TooManyClipsError, match=r"6 clips were given: a voice reads at most 5 "
                                                r"\(ClipValidation.max_clips\).*hf-metatts adapt --first 20"):
        load_clips(str(folder), SR, ClipValidation(max_clips=5))
    with pytest.raises(TooManyClipsError, match="7 clips were given: a voice reads at most 5"):
        load_clips(read_clip_folder(folder) + [CLIPS[0]], SR, ClipValidation(max_clips=5))
    assert decoded == []
    assert len(load_clips(str(folder), SR, ClipValidation(max_clips=6))) == 6
    assert len(load_clips(str(folder), SR, ClipValidation(max_clips=None))) == 6
    assert ClipValidation().max_clips == 50


@pytest.mark.parametrize("value", [0, -1, 2.5, float("nan")])
def test_a_max_clips_that_is_not_a_whole_number_is_refused(value):
    from hf_metatts.voice_validation import ClipValidation

    with pytest.raises(ValueError, match=r"ClipValidation.max_clips=.* must be a whole number >= 1, or None"):
        ClipValidation(max_clips=value)


def test_the_command_line_adapts_to_the_first_clips_of_a_large_folder(tmp_path, capsys):
    save_tiny_checkpoint(tmp_path / "base")
    folder = _many(tmp_path / "corpus", 52)
    out = tmp_path / "voice"
    base = ["adapt", "--model", str(tmp_path / "base"), "--clips", str(folder), "--steps", "1", "--no-progress"]
    assert main([*base, "--out", str(out)]) == 2
    assert "52 clips were given: a voice reads at most 50" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--first", "3", "--out", str(out)]) == 0
    assert MetaTTSVoice.from_pretrained(out).config.shots == 3
    assert main([*base, "--first", "0", "--out", str(tmp_path / "none")]) == 2
    assert "--first 0: give a number of clips >= 1" in capsys.readouterr().err


def test_model_adapt_refuses_a_path_that_is_no_clip_folder_with_what_to_give(tmp_path):
    from datasets import Dataset

    from hf_metatts.voice_validation import load_clips

    with pytest.raises(ClipFolderError, match=r"nowhere is not a folder: give a folder of audio files and their "
                                              r"transcripts, a list of \(audio, transcript\) pairs"):
        load_clips(str(tmp_path / "nowhere"), SR)  # a typo, not a list of characters
    Dataset.from_dict({"audio": ["a.wav"], "text": ["Hi."]}).save_to_disk(str(tmp_path / "saved"))
    before = contents(tmp_path / "saved")
    with pytest.raises(ClipFolderError, match=r"saved is a saved dataset, not a clip folder: pass "
                                              r"datasets.load_from_disk\("):
        load_clips(tmp_path / "saved", SR)
    assert contents(tmp_path / "saved") == before
