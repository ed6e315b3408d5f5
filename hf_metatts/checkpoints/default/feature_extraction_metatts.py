"""Waveform -> log-mel spectrogram with SpeechT5's definition, plus frame-level log-F0 for training.

16 kHz, 80 mel bins (slaney), hop 256, window 1024 (Hann), 80-7600 Hz, magnitude, log10 with a floor of
1e-10: the public SpeechT5 HiFi-GAN vocodes these mels. Any sample rate is resampled with `soxr`; stereo
is mixed to mono.

This file travels with saved checkpoints (remote code).
"""

import io
import logging

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.audio_utils import mel_filter_bank

from .errors import InvalidAudioError

logger = logging.getLogger(__name__)

#: Log-mel value of silence (log10 of the mel floor) used to pad spectrograms.
SILENCE_LOG_MEL = -10.0


def to_mono_float32(array) -> np.ndarray:
    """A 1-D float32 array: integer PCM is scaled to [-1, 1); 2-D input (frames x channels or channels x
    frames, the channel axis being the shorter one) is averaged to mono.

    Raises:
        InvalidAudioError: the input has more than two dimensions.
    """
    samples = np.asarray(array)
    if samples.dtype.kind in "iu":
        samples = samples.astype(np.float32) / (float(np.iinfo(samples.dtype).max) + 1.0)
    samples = samples.astype(np.float32, copy=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1 if samples.shape[1] <= samples.shape[0] else 0)
    if samples.ndim != 1:
        raise InvalidAudioError(f"Audio must be 1-D (mono) or 2-D (multi-channel), got shape {samples.shape}.")
    return np.ascontiguousarray(samples)


def resample(array: np.ndarray, orig_sampling_rate: int, target_sampling_rate: int) -> np.ndarray:
    """Resample a mono float32 array with soxr (high quality); a no-op when the rates match or it is empty."""
    if int(orig_sampling_rate) <= 0:
        raise InvalidAudioError(f"The sampling rate must be positive, got {orig_sampling_rate}.")
    if int(orig_sampling_rate) == int(target_sampling_rate) or array.size == 0:
        return array.astype(np.float32, copy=False)
    import soxr

    resampled = soxr.resample(array, int(orig_sampling_rate), int(target_sampling_rate), quality="HQ")
    return resampled.astype(np.float32, copy=False)


def load_audio(source, target_sampling_rate: int, sampling_rate: int | None = None) -> np.ndarray:
    """Decode one clip to a mono float32 array at ``target_sampling_rate``.

    Args:
        source: an array (``(samples,)``, or ``(samples, channels)`` / ``(channels, samples)`` stereo), a path,
            raw file bytes, or a `datasets` audio dict (``{"array", "sampling_rate"}`` or ``{"bytes"|"path"}``).
        target_sampling_rate: the rate to return.
        sampling_rate: the rate of an array ``source`` (required for arrays).

    Raises:
        InvalidAudioError: the clip cannot be decoded, is empty, or holds NaN/inf.
    """
    if isinstance(source, dict):
        if source.get("array") is not None:
            return load_audio(np.asarray(source["array"]), target_sampling_rate, source.get("sampling_rate"))
        source = source.get("bytes") or source.get("path")
        if source is None:
            raise InvalidAudioError("Audio dict holds neither 'array' nor 'bytes' nor 'path': pass one of them.")
    if isinstance(source, (str, bytes, bytearray)) or hasattr(source, "__fspath__"):
        import soundfile

        name = source if not isinstance(source, (bytes, bytearray)) else "<bytes>"
        try:
            data, sampling_rate = soundfile.read(
                io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source, dtype="float32"
            )
        except Exception as error:
            raise InvalidAudioError(
                f"Could not decode audio {name!s}: {error}. Give a WAV/FLAC/OGG file or a float array."
            ) from error
        source = data
    if sampling_rate is None:
        raise InvalidAudioError("An audio array needs its sampling_rate: pass sampling_rate=... .")
    array = to_mono_float32(source)
    if array.size == 0:
        raise InvalidAudioError("Audio is empty: give a clip with at least one sample.")
    if not np.isfinite(array).all():
        raise InvalidAudioError("Audio holds NaN or infinite samples: clean the clip before using it.")
    return np.ascontiguousarray(resample(array, int(sampling_rate), target_sampling_rate))


