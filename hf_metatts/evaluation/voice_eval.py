"""``evaluate_voice(model, voice, references)``: synthesise a target's sentences with a voice and measure them.

The voice says the texts of the target's real ``references``; each synthesised utterance is compared with
the real one of the same text:

- ``similarity``: mean speaker-embedding cosine (resemblyzer) of the pairs (higher is better);
- ``mcd``: mean mel-cepstral distortion of the pairs in dB (lower is better);
- ``wer``: ASR word error rate of the synthesised speech, and ``reference_wer`` of the real recordings, so
  ``wer_delta = wer - reference_wer`` is relative to the target's own recordings;
- ``eer``: speaker-verification equal error rate of the synthesised utterances claiming the target, against
  the real utterances of every speaker in ``references`` (needs references of at least 2 speakers).

References at another sample rate than the model's are resampled by the metrics; empty or silent audio raises
`EmptyAudioError` before anything is synthesised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .audio import MismatchedInputsError, load_audio
from .speaker import InsufficientSpeakersError, UnknownSpeakerError

logger = logging.getLogger(__name__)

#: Metrics ``evaluate_voice`` can compute.
VOICE_METRICS = ("similarity", "mcd", "wer", "eer")


def _rows(references: Any, audio_column: str, text_column: str, speaker_column: str) -> list[dict]:
    """References as ``[{"audio", "text", "speaker", "language"}]`` from a `datasets.Dataset`, dicts, (audio, text)
    pairs or (audio, text, language) triples."""
    rows = []
    for index, item in enumerate(references):
        if isinstance(item, Mapping):
            if audio_column not in item or text_column not in item:
                raise MismatchedInputsError(
                    f"references[{index}] lacks {audio_column!r} or {text_column!r}: give each reference its audio "
                    "and the text it says.")
            rows.append({"audio": item[audio_column], "text": item[text_column],
                         "speaker": item.get(speaker_column), "language": item.get("language")})
        elif isinstance(item, Sequence) and len(item) in (2, 3):
            rows.append({"audio": item[0], "text": item[1], "speaker": None,
                         "language": item[2] if len(item) == 3 else None})
        else:
            raise MismatchedInputsError(
                f"references[{index}] is a {type(item).__name__}: give dicts with audio and text, "
                "(audio, text) pairs or (audio, text, language) triples.")
    if not rows:
        raise MismatchedInputsError("No references given: pass at least one real utterance of the target and its text.")
    return rows


def synthesize_texts(model, tokenizer, texts: Iterable[str], voice=None,
                     languages: Iterable[str | None] | None = None, pitch_shift: float = 0.0) -> list[np.ndarray]:
    """Synthesise each text with ``voice`` (a `MetaTTSVoice`, ``{name: tensor}`` or None for the base voice),
    ``pitch_shift`` semitones above the voice's own pitch.

    Returns one float32 waveform per text at ``model.config.sampling_rate``.
    """
    texts = list(texts)
    languages = list(languages) if languages is not None else [None] * len(texts)
    waves = []
    for text, language in zip(texts, languages):
        kwargs = {"language": language} if language else {}
        inputs = tokenizer(text, return_tensors="pt", **kwargs)
        with torch.no_grad():
            output = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), voice=voice,
                           pitch_shift=pitch_shift)
        waves.append(output.waveform[0].detach().cpu().float().numpy())
    return waves


def evaluate_voice(model, voice, references: Any, target: str | None = None, processor=None,
                   sampling_rate: int | None = None, metrics: Sequence[str] | None = None,
                   audio_column: str = "audio", text_column: str = "text",
                   speaker_column: str = "speaker_id") -> dict:
    """Measure a voice on its target's real utterances.

    Args:
        model: the voice's base `MetaTTSForTextToSpeech`.
        voice: a `MetaTTSVoice`, an adapted ``{name: tensor}`` or None (the base voice).
        references: real utterances with their texts: a `datasets.Dataset` or list of dicts (``audio_column``,
            ``text_column``, optional ``speaker_column``, ``language``) or ``(audio, text)`` pairs. Audio in any
            form the metrics accept; ``sampling_rate`` for bare arrays.
        target: the voice's speaker among ``speaker_column`` values; only its utterances are synthesised, the
            others are impostors for the EER. Default: the only speaker, or every reference when unlabelled.
        processor: default: the model's `MetaTTSProcessor`.
        metrics: subset of :data:`VOICE_METRICS`; default: all (EER only when references span several speakers).

    Returns:
        ``{"similarity", "mcd", "wer", "reference_wer", "wer_delta", "eer", "num_utterances", "num_speakers",
        "per_utterance": [...]}``; a metric not asked for is absent.

    Raises:
        EmptyAudioError: a reference is empty or silent. InsufficientSpeakersError: ``"eer"`` asked for
        explicitly with references of one speaker. UnknownSpeakerError: ``target`` has no reference.
    """
    from ..voice_adapt import processor_for
    from .asr import asr_word_error_rate
    from .mcd import mel_cepstral_distortion
    from .speaker import embed_utterances, speaker_verification_eer

    explicit = metrics is not None
    metrics = list(VOICE_METRICS if metrics is None else metrics)
    unknown = sorted(set(metrics) - set(VOICE_METRICS))
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}: choose from {list(VOICE_METRICS)}.")
    rows = _rows(references, audio_column, text_column, speaker_column)
    rate = model.config.sampling_rate
    audios = [load_audio(row["audio"], sampling_rate, rate, name=f"references[{i}]") for i, row in enumerate(rows)]
    speakers = [row["speaker"] for row in rows]
    labelled = [s for s in speakers if s is not None]
    enrolled = list(dict.fromkeys(labelled))
    if target is None:
        if len(enrolled) > 1:
            raise UnknownSpeakerError(f"References span speakers {enrolled}: name the voice's speaker with target=.")
        target = enrolled[0] if enrolled else None
    elif str(target) not in {str(s) for s in enrolled}:
        raise UnknownSpeakerError(f"No reference of target {target!r} (speakers: {enrolled}); add its utterances.")
    want_eer = "eer" in metrics
    if want_eer and len(enrolled) < 2:
        if explicit:
            raise InsufficientSpeakersError(
                f"EER needs references of at least 2 speakers; got {len(enrolled)} ({enrolled}). Add real utterances "
                "of other speakers (with their speaker labels) or leave 'eer' out of metrics.")
        want_eer = False
    chosen = [i for i, s in enumerate(speakers) if target is None or str(s) == str(target)]
    processor = processor_for(model, processor)
    was_training = model.training
    model.eval()
    try:
        waves = synthesize_texts(model, processor.tokenizer, [rows[i]["text"] for i in chosen], voice,
                                 [rows[i]["language"] for i in chosen])
    finally:
        model.train(was_training)
    real = [audios[i] for i in chosen]
    texts = [rows[i]["text"] for i in chosen]
    result: dict[str, Any] = {"num_utterances": len(chosen), "num_speakers": max(1, len(enrolled)),
                              "target": target}
    per = [{"text": text} for text in texts]
    if "similarity" in metrics:
        synth_emb = embed_utterances(waves, rate)
        real_emb = embed_utterances(real, rate)
        cosines = np.sum(synth_emb * real_emb, axis=1)
        result["similarity"] = float(np.mean(cosines))
        for item, value in zip(per, cosines):
            item["similarity"] = float(value)
    if "mcd" in metrics:
        mcd = mel_cepstral_distortion(real, waves, sampling_rate=rate)
        result["mcd"] = float(np.mean(mcd))
        for item, value in zip(per, mcd):
            item["mcd"] = float(value)
    if "wer" in metrics:
        synth_wer = asr_word_error_rate(waves, texts, sampling_rate=rate)
        real_wer = asr_word_error_rate(real, texts, sampling_rate=rate)
        result.update(wer=synth_wer.wer, reference_wer=real_wer.wer, wer_delta=synth_wer.wer - real_wer.wer)
        for item, hyp, value in zip(per, synth_wer.transcripts, synth_wer.per_utterance):
            item.update(transcript=hyp, wer=value)
    if want_eer:
        eer = speaker_verification_eer(waves, [target] * len(waves), audios, speakers, sampling_rate=rate)
        result["eer"] = eer.eer
    result["per_utterance"] = per
    return result


__all__ = ["VOICE_METRICS", "evaluate_voice", "synthesize_texts"]
