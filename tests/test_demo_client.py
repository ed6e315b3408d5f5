"""The web demo through gradio_client (no browser): adapt, speak, download, bad input, concurrent sessions."""

import os
import socket
import threading
import zipfile

import numpy as np
import pytest
import soundfile

pytest.importorskip("gradio", reason="the demo needs gradio (pip install gradio gradio_client)")
gradio_client = pytest.importorskip("gradio_client", reason="pip install gradio_client")

SR = 16000
TEXTS = ["Hello there, this is a test.", "A second sentence for the voice.", "Meta learning adapts fast."]


def speechlike(seconds: float, pitch: float, seed: int = 0) -> np.ndarray:
    """An amplitude-modulated harmonic tone with a little noise (float32, peak < 0.6)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
    return (0.2 * wave * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_clips(folder, pitch: float, count: int = 3) -> tuple[list[str], str]:
    """``count`` WAV clips at ``pitch`` Hz in ``folder`` -> (paths, transcripts text)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index in range(count):
        path = os.path.join(folder, f"clip{index + 1}.wav")
        soundfile.write(path, speechlike(1.6 + 0.2 * index, pitch + 7 * index, seed=index), SR)
        paths.append(path)
    return paths, "\n".join(TEXTS[:count])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """The demo on a free 127.0.0.1 port, serving a tiny random checkpoint, in this process."""
    import torch
    from tiny_models import save_tiny_checkpoint

    from hf_metatts.demo import build_demo
    from hf_metatts.demo.session import ModelHost

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("demo_model")
    save_tiny_checkpoint(folder)
    demo = build_demo(ModelHost.load(str(folder)))
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, run_history=False)
    yield url
    demo.close()
    torch.set_num_threads(threads)


@pytest.fixture
def client(demo_url, tmp_path):
    return gradio_client.Client(demo_url, verbose=False, download_files=str(tmp_path / "downloads"))


def upload(paths):
    return [gradio_client.handle_file(path) for path in paths]


def adapt(client, paths, transcripts, method="maml", steps=3):
    """Adapt a voice in ``client``'s session -> (status, curve, similarity)."""
    return client.predict(upload(paths), transcripts, method, steps, api_name="/adapt")


def check_wav(path, min_seconds=0.2, max_seconds=30.0) -> np.ndarray:
    """The file is a valid WAV of plausible length; returns its samples."""
    info = soundfile.info(path)
    assert info.format == "WAV", info
    assert min_seconds < info.duration < max_seconds, info.duration
    data, _ = soundfile.read(path)
    assert np.isfinite(data).all() and np.abs(data).max() > 0
    return data


