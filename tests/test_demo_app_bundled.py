"""``python app.py`` of the Spaces folder serves the bundled checkpoint, in a fresh process, offline."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("gradio", reason="the demo needs gradio (pip install gradio gradio_client)")
gradio_client = pytest.importorskip("gradio_client", reason="pip install gradio_client")

APP = Path(__file__).resolve().parent.parent / "examples" / "spaces" / "hf-metatts-demo" / "app.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}: {process.stdout.read()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"app.py did not listen on port {port} within {timeout} s")


@pytest.mark.slow
def test_python_app_py_serves_the_bundled_checkpoint(tmp_path):
    import hf_metatts

    assert os.path.isfile(os.path.join(hf_metatts.DEFAULT_CHECKPOINT, "model.safetensors"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_METATTS_MODEL", "HF_METATTS_CORPUS")}
    env.update(GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, str(APP)], cwd=str(APP.parent), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(port, process)
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False,
                                      download_files=str(tmp_path / "downloads"))
        audio_path, message = client.predict("The bundled voice speaks.", api_name="/speak")
        info = soundfile.info(audio_path)
        assert info.format == "WAV" and info.samplerate == 16000
        assert 0.5 < info.duration < 10.0, info.duration
        samples, _ = soundfile.read(audio_path)
        assert np.isfinite(samples).all() and np.abs(samples).max() > 0.01
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
