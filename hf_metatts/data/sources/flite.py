"""Debian ``flite``: one process per sentence, 16 kHz, phone end times from ``-psdur``.

Styles map to flite features: ``duration_stretch`` (1 / rate), ``int_f0_target_mean`` (pitch) and
``int_f0_target_stddev`` (range), relative to each voice's defaults.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

import soundfile as sf

from ..errors import SourceUnavailableError
from .base import NEUTRAL, Style, Synthesis, VoiceSpec

logger = logging.getLogger(__name__)

__all__ = ["available", "installed_voices", "parse_psdur", "synthesize_batch"]

_TIMEOUT_S = 60
# Default F0 mean / stddev (Hz) of the Debian flite voices, used to scale pitch and range.
_F0_DEFAULTS = {"kal16": (105.0, 14.0), "kal": (105.0, 14.0), "awb": (110.0, 15.0), "rms": (95.0, 15.0),
                "slt": (160.0, 20.0)}


def _binary() -> str | None:
    return shutil.which("flite")


def available() -> tuple[bool, str]:
    """Whether flite is installed, and a message saying how to install it otherwise."""
    path = _binary()
    if not path:
        return False, "flite not found: run scripts/install_synthesizers.sh (Debian package 'flite')"
    return True, f"flite at {path}"


def installed_voices() -> list[str]:
    """Voice names flite reports with ``-lv`` (empty when flite is missing)."""
    path = _binary()
    if not path:
        return []
    out = subprocess.run([path, "-lv"], capture_output=True, text=True, timeout=_TIMEOUT_S).stdout
    return out.split(":", 1)[-1].split()


def parse_psdur(output: str) -> list[dict]:
    """``pau:0.164 hh:0.255 ...`` (phone:end-time) -> ``[{"phone", "start", "end"}]``."""
    timings, start = [], 0.0
    for token in output.split():
        phone, sep, end = token.rpartition(":")
        if not sep:
            continue
        try:
            end_s = float(end)
        except ValueError:
            continue
        timings.append({"phone": phone, "start": start, "end": max(end_s, start)})
        start = max(end_s, start)
    return timings


def _style_args(voice: str, style: Style) -> list[str]:
    args = []
    if style.rate != 1.0:
        args += ["--setf", f"duration_stretch={1.0 / style.rate:.3f}"]
    mean, std = _F0_DEFAULTS.get(voice, (110.0, 15.0))
    if style.pitch != 1.0:
        args += ["--setf", f"int_f0_target_mean={mean * style.pitch:.1f}"]
    if style.range != 1.0:
        args += ["--setf", f"int_f0_target_stddev={std * style.range:.1f}"]
    return args


def synthesize_batch(voice: VoiceSpec, texts: list[str], style: Style = NEUTRAL) -> list[Synthesis | None]:
    """Render sentences with one flite voice; a sentence flite fails on gives ``None`` (counted upstream)."""
    binary = _binary()
    if not binary:
        raise SourceUnavailableError(available()[1])
    results: list[Synthesis | None] = []
    with tempfile.TemporaryDirectory(prefix="flite_") as tmp:
        wav = os.path.join(tmp, "out.wav")
        for text in texts:
            cmd = [binary, "-voice", voice.voice, *_style_args(voice.voice, style), "-psdur", "-t", text, "-o", wav]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
                audio, sr = sf.read(wav, dtype="float32")
            except (subprocess.TimeoutExpired, OSError, sf.LibsndfileError) as exc:
                logger.warning("flite %s failed on %r: %s", voice.voice, text[:40], exc)
                results.append(None)
                continue
            finally:
                if os.path.exists(wav):
                    os.remove(wav)
            results.append(Synthesis(audio=audio, sampling_rate=int(sr), phone_timings=parse_psdur(proc.stdout)))
    return results
