"""Synthesis helpers shared by the command line and the examples."""

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def load_text_to_speech(model: str, device: str | None = None):
    """A transformers text-to-speech pipeline for a MetaTTS checkpoint folder or Hub id."""
    from transformers import pipeline

    import hf_metatts  # noqa: F401  (registers the Auto classes)

    return pipeline("text-to-speech", model=model, device=device)


def synthesize_to_file(model: str | None, text: str, out: str, language: str | None = None,
                       speaking_rate: float = 1.0, pitch_shift: float = 0.0, speaker_id: int | None = None,
                       voice: str | None = None) -> dict:
    """Synthesise ``text`` and write a 16-bit WAV to ``out``; returns a short summary.

    ``model`` is a checkpoint (or voice) folder or Hub id; ``voice`` a voice folder or Hub id. With a voice
    alone, the voice's own base is loaded; with both, the voice is applied to ``model`` (which must be its
    base: a mismatch raises ``VoiceMismatchError``).
    """
    import soundfile

    if model is None and voice is None:
        raise ValueError("Give a model (--model) or a voice (--voice) to synthesise with.")
    tts = load_text_to_speech(model if model is not None else voice)
    forward_params = {"speaking_rate": speaking_rate, "pitch_shift": pitch_shift}
    if voice is not None and model is not None:
        from .voice import load_voice

        forward_params["voice"] = load_voice(voice)
    if speaker_id is not None:
        forward_params["speaker_ids"] = speaker_id
    preprocess_params = {"language": language} if language else {}
    result = tts(text, forward_params=forward_params, preprocess_params=preprocess_params)
    audio = np.asarray(result["audio"], dtype=np.float32).reshape(-1)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(out, audio, result["sampling_rate"], subtype="PCM_16")
    summary = {"out": str(out), "seconds": round(len(audio) / result["sampling_rate"], 3),
               "sampling_rate": result["sampling_rate"]}
    logger.info("Wrote %s (%.2f s)", out, summary["seconds"])
    return summary