def test_adapt_speak_download(client, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    status, curve, similarity = adapt(client, paths, transcripts, steps=3)
    assert status.startswith("✅") and "3 clip(s)" in status, status
    assert "matched" not in status  # the checkbox is off unless ticked
    steps, losses = zip(*curve["data"])
    assert steps == (1, 2, 3) and all(np.isfinite(losses)), curve
    assert "Speaker similarity" in similarity
    audio, message = client.predict("Meta-learning makes adaptation fast.", api_name="/speak")
    assert "your voice" in message, message
    check_wav(audio)
    archive, message = client.predict(api_name="/download")
    assert message.startswith("✅"), message
    with zipfile.ZipFile(archive) as handle:
        names = {os.path.basename(name) for name in handle.namelist()}
        handle.extractall(tmp_path / "voice")
    assert {"voice.safetensors", "voice_config.json", "config.json"} <= names
    from hf_metatts import MetaTTSVoice

    voice = MetaTTSVoice.from_pretrained(tmp_path / "voice" / "metatts-voice")
    assert voice.config.shots == 3 and voice.config.steps == 3


def test_bad_inputs_show_messages_and_server_keeps_serving(client, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=170, count=2)
    unreadable = tmp_path / "broken.wav"
    unreadable.write_bytes(b"this is not audio at all" * 10)
    long_clip = tmp_path / "long.wav"
    soundfile.write(long_clip, speechlike(31.0, 140), SR)

    status, _, _ = client.predict([], "", "maml", 3, api_name="/adapt")
    assert "No clips yet" in status
    status, _, _ = adapt(client, [str(unreadable)], "Some words.")
    assert "broken.wav" in status and "could not decode" in status, status
    status, _, _ = adapt(client, [str(long_clip)], "Some words spoken for a long time.")
    assert "long.wav" in status and "30" in status, status
    status, _, _ = adapt(client, paths, TEXTS[0])
    assert "Clip 2 (clip2.wav) has no transcript" in status, status

    _, message = client.predict("   ", api_name="/speak")
    assert "Type some text" in message
    _, message = client.predict("word " * 200, api_name="/speak")
    assert "at most 400" in message
    message = client.predict("me/voice", "", api_name="/push")
    assert "Adapt a voice first" in message

    status, _, _ = adapt(client, paths, transcripts)  # still serving, and now it works
    assert status.startswith("✅"), status
    message = client.predict("me/voice", "", api_name="/push")
    assert "token" in message and message.startswith("⚠️"), message
    message = client.predict("me/voice", "hf_not_a_real_token", api_name="/push")
    assert "offline" in message or "No network" in message, message
    audio, message = client.predict("Still here.", api_name="/speak")
    check_wav(audio, min_seconds=0.05)


def test_four_concurrent_sessions_get_their_own_voice(demo_url, tmp_path):
    text = "The same words in four voices."
    clients = [gradio_client.Client(demo_url, verbose=False, download_files=str(tmp_path / f"d{i}")) for i in range(4)]
    clip_sets = [write_clips(tmp_path / f"voice{i}", pitch=110 + 45 * i) for i in range(4)]

    status, _, _ = adapt(clients[0], *clip_sets[0], steps=4)
    assert status.startswith("✅"), status
    before = soundfile.read(clients[0].predict(text, api_name="/speak")[0])[0]

    results, errors = {}, []

    def run(index):
        try:
            status, _, _ = adapt(clients[index], *clip_sets[index], steps=4)
            assert status.startswith("✅"), status
            results[index] = soundfile.read(clients[index].predict(text, api_name="/speak")[0])[0]
        except Exception as error:  # reported below with the thread's index
            errors.append((index, error))

    workers = [threading.Thread(target=run, args=(index,)) for index in range(1, 4)]
    workers.append(threading.Thread(target=lambda: results.__setitem__(
        0, soundfile.read(clients[0].predict(text, api_name="/speak")[0])[0])))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    np.testing.assert_array_equal(results[0], before)  # session 0's voice untouched by the others
    after = soundfile.read(clients[0].predict(text, api_name="/speak")[0])[0]
    np.testing.assert_array_equal(after, before)
    for first in range(4):
        for second in range(first + 1, 4):
            same_length = len(results[first]) == len(results[second])
            assert not same_length or not np.array_equal(results[first], results[second]), (first, second)



def run_demo_command(argv) -> int:
    import argparse

    from hf_metatts.demo.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", *argv])
    return args.func(args)


def test_demo_command_without_a_model_says_what_to_do(monkeypatch, capsys):
    import hf_metatts

    monkeypatch.delenv("HF_METATTS_MODEL", raising=False)
    monkeypatch.delattr(hf_metatts, "DEFAULT_CHECKPOINT", raising=False)
    assert run_demo_command([]) == 2
    assert "--model" in capsys.readouterr().err


def test_default_model_prefers_the_environment_then_the_bundled_checkpoint(monkeypatch):
    import hf_metatts
    from hf_metatts.demo import default_model

    monkeypatch.setattr(hf_metatts, "DEFAULT_CHECKPOINT", "bundled/checkpoint", raising=False)
    monkeypatch.delenv("HF_METATTS_MODEL", raising=False)
    assert default_model() == "bundled/checkpoint"
    monkeypatch.setenv("HF_METATTS_MODEL", "my/model")
    assert default_model() == "my/model"


def test_sample_speakers_come_from_the_corpus_test_split(tmp_path):
    import datasets

    from hf_metatts.data import encode_audio
    from hf_metatts.data.schema import COLUMNS, rows_to_dataset
    from hf_metatts.demo.samples import sample_clips, sample_speakers

    def rows(speaker, count):
        return [{**{name: "" for name in COLUMNS}, "id": f"{speaker}-{i}", "speaker_id": speaker, "duration": 1.0,
                 "phone_timings": [], "text": f"Sentence {i}  of {speaker}.",
                 "audio": encode_audio(speechlike(1.0, 150), 16000)} for i in range(count)]

    corpus = tmp_path / "corpus"
    datasets.DatasetDict({"train": rows_to_dataset(rows("trainee", 2)),
                          "test": rows_to_dataset(rows("flite:awb", 3) + rows("flite:slt", 1))}).save_to_disk(corpus)
    assert sample_speakers(str(corpus)) == ["flite:awb", "flite:slt"]
    assert sample_speakers(None) == [] and sample_speakers(str(tmp_path / "missing")) == []
    paths, texts = sample_clips(str(corpus), "flite:awb")
    assert len(paths) == 3 and texts[0] == "Sentence 0 of flite:awb."
    assert all(soundfile.info(path).format == "WAV" for path in paths)
    with pytest.raises(ValueError, match="no test speaker"):
        sample_clips(str(corpus), "trainee")


def test_adapt_can_match_the_clips_prosody(client, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    status, _, _ = client.predict(upload(paths), transcripts, "maml", 2, True, api_name="/adapt")
    assert status.startswith("✅") and "rate and pitch matched to the clips (durations x" in status, status
    audio, _ = client.predict("Spoken in the matched voice.", api_name="/speak")
    check_wav(audio)


def test_clips_and_text_in_another_language_with_the_rhythm_matched(client, tmp_path):
    paths, _ = write_clips(tmp_path / "clips", pitch=150)
    polish = "\n".join(["Ala ma kota i psa.", "Dom stoi na wysokiej górze.", "Woda płynie bardzo szybko."])
    status, _, similarity = client.predict(upload(paths), polish, "maml", 2, False, "pl", True, api_name="/adapt")
    assert status.startswith("✅") and "rhythm matched to the clips (" in status, status
    assert "rate and pitch matched" not in status and "Speaker similarity" in similarity
    audio, message = client.predict("Dzień dobry, jak się masz?", "pl", api_name="/speak")
    assert message.startswith("✅") and "in your voice" in message
    check_wav(audio)


def test_adapt_can_take_the_decoder_layers_too(client, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    status, _, _ = client.predict(upload(paths), transcripts, "maml", 2, False, "en-us", False, True, api_name="/adapt")
    assert status.startswith("✅") and "2 step(s)" in status and "the decoder's layers adapted too" in status, status
    audio, _ = client.predict("Spoken with the decoder adapted.", api_name="/speak")
    check_wav(audio)


def test_the_decoder_layers_are_refused_where_they_cannot_be_adapted_and_the_voice_is_kept(tiny_checkpoint,
                                                                                          tmp_path):
    from hf_metatts.demo import handlers
    from hf_metatts.demo.app import DEFAULT_STEPS, steps_for_decoder_layers
    from hf_metatts.demo.session import DemoSession, ModelHost
    from hf_metatts.voice_adapt import EXTRA_PARAMETERS_STEPS

    assert (steps_for_decoder_layers(True), steps_for_decoder_layers(False)) == (EXTRA_PARAMETERS_STEPS, DEFAULT_STEPS)
    host = ModelHost.load(str(tiny_checkpoint))
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    session, status, _, _ = handlers.adapt(host, DemoSession(), paths, transcripts, "maml", 2, decoder_layers=True)
    assert status.startswith("✅") and "the decoder's layers adapted too" in status
    adapted = session.voice.adapted_parameters
    assert any(name.startswith("decoder.layers.") and name.endswith(".weight") for name in adapted)
    for method, steps, expected in (("meta_lstm", 2, "cannot be adapted with method='meta_lstm'"),
                                    ("maml", 0, "needs steps > 0")):
        kept, status, curve, similarity = handlers.adapt(host, session, paths, transcripts, method, steps,
                                                         decoder_layers=True)
        assert kept is session and curve is None and similarity == ""
        assert status.startswith("⚠️") and expected in status, status
    assert session.voice.adapted_parameters is adapted


def test_an_unknown_language_is_refused_and_the_session_keeps_its_voice(tiny_checkpoint, tmp_path):
    """The page's list lets only known codes through (Gradio refuses others before the handler); the handlers refuse
    them too, for any other caller."""
    from hf_metatts.demo import handlers
    from hf_metatts.demo.session import DemoSession, ModelHost

    host = ModelHost.load(str(tiny_checkpoint))
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    session, status, _, _ = handlers.adapt(host, DemoSession(), paths, transcripts, "maml", 1)
    assert status.startswith("✅") and session.has_voice
    kept, status, curve, similarity = handlers.adapt(host, session, paths, transcripts, "maml", 1,
                                                     language="xx-nowhere")
    assert kept is session and curve is None and similarity == ""
    assert status.startswith("⚠️") and "Unknown language code 'xx-nowhere'" in status
    audio, message = handlers.speak(host, session, "Still my voice.", "xx-nowhere")
    assert audio is None and "Unknown language code" in message
    audio, message = handlers.speak(host, session, "Still my voice.", "")
    assert audio is not None and "in your voice" in message, "an empty language is English"
