"""espeak-ng through the library shipped by ``espeakng-loader`` (ctypes), with phoneme events as timings.

The library keeps global state, so one process holds one engine: ``EspeakEngine.get()`` initialises
it once per process, and ``synthesize_batch`` renders each batch in a freshly forked child so that the state
left by earlier batches never reaches its audio (the same clips in every build). Synthesis is synchronous; the
callback collects samples and phoneme events (``audio_position`` in ms) which become ``phone_timings``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading

import numpy as np

from ..errors import SourceUnavailableError
from .base import NEUTRAL, Style, Synthesis, VoiceSpec

logger = logging.getLogger(__name__)

__all__ = ["EspeakEngine", "available", "list_variants", "known_languages", "synthesize_batch", "voice_file"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_DEFAULT_RATE, _DEFAULT_PITCH, _DEFAULT_RANGE = 175, 50, 50
_MIN_RATE, _MAX_RATE = 80, 450
RANDOM_SEED = 1  # the seed of espeak-ng's noise before every sentence: a rebuild renders the same clips


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise SourceUnavailableError("espeakng-loader is not installed: pip install espeakng-loader") from exc
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def available() -> tuple[bool, str]:
    """Whether espeak-ng can be used, and a message saying why not."""
    try:
        lib, data = _paths()
    except SourceUnavailableError as exc:
        return False, str(exc)
    if not os.path.exists(lib):
        return False, f"espeak-ng library missing at {lib}"
    return True, f"espeak-ng from espeakng-loader ({lib})"


def list_variants() -> list[str]:
    """Names of the voice variants shipped with the espeak-ng data (``m3``, ``f2``, ``klatt``...)."""
    _, data = _paths()
    return sorted(os.listdir(os.path.join(data, "voices", "!v")))


@functools.lru_cache(maxsize=1)
def _language_files() -> dict[str, str]:
    """Language code -> voice file name, from the ``language`` lines of espeak-ng's ``lang`` files.

    A file name is its own code (``en-US`` -> ``en-us``); otherwise the first file that declares a code
    wins at its best priority (``en-gb`` -> ``en``).
    """
    _, data = _paths()
    by_code: dict[str, tuple[int, str]] = {}
    for folder, _, files in os.walk(os.path.join(data, "lang")):
        for name in sorted(files):
            by_code[name.lower()] = (-1, name)
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "language":
                        priority = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 5
                        code = parts[1].lower()
                        if code not in by_code or priority < by_code[code][0]:
                            by_code[code] = (priority, name)
    return {code: name for code, (_, name) in by_code.items()}


def known_languages() -> set[str]:
    """Every language code espeak-ng's data declares (lower case)."""
    return set(_language_files())


def voice_file(voice: str) -> str:
    """``en-gb+m3`` -> ``en+m3``: the name ``espeak_SetVoiceByName`` knows for a language code (+ variant)."""
    language, plus, variant = voice.partition("+")
    name = _language_files().get(language.lower(), language)
    return f"{name}{plus}{variant}"


@functools.cache
def _libc() -> ctypes.CDLL:
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c"))


class EspeakEngine:
    """A per-process espeak-ng engine that renders sentences with phone timings."""

    _instance: EspeakEngine | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        lib_path, data_path = _paths()
        self._lib = ctypes.cdll.LoadLibrary(lib_path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if rate <= 0:
            raise SourceUnavailableError(f"espeak_Initialize failed (returned {rate}); check {data_path}")
        self.sampling_rate = int(rate)
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: the C side holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _seed_random_generators(self) -> None:
        """espeak-ng's own generator (where the library exports ``espeak_ng_SetRandSeed``) and libc's ``rand``,
        which older code paths of the library use."""
        if hasattr(self._lib, "espeak_ng_SetRandSeed"):
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(RANDOM_SEED))
        _libc().srand(RANDOM_SEED)

    @classmethod
    def get(cls) -> EspeakEngine:
        """The engine of this process (created on first use)."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._events.append((int(event.audio_position), name))
            i += 1
        return 0

    def set_voice(self, voice: str, style: Style = NEUTRAL) -> None:
        """Select a voice (``lang`` or ``lang+variant``) and apply a style's rate, pitch and range."""
        if self._lib.espeak_SetVoiceByName(voice_file(voice).encode()) != 0:
            raise SourceUnavailableError(f"espeak-ng has no voice {voice!r}; see `espeak-ng --voices`")
        self._voice = voice
        rate = int(np.clip(round(_DEFAULT_RATE * style.rate), _MIN_RATE, _MAX_RATE))
        self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(np.clip(round(_DEFAULT_PITCH * style.pitch), 0, 100)), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, int(np.clip(round(_DEFAULT_RANGE * style.range), 0, 100)), 0)

    def synthesize(self, text: str) -> Synthesis:
        """Render one sentence with the current voice (its random generators seeded: the breathy variants draw
        noise from them)."""
        self._samples, self._events = [], []
        self._seed_random_generators()
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        status = self._lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise SourceUnavailableError(f"espeak_Synth failed with status {status} for voice {self._voice}")
        self._lib.espeak_Synchronize()
        pcm = np.concatenate(self._samples) if self._samples else np.zeros(0, dtype=np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        total = len(audio) / self.sampling_rate
        timings = []
        events = [(ms / 1000.0, name) for ms, name in self._events if name.strip()]
        for j, (start, name) in enumerate(events):
            end = events[j + 1][0] if j + 1 < len(events) else total
            timings.append({"phone": name, "start": float(start), "end": float(max(end, start))})
        return Synthesis(audio=audio, sampling_rate=self.sampling_rate, phone_timings=timings)


def _synthesize_here(voice: VoiceSpec, texts: list[str], style: Style) -> list[Synthesis]:
    engine = EspeakEngine.get()
    engine.set_voice(voice.voice, style)
    return [engine.synthesize(t) for t in texts]


def synthesize_batch(voice: VoiceSpec, texts: list[str], style: Style = NEUTRAL) -> list[Synthesis]:
    """Render sentences with one espeak-ng voice, in a child process forked for this batch.

    espeak-ng carries state from one synthesis to the next (its wave generator and its random generators), so a
    sentence comes out slightly differently depending on what the process rendered before: in a pool of workers,
    on which voices happened to share a worker. A child forked for each batch starts from the state of a process
    that has rendered nothing, so a voice's clips are the same in every build. Where ``fork`` is not available
    the batch is rendered in this process.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "fork" not in multiprocessing.get_all_start_methods():
        return _synthesize_here(voice, texts, style)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as child:
        return child.submit(_synthesize_here, voice, texts, style).result()
