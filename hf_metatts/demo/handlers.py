"""The demo's actions as plain functions: each takes the shared `ModelHost`, the session's `DemoSession` and
the widget values, and returns new widget values. Bad input never raises out of a handler: it becomes a
friendly message shown in the page (and logged), and the server keeps serving.
"""

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidTextError, MetaTTSError
from ..tokenization_metatts import DEFAULT_LANGUAGE, supported_languages
from ..voice_adapt import PERSON_EXTRA_PARAMETERS
from ..voice_errors import ClipError, ExtraParametersError
from .adapting import adapt_with_curve
from .session import DemoSession, ModelHost

logger = logging.getLogger(__name__)

MAX_CLIPS = 10
#: Larger uploads are refused before decoding (30 s of 48 kHz stereo float WAV is about 11.5 MB).
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TEXT_CHARS = 400
MAX_STEPS = 50
METHODS = ("maml", "metasgd", "meta_lstm", "zero_shot", "finetune")
OK, PROBLEM = "✅ ", "⚠️ "


class DemoInputError(ValueError):
    """Input the demo cannot use; the message is shown to the user as is."""


# ----------------------------------------------------------------------------------------------
def _paths(files) -> list[str]:
    """File widget values (paths, dicts or objects with ``.name``/``.path``) -> paths."""
    paths = []
    for item in files or []:
        if isinstance(item, dict):
            item = item.get("path") or item.get("name")
        item = getattr(item, "path", None) or getattr(item, "name", None) or item
        paths.append(os.fspath(item))
    return paths


def _lines(transcripts: str | None) -> list[str]:
    return [line.strip() for line in (transcripts or "").splitlines()]


def collect_clips(files, transcripts: str | None) -> list[tuple[str, str]]:
    """Pair the uploaded files with the transcript lines (one line per clip, same order).

    Raises:
        DemoInputError: no clips, too many, a file too large, or a clip without a transcript.
    """
    paths = _paths(files)
    if not paths:
        raise DemoInputError("No clips yet: record or upload 1 to 10 clips of the voice, each with its transcript "
                             "(or pick a sample speaker).")
    if len(paths) > MAX_CLIPS:
        raise DemoInputError(f"{len(paths)} clips given: use at most {MAX_CLIPS}.")
    lines = _lines(transcripts)
    while lines and not lines[-1]:
        lines.pop()
    for index, path in enumerate(paths):
        name = os.path.basename(path)
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        if size > MAX_FILE_BYTES:
            raise DemoInputError(f"Clip {index + 1} ({name}) is too long ({size / 2**20:.1f} MB): give clips of at "
                                 "most 30 seconds.")
        if index >= len(lines) or not lines[index]:
            raise DemoInputError(f"Clip {index + 1} ({name}) has no transcript: write the words spoken in it on line "
                                 f"{index + 1} of the transcripts.")
    if len([line for line in lines if line]) > len(paths):
        raise DemoInputError(f"There are more transcript lines ({len(lines)}) than clips ({len(paths)}): one line "
                             "per clip, in the order of the clips.")
    return list(zip(paths, lines))


def _clip_message(error: Exception) -> str:
    """A clip error's message without the temporary folder of the upload."""
    message = str(error)
    clip = getattr(error, "clip", None)
    if clip and os.sep in clip:
        message = message.replace(clip, os.path.basename(clip))
    return message


def check_language(language: str | None) -> str:
    """The espeak-ng code of the transcripts and texts (empty: English). Raises `DemoInputError` for an unknown
    one."""
    language = (language or "").strip() or DEFAULT_LANGUAGE
    if language not in supported_languages():
        raise DemoInputError(f"Unknown language code {language!r}: pick one of the list (espeak-ng codes such as "
                             "en-us, de, pl).")
    return language