class MetaTTSFeatureExtractor(SequenceFeatureExtractor):
    """Log-mel features (and optionally frame-level log-F0) from raw speech.

    ``extractor(audio, sampling_rate=44100, return_pitch=True, return_tensors="pt")`` returns
    ``input_features`` ``(batch, frames, num_mel_bins)``, ``attention_mask`` ``(batch, frames)`` and, when
    asked, ``pitch`` ``(batch, frames)``: natural-log F0 in Hz for voiced frames, 0 for unvoiced ones.
    Frames are ``1 + samples // hop_length`` (centred STFT, reflect padding), as in SpeechT5.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size=80,
        sampling_rate=16000,
        padding_value=SILENCE_LOG_MEL,
        hop_length=256,
        win_length=1024,
        n_fft=1024,
        fmin=80.0,
        fmax=7600.0,
        mel_floor=1e-10,
        return_attention_mask=True,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_fft = n_fft
        self.fmin = fmin
        self.fmax = fmax
        self.mel_floor = mel_floor

    @classmethod
    def from_model_config(cls, config) -> "MetaTTSFeatureExtractor":
        """The feature extractor that matches a `MetaTTSConfig`."""
        return cls(
            feature_size=config.num_mel_bins,
            sampling_rate=config.sampling_rate,
            hop_length=config.hop_length,
            win_length=config.win_length,
            n_fft=config.n_fft,
            fmin=config.fmin,
            fmax=config.fmax,
            mel_floor=config.mel_floor,
        )

    def mel_filters(self) -> torch.Tensor:
        """Slaney mel filter bank ``(n_fft // 2 + 1, feature_size)``, SpeechT5's definition."""
        filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.feature_size,
            min_frequency=self.fmin,
            max_frequency=self.fmax,
            sampling_rate=self.sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        return torch.from_numpy(filters.astype(np.float32))

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log10 mel magnitudes of one waveform ``(samples,)`` -> ``(frames, feature_size)``."""
        window = torch.hann_window(self.win_length, periodic=True, dtype=waveform.dtype)
        if self.win_length < self.n_fft:
            pad = (self.n_fft - self.win_length) // 2
            window = torch.nn.functional.pad(window, (pad, self.n_fft - self.win_length - pad))
        stft = torch.stft(
            waveform, self.n_fft, self.hop_length, window=window, center=True, pad_mode="reflect", return_complex=True
        )
        magnitude = stft.abs().transpose(0, 1)
        mel = magnitude @ self.mel_filters().to(waveform.dtype)
        return torch.log10(torch.clamp(mel, min=self.mel_floor))

    def log_f0(self, waveform: np.ndarray, num_frames: int) -> np.ndarray:
        """Natural-log F0 per frame ``(num_frames,)`` with WORLD (pyworld), 0 where unvoiced."""
        try:
            import pyworld
        except ImportError as error:  # pragma: no cover - pyworld is an install requirement
            raise ImportError("Pitch extraction needs pyworld: pip install pyworld") from error
        audio = waveform.astype(np.float64)
        frame_period_ms = 1000.0 * self.hop_length / self.sampling_rate
        f0, times = pyworld.dio(audio, self.sampling_rate, frame_period=frame_period_ms, f0_floor=55.0, f0_ceil=800.0)
        f0 = pyworld.stonemask(audio, f0, times, self.sampling_rate)
        f0 = np.pad(f0, (0, max(0, num_frames - len(f0))))[:num_frames]
        with np.errstate(divide="ignore"):
            return np.where(f0 > 0, np.log(np.maximum(f0, 1e-5)), 0.0).astype(np.float32)

    def __call__(
        self,
        raw_speech,
        sampling_rate: int | None = None,
        return_pitch: bool = False,
        padding: bool | str = True,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurize one clip or a list of clips (arrays, paths, bytes or `datasets` audio dicts)."""
        is_batched = isinstance(raw_speech, (list, tuple)) and not (
            len(raw_speech) > 0 and isinstance(raw_speech[0], (int, float, np.number))
        )
        clips = list(raw_speech) if is_batched else [raw_speech]
        if sampling_rate is None and any(isinstance(c, (np.ndarray, torch.Tensor, list)) for c in clips):
            logger.warning(
                "No sampling_rate given: assuming %d Hz. Pass sampling_rate=... to be sure.", self.sampling_rate
            )
            sampling_rate = self.sampling_rate
        mels, pitches = [], []
        for clip in clips:
            if isinstance(clip, torch.Tensor):
                clip = clip.detach().cpu().numpy()
            if isinstance(clip, list):
                clip = np.asarray(clip, dtype=np.float32)
            waveform = load_audio(clip, self.sampling_rate, sampling_rate)
            mel = self.log_mel(torch.from_numpy(waveform))
            mels.append(mel.numpy())
            if return_pitch:
                pitches.append(self.log_f0(waveform, mel.shape[0]))
        lengths = [m.shape[0] for m in mels]
        longest = max(lengths)
        features = np.full((len(mels), longest, self.feature_size), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(mels), longest), dtype=np.int64)
        for index, mel in enumerate(mels):
            features[index, : mel.shape[0]] = mel
            mask[index, : mel.shape[0]] = 1
        data = {"input_features": features, "attention_mask": mask}
        if return_pitch:
            pitch = np.zeros((len(mels), longest), dtype=np.float32)
            for index, values in enumerate(pitches):
                pitch[index, : len(values)] = values
            data["pitch"] = pitch
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["MetaTTSFeatureExtractor", "load_audio", "resample", "to_mono_float32"]
