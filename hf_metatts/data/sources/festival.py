"""Debian ``festival``: one process renders a batch of sentences for one voice, with segment timings.

A Scheme script selects the voice, sets ``Duration_Stretch`` for the style's rate, and for each
sentence synthesises, saves the wave and the segments (``utt.save.segs``: end time and phone per line).
The script is written in the voice's text encoding (Italian and Finnish voices read Latin-1, Czech
ISO-8859-2, Catalan ISO-8859-15). festival voices have no portable pitch control, so only the rate of
a style applies.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile

import soundfile as sf

from ..errors import SourceUnavailableError
from .base import NEUTRAL, Style, Synthesis, VoiceSpec

logger = logging.getLogger(__name__)

__all__ = ["available", "installed_voices", "parse_segs", "synthesize_batch"]

_TIMEOUT_PER_SENTENCE_S = 10
_LIST_SCRIPT = "(print (voice.list))\n"


def _binary() -> str | None:
    return shutil.which("festival")


def available() -> tuple[bool, str]:
    """Whether festival is installed, and a message saying how to install it otherwise."""
    path = _binary()
    if not path:
        return False, "festival not found: run scripts/install_synthesizers.sh (Debian festival + festvox-*)"
    return True, f"festival at {path}"


def installed_voices() -> list[str]:
    """Voice names festival reports with ``(voice.list)`` (empty when festival is missing)."""
    path = _binary()
    if not path:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as fh:
        fh.write(_LIST_SCRIPT)
    try:
        out = subprocess.run([path, "-b", fh.name], capture_output=True, text=True, timeout=60).stdout
    finally:
        os.unlink(fh.name)
    match = re.search(r"\(([^()]*)\)", out)
    return match.group(1).split() if match else []


def parse_segs(text: str) -> list[dict]:
    """festival segment file (``#`` header, then ``end 100 phone`` lines) -> phone timings."""
    body = text.split("#", 1)[-1]
    timings, start = [], 0.0
    for line in body.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            end = float(parts[0])
        except ValueError:
            continue
        timings.append({"phone": parts[2], "start": start, "end": max(end, start)})
        start = max(end, start)
    return timings


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_batch(voice: VoiceSpec, texts: list[str], style: Style = NEUTRAL) -> list[Synthesis | None]:
    """Render sentences with one festival voice; sentences it cannot encode or render give ``None``."""
    binary = _binary()
    if not binary:
        raise SourceUnavailableError(available()[1])
    with tempfile.TemporaryDirectory(prefix="festival_") as tmp:
        lines = [f"(voice_{voice.voice})", f"(Parameter.set 'Duration_Stretch {1.0 / style.rate:.3f})"]
        encodable = []
        for i, text in enumerate(texts):
            try:
                text.encode(voice.text_encoding)
            except UnicodeEncodeError:
                encodable.append(False)
                continue
            encodable.append(True)
            wav, segs = os.path.join(tmp, f"{i}.wav"), os.path.join(tmp, f"{i}.segs")
            # unwind-protect: an error on one sentence skips it instead of ending the whole batch
            lines.append(
                f"(unwind-protect (begin (set! utt (Utterance Text {_scheme_string(text)}))(utt.synth utt)"
                f"(utt.save.wave utt \"{wav}\" 'riff)(utt.save.segs utt \"{segs}\")) nil)"
            )
        script = os.path.join(tmp, "batch.scm")
        with open(script, "w", encoding=voice.text_encoding, errors="strict") as fh:
            fh.write("\n".join(lines) + "\n")
        try:
            proc = subprocess.run(
                [binary, "-b", script], capture_output=True, timeout=_TIMEOUT_PER_SENTENCE_S * max(1, len(texts)) + 30
            )
        except subprocess.TimeoutExpired as exc:
            raise SourceUnavailableError(f"festival voice {voice.voice} timed out on a batch of {len(texts)}") from exc
        if proc.returncode != 0:
            logger.warning("festival %s exited with %d: %s", voice.voice, proc.returncode, proc.stderr[-300:])
        results: list[Synthesis | None] = []
        for i, ok in enumerate(encodable):
            wav, segs = os.path.join(tmp, f"{i}.wav"), os.path.join(tmp, f"{i}.segs")
            if not ok or not os.path.exists(wav):
                results.append(None)
                continue
            try:
                audio, sr = sf.read(wav, dtype="float32")
            except sf.LibsndfileError:
                results.append(None)
                continue
            timings = parse_segs(open(segs, encoding="latin-1").read()) if os.path.exists(segs) else []
            results.append(Synthesis(audio=audio, sampling_rate=int(sr), phone_timings=timings))
    return results