# ----------------------------------------------------------------------------------------------
def adapt(host: ModelHost, session: DemoSession | None, files, transcripts: str | None, method: str, steps,
          on_step: Callable[[int, int, float], None] | None = None, match_prosody: bool = False,
          language: str | None = None, match_rhythm: bool = False, decoder_layers: bool = False):
    """Adapt a voice for this session -> ``(session, status, curve rows, similarity text)``; ``match_prosody``: the
    voice's rate, pitch level and pitch range refitted to the clips after the steps (clips in a speaking style);
    ``language``: the transcripts' espeak-ng code (default English); ``match_rhythm``: the voice's token durations
    refitted to the clips (a language the model never trained on); ``decoder_layers``: the steps adapt the decoder's
    layers too, at the measured rate (`hf_metatts.voice_adapt.PERSON_EXTRA_PARAMETERS`): a closer voice.

    ``curve rows`` is ``{"step": [...], "loss": [...]}`` (None when nothing was adapted).
    """
    session = session or DemoSession()
    try:
        if method not in METHODS:
            raise DemoInputError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
        steps = int(steps) if steps not in (None, "") else None
        if steps is not None and not 0 <= steps <= MAX_STEPS:
            raise DemoInputError(f"Steps must be between 0 and {MAX_STEPS}.")
        language = check_language(language)
        clips = collect_clips(files, transcripts)
        with host.lock:
            voice, losses = adapt_with_curve(host.model, clips, method=method, steps=steps, on_step=on_step,
                                             processor=host.processor, match_prosody=bool(match_prosody),
                                             language=language, match_rhythm=bool(match_rhythm),
                                             extra_parameters=list(PERSON_EXTRA_PARAMETERS) if decoder_layers
                                             else None)
    except (DemoInputError, ClipError, InvalidTextError) as error:
        logger.info("Adaptation refused: %s", error)
        return session, PROBLEM + _clip_message(error), None, ""
    except ExtraParametersError as error:  # model.adapt's own check (a learned rule, no steps)
        logger.info("Adaptation refused: %s", error)
        return session, PROBLEM + f"The decoder's layers cannot be adapted here: {error}", None, ""
    except MetaTTSError as error:  # e.g. a learned method on a checkpoint without its meta-learner
        logger.warning("Adaptation failed: %s", error)
        return session, PROBLEM + f"Could not adapt with {method}: {error}", None, ""
    new = DemoSession(voice=voice, losses=losses, method=voice.config.method,
                      clip_names=[os.path.basename(path) for path, _ in clips])
    similarity = similarity_text(host, voice, clips, language)
    decoder = "; the decoder's layers adapted too" if decoder_layers else ""
    status = (OK + f"Adapted a voice from {len(clips)} clip(s) with {voice.config.method}, {voice.config.steps} "
              f"step(s){f', final loss {losses[-1]:.3f}' if losses else ''}{decoder}{_matched_text(voice)}. Type some "
              "text and press Speak.")
    curve = {"step": list(range(1, len(losses) + 1)), "loss": losses} if losses else None
    return new, status, curve, similarity


def _matched_text(voice) -> str:
    """What rhythm and prosody matching did, for the status line ("" when neither was asked for)."""
    text = ""
    rhythm = voice.config.rhythm_match
    if rhythm:
        text += (f"; rhythm matched to the clips ({rhythm['tokens']} tokens, duration error "
                 f"{rhythm['support_error_before']:.3f} -> {rhythm['support_error_after']:.3f})")
    match = voice.config.prosody_match
    if match:
        text += (f"; rate and pitch matched to the clips (durations x{match['duration_factor']:.2f}, pitch "
                 f"{match['pitch_shift_semitones']:+.1f} semitones, pitch range x{match['pitch_range_factor']:.2f})")
    return text


def similarity_text(host: ModelHost, voice, clips: Sequence[tuple[str, str]], language: str | None = None) -> str:
    """Mean speaker similarity of the clips' transcripts (in ``language``) spoken in the voice (and in the base) to
    the clips."""
    from ..evaluation.speaker import speaker_similarity
    from ..voice_validation import load_clips

    try:
        support = load_clips(clips, host.sampling_rate, language=language)
        references = [clip.audio for clip in support]
        voiced = [host.synthesize(clip.text, voice=voice, language=clip.language) for clip in support]
        base = [host.synthesize(clip.text, language=clip.language) for clip in support]
        rate = host.sampling_rate
        with_voice = float(np.mean(speaker_similarity(references, voiced, sampling_rate=rate)))
        without = float(np.mean(speaker_similarity(references, base, sampling_rate=rate)))
    except (ImportError, ValueError, RuntimeError, OSError) as error:
        logger.warning("Speaker similarity unavailable: %s", error)
        return f"Speaker similarity unavailable ({error})."
    return (f"Speaker similarity to your clips (cosine of speaker embeddings, 1 = same speaker): "
            f"**{with_voice:.3f}** with the voice, {without:.3f} with the base model.")


