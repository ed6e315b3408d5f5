"""The web demo in a real headless browser (Debian chromium driven by Playwright): upload clips, adapt, speak,
fetch the audio, and see the messages of bad input."""

import io
import os
import shutil

import numpy as np
import pytest
import soundfile

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                       reason="Debian chromium is not installed (apt-get install -y chromium)"),
]
pytest.importorskip("gradio", reason="the demo needs gradio (pip install gradio)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from test_demo_client import TEXTS, demo_url, free_port, speechlike, write_clips  # noqa: E402,F401

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, demo_url):  # noqa: F811 (the fixture imported above)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(demo_url)
    page.locator("#adapt").wait_for()
    yield page
    context.close()


def upload(page, paths, transcripts: str):
    """Replace the clips of the file widget with ``paths`` and type the transcripts."""
    names = page.locator("#clips td.filename")
    clear = page.locator("#clips button[aria-label=Clear]")
    if names.count() and clear.count():
        clear.first.click()
        sync_api.expect(names).to_have_count(0)
    page.locator("#clips input[type=file]").set_input_files([str(path) for path in paths])
    for path in paths:
        page.locator(f'#clips td.filename[aria-label="{os.path.basename(str(path))}"]').wait_for()
    sync_api.expect(names).to_have_count(len(paths))
    page.locator("#transcripts textarea").fill(transcripts)


def message(page, element_id: str, expected: str) -> str:
    """Wait until the Markdown ``element_id`` shows ``expected``; return its text."""
    locator = page.locator(f"#{element_id}")
    sync_api.expect(locator).to_contain_text(expected, timeout=TIMEOUT_MS)
    return locator.inner_text()


def speak(page, text: str) -> None:
    page.locator("#text textarea").fill(text)
    page.locator("#speak").click()


def fetch_audio(page) -> tuple[np.ndarray, int]:
    """Download the result through the audio component's download link; check it is a valid WAV."""
    link = page.locator("#result a[download]").first
    link.wait_for(state="attached")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok, response.status
    info = soundfile.info(io.BytesIO(response.body()))
    assert info.format == "WAV", info
    data, rate = soundfile.read(io.BytesIO(response.body()))
    return data, rate


def test_upload_adapt_speak_fetch_audio(page, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=150)
    upload(page, paths, transcripts)
    page.locator("#adapt").click()
    status = message(page, "adapt-status", "Adapted a voice from 3 clip(s)")
    assert "maml" in status
    message(page, "similarity", "Speaker similarity")
    speak(page, "Meta-learning makes adaptation fast.")
    message(page, "speak-message", "in your voice")
    data, rate = fetch_audio(page)
    assert rate == 16000 and 0.2 < len(data) / rate < 30 and np.abs(data).max() > 0
    page.locator("#download").click()
    message(page, "share-message", "zipped")
    page.locator("#push").click()
    message(page, "share-message", "token")


def test_bad_inputs_show_messages(page, tmp_path):
    paths, transcripts = write_clips(tmp_path / "clips", pitch=180, count=2)
    unreadable = tmp_path / "broken.wav"
    unreadable.write_bytes(b"not audio " * 50)
    long_clip = tmp_path / "long.wav"
    soundfile.write(long_clip, speechlike(31.0, 140), 16000)

    page.locator("#adapt").click()
    message(page, "adapt-status", "No clips yet")
    upload(page, [unreadable], "Some words.")
    page.locator("#adapt").click()
    message(page, "adapt-status", "could not decode")
    upload(page, [long_clip], "Some words spoken for a long time.")
    page.locator("#adapt").click()
    message(page, "adapt-status", "long.wav")
    upload(page, paths, TEXTS[0])
    page.locator("#adapt").click()
    message(page, "adapt-status", "has no transcript")

    speak(page, "")
    message(page, "speak-message", "Type some text")
    speak(page, "word " * 200)
    message(page, "speak-message", "at most 400")
    page.locator("#push").click()
    message(page, "share-message", "Adapt a voice first")

    speak(page, "The server still serves.")  # the page and the server carry on
    message(page, "speak-message", "base voice")
    data, rate = fetch_audio(page)
    assert len(data) / rate > 0.05
