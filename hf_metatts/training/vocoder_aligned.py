"""Ground-truth-aligned (GTA) training pairs for the neural vocoder: the acoustic model's own log-mels, each frame
aligned with the real audio it should become.

A vocoder trained on the log-mels of real audio hears smoother, slightly different spectra at synthesis time, where
its input is the acoustic model's prediction. Fine-tuning it on *predicted* mels whose frames line up with the
recordings (the HiFi-GAN / FastSpeech 2 recipe) teaches it to turn what the model says into real-sounding audio.
Here the prediction is what a user's voice gives: for each speaker of a prepared corpus the model adapts to a few
support clips exactly as ``model.adapt`` does (the checkpoint's meta-learner, its method, steps and step size), then
reads other clips of that speaker on their recorded durations and pitch (teacher forcing). Frame ``t`` of a clip's
log-mel is centred on sample ``t * hop``, so a clip of ``T`` frames pairs with its first ``T * hop`` samples.

    hf-metatts train-vocoder --dataset data/voices-augmented --aligned-model hf_metatts/checkpoints/default \\
        --init-from hf_metatts/checkpoints/default --out outputs/vocoder_aligned
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call

logger = logging.getLogger(__name__)


class AlignedCorpusError(ValueError):
    """A prepared corpus that cannot give aligned pairs; the message says what to change."""


@dataclass
class AlignedClip:
    """One training pair: ``mel`` ``(T, M)`` the model's log-mel, ``audio`` ``(T * hop,)`` the recording (row
    ``id`` of ``speaker``); ``role`` is ``"support"`` for a clip the voice was adapted to, else ``"target"``."""

    id: str
    speaker: str
    mel: np.ndarray
    audio: np.ndarray
    role: str = "target"


def default_adaptation(model, meta_learner, support: dict, steps: int | None = None) -> dict[str, torch.Tensor]:
    """The adapted parameter set ``model.adapt`` (default method) would give for the collated ``support`` batch;
    ``steps=0`` gives the voice it starts from (the support encoder's, for a zero-shot-start meta-learner)."""
    from ..meta import adapt_parameters
    from ..voice_adapt import resolve_adaptation

    method, default_steps = resolve_adaptation("maml", meta_learner, None)
    return adapt_parameters(model, support, method=method, steps=default_steps if steps is None else steps,
                            meta_learner=meta_learner)


def teacher_forced_mels(model, params: dict, batch: dict) -> list[np.ndarray]:
    """The model with the adapted ``params`` reading ``batch``'s clips on their recorded durations (the rows' own;
    the model's aligner finds them for rows without, as in training) and pitch -> one log-mel ``(T_i, M)`` per
    clip, cut to the clip's frames."""
    with torch.no_grad():
        output = functional_call(model, params, args=(), kwargs=batch, strict=False)
    lengths = batch["labels_attention_mask"].sum(1).tolist()
    mels = output.spectrogram.detach().float().cpu().numpy()
    return [mels[i, :length].copy() for i, length in enumerate(lengths)]


def _audio_split(dataset_path: str, split: str):
    """``split`` of the corpus at ``dataset_path``, checked for its ``id`` and ``audio`` columns."""
    from datasets import load_from_disk

    if not os.path.isdir(dataset_path):
        raise AlignedCorpusError(f"No corpus at {dataset_path}: build one with `hf-metatts build-corpus`.")
    corpus = load_from_disk(dataset_path)
    if split not in corpus or "audio" not in corpus[split].column_names or "id" not in corpus[split].column_names:
        raise AlignedCorpusError(f"{dataset_path} needs a split {split!r} with 'id' and 'audio' columns.")
    return corpus[split]


def _audio_by_id(split_rows, ids: set[str], sampling_rate: int, dataset_path: str, split: str
                 ) -> dict[str, np.ndarray]:
    """The recordings ``(samples,)`` at ``sampling_rate`` of the rows of ``split_rows`` (from `_audio_split`) whose
    ``id`` is in ``ids``."""
    from datasets import Audio

    from ..data.audio import decode_audio

    rows = split_rows.cast_column("audio", Audio(decode=False))
    found = {}
    for index, row_id in enumerate(rows["id"]):
        if row_id in ids:
            found[row_id] = decode_audio(rows[index]["audio"], sampling_rate).astype(np.float32)
    missing = ids - set(found)
    if missing:
        raise AlignedCorpusError(f"{len(missing)} rows of the prepared corpus (e.g. {sorted(missing)[0]!r}) have no "
                                 f"audio in {dataset_path} split {split!r}: prepare the corpus from that folder.")
    return found


def prepared_split(prepared_path: str, split: str):
    """``split`` of the prepared corpus at ``prepared_path`` (`hf-metatts prepare-corpus`), checked for the columns
    an adapted model reads; `AlignedCorpusError` saying what to give otherwise."""
    from datasets import load_from_disk

    if not os.path.isdir(prepared_path):
        raise AlignedCorpusError(f"No prepared corpus at {prepared_path}: run `hf-metatts prepare-corpus` on the "
                                 "corpus first (it adds the labels, pitch and durations the model reads).")
    corpus = load_from_disk(prepared_path)
    if split not in corpus:
        raise AlignedCorpusError(f"{prepared_path} has no split {split!r} (splits: {list(corpus)}).")
    rows = corpus[split]
    needed = {"id", "speaker_id", "input_ids", "labels"} - set(rows.column_names)
    if needed:
        raise AlignedCorpusError(f"Split {split!r} of {prepared_path} lacks {sorted(needed)}: give the folder "
                                 "`hf-metatts prepare-corpus` wrote.")
    return rows


def rows_by_speaker(speaker_ids) -> dict[str, list[int]]:
    """The row indices of each speaker (``speaker_ids``: one per row), in row order."""
    by_speaker: dict[str, list[int]] = {}
    for index, speaker in enumerate(speaker_ids):
        by_speaker.setdefault(str(speaker), []).append(index)
    return by_speaker


def aligned_clips(model, meta_learner, prepared_path: str, dataset_path: str, split: str, shots: int = 5,
                  clips_per_speaker: int = 8, seed: int = 0, batch_size: int = 4,
                  start_fraction: float = 0.0, with_support: bool = False,
                  cache_dir: str | None = None) -> list[AlignedClip]:
    """GTA pairs for every speaker of ``split`` with more than ``shots`` rows: the model adapted to ``shots``
    random rows of the speaker reads up to ``clips_per_speaker`` others. ``prepared_path`` is the prepared
    corpus (labels, pitch, durations), ``dataset_path`` the corpus with the audio (matched by ``id``). The first
    ``round(start_fraction * clips)`` of each speaker's clips are read with the voice before the steps (what
    ``model.adapt(..., method="zero_shot")`` gives), the others with the adapted voice. ``with_support`` adds the
    ``shots`` support clips themselves, read with the adapted voice (``role="support"``: the pairs
    ``model.adapt`` adapts the vocoder on). ``cache_dir``: a folder that keeps the log-mels between runs
    (`hf_metatts.training.aligned_pairs_cache`); the pairs are the same with it or without."""
    from ..data_collator import MetaTTSDataCollator

    if shots < 1 or clips_per_speaker < 1:
        raise AlignedCorpusError(f"shots={shots} and clips_per_speaker={clips_per_speaker} must be at least 1.")
    if not 0.0 <= start_fraction <= 1.0:
        raise AlignedCorpusError(f"start_fraction={start_fraction} must lie in [0, 1].")
    rows = prepared_split(prepared_path, split)
    by_speaker = rows_by_speaker(rows["speaker_id"])
    plan = {}
    for speaker in sorted(by_speaker):
        indices = by_speaker[speaker]
        if len(indices) <= shots:
            continue
        order = np.random.default_rng([seed, len(plan)]).permutation(indices).tolist()
        plan[speaker] = (order[:shots], order[shots: shots + clips_per_speaker])
    if not plan:
        raise AlignedCorpusError(f"No speaker of split {split!r} has more than shots={shots} rows: lower shots.")
    row_ids = rows["id"]
    ids = {row_ids[i] for support, targets in plan.values() for i in targets + (support if with_support else [])}
    hop = model.config.hop_length
    audio_rows = _audio_split(dataset_path, split)
    audio = _audio_by_id(audio_rows, ids, model.config.sampling_rate, dataset_path, split)
    cache = key = parts = None
    if cache_dir:
        from .aligned_pairs_cache import PairsCache, pairs_key

        settings = dict(split=split, shots=shots, clips_per_speaker=clips_per_speaker, seed=seed,
                        batch_size=batch_size, start_fraction=start_fraction, with_support=with_support)
        cache = PairsCache(cache_dir)
        key, parts = pairs_key(model, meta_learner, rows, audio_rows, settings)
        cached = cache.load(key)
        if cached is not None:
            return [AlignedClip(row_id, speaker, mel, _recording(audio[row_id], len(mel), hop), role)
                    for row_id, speaker, role, mel in cached]
    collate = MetaTTSDataCollator(pad_token_id=model.config.pad_token_id)
    was_training = model.training
    model.eval()
    pairs, started = [], time.perf_counter()
    try:
        for done, (speaker, (support_rows, target_rows)) in enumerate(plan.items(), start=1):
            support = collate([rows[i] for i in support_rows])
            at_start = round(start_fraction * len(target_rows))
            adapted = default_adaptation(model, meta_learner, support)
            groups = [(target_rows[at_start:], adapted, "target")]
            if at_start:
                groups.insert(0, (target_rows[:at_start], default_adaptation(model, meta_learner, support, steps=0),
                                  "target"))
            if with_support:
                groups.append((support_rows, adapted, "support"))
            chunks = [(group[first: first + batch_size], params, role) for group, params, role in groups
                      for first in range(0, len(group), batch_size)]
            for chunk_rows, params, role in chunks:
                chunk = [rows[i] for i in chunk_rows]
                for row, mel in zip(chunk, teacher_forced_mels(model, params, collate(chunk))):
                    pairs.append(AlignedClip(row["id"], speaker, mel.astype(np.float32),
                                             _recording(audio[row["id"]], len(mel), hop), role))
            if done % 25 == 0:
                logger.info("aligned pairs: %d of %d speakers adapted", done, len(plan))
    finally:
        model.train(was_training)
    logger.info("aligned pairs: %d clips of %d speakers (%s), %.1f s", len(pairs), len(plan), split,
                time.perf_counter() - started)
    if cache is not None:
        cache.save(key, parts, pairs)
    return pairs


def _recording(wave: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """The first ``frames * hop`` samples of ``wave``, zero-padded if it is shorter."""
    wave = wave[: frames * hop]
    return np.pad(wave, (0, frames * hop - len(wave)))


class AlignedSegmentSampler:
    """Random aligned segments: log-mels ``(B, F, M)`` and the audio ``(B, F * hop)`` they should become."""

    def __init__(self, clips: list[AlignedClip], segment_frames: int, hop_length: int, seed: int):
        self.clips = [c for c in clips if len(c.mel) >= segment_frames]
        if not self.clips:
            raise AlignedCorpusError(f"No aligned clip has {segment_frames} frames: lower segment_frames.")
        self.frames, self.hop = segment_frames, hop_length
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        mels = np.empty((batch_size, self.frames, self.clips[0].mel.shape[1]), dtype=np.float32)
        waves = np.empty((batch_size, self.frames * self.hop), dtype=np.float32)
        for row, index in enumerate(self.rng.integers(len(self.clips), size=batch_size)):
            clip = self.clips[index]
            start = int(self.rng.integers(len(clip.mel) - self.frames + 1))
            mels[row] = clip.mel[start: start + self.frames]
            waves[row] = clip.audio[start * self.hop: (start + self.frames) * self.hop]
        return torch.from_numpy(mels), torch.from_numpy(waves)


def aligned_validation_losses(vocoder, criterion, clips: list[AlignedClip]) -> dict[str, float]:
    """Mean losses of whole aligned clips (model log-mel -> vocoder, against the recording) over ``clips``."""
    from .vocoder import mean_losses

    return mean_losses(vocoder, criterion, [(torch.from_numpy(clip.mel).unsqueeze(0),
                                            torch.from_numpy(clip.audio).unsqueeze(0)) for clip in clips])