# ----------------------------------------------------------------------------------------------
def check_text(text: str | None) -> str:
    """The text to speak, stripped. Raises `DemoInputError` when empty or over `MAX_TEXT_CHARS`."""
    text = (text or "").strip()
    if not text:
        raise DemoInputError("Type some text to speak first.")
    if len(text) > MAX_TEXT_CHARS:
        raise DemoInputError(f"The text has {len(text)} characters: the demo speaks at most {MAX_TEXT_CHARS}. "
                             "Shorten it.")
    return text


def speak(host: ModelHost, session: DemoSession | None, text: str | None, language: str | None = None):
    """Synthesise ``text`` (in ``language``, an espeak-ng code; default English) in the session's voice (the base
    voice before adapting) -> ``(audio, message)``."""
    try:
        text = check_text(text)
        language = check_language(language)
        voice = session.voice if session is not None else None
        waveform = host.synthesize(text, voice=voice, language=language)
    except (DemoInputError, InvalidTextError) as error:
        logger.info("Synthesis refused: %s", error)
        return None, PROBLEM + str(error)
    who = "your voice" if voice is not None else "the base voice (adapt a voice first to hear yours)"
    message = OK + f"{len(waveform) / host.sampling_rate:.2f} s in {who}."
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype(np.int16)
    return (host.sampling_rate, pcm), message


# ----------------------------------------------------------------------------------------------
def download(session: DemoSession | None):
    """Zip the session's voice folder -> ``(zip path or None, message)``."""
    if session is None or not session.has_voice:
        return None, PROBLEM + "Adapt a voice first: there is nothing to download yet."
    folder = tempfile.mkdtemp(prefix="metatts-voice-")
    voice_dir = os.path.join(folder, "voice")
    session.voice.save_pretrained(voice_dir)
    archive = os.path.join(folder, "metatts-voice.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for name in sorted(os.listdir(voice_dir)):
            handle.write(os.path.join(voice_dir, name), arcname=os.path.join("metatts-voice", name))
    shutil.rmtree(voice_dir, ignore_errors=True)
    return archive, OK + "Your voice folder, zipped: unzip it and load it with MetaTTSVoice.from_pretrained(folder)."


def push(session: DemoSession | None, repo_id: str | None, token: str | None) -> str:
    """Push the session's voice to the Hub as ``repo_id`` with ``token`` -> message."""
    import huggingface_hub.constants

    repo_id, token = (repo_id or "").strip(), (token or "").strip()
    if session is None or not session.has_voice:
        return PROBLEM + "Adapt a voice first: there is nothing to push yet."
    if not token:
        return PROBLEM + "Give a Hugging Face access token with write permission to push (or download the zip)."
    if not repo_id:
        return PROBLEM + "Give a repository name for the voice, such as your-name/my-voice."
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return PROBLEM + "This server is offline (HF_HUB_OFFLINE is set): it cannot reach the Hub. Download the zip."
    try:
        info = session.voice.push_to_hub(repo_id, token=token)
    except (OSError, ValueError) as error:  # network, auth and repo errors of huggingface_hub are among these
        logger.warning("Push to %s failed: %s", repo_id, error)
        return PROBLEM + f"Could not push to the Hub ({type(error).__name__}: {error}). No network? Download the zip."
    return OK + f"Pushed to https://huggingface.co/{repo_id} ({getattr(info, 'commit_url', '') or 'done'})."


# ----------------------------------------------------------------------------------------------
def add_recording(files, transcripts: str | None, recording, transcript: str | None):
    """Append a microphone recording (a file path) and its transcript -> ``(files, transcripts, message)``."""
    paths = _paths(files)
    if not recording:
        return paths, transcripts, PROBLEM + "Record a clip first."
    transcript = (transcript or "").strip()
    if not transcript:
        return paths, transcripts, PROBLEM + "Write the words of the recording before adding it."
    if len(paths) >= MAX_CLIPS:
        return paths, transcripts, PROBLEM + f"There are already {MAX_CLIPS} clips."
    lines = [line for line in _lines(transcripts)[:len(paths)]]
    lines += [""] * (len(paths) - len(lines)) + [transcript]
    path = recording if isinstance(recording, str) else _paths([recording])[0]
    return paths + [path], "\n".join(lines), OK + f"Added the recording as clip {len(paths) + 1}."
