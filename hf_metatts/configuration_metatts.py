"""MetaTTSConfig: every audio, model, loss and inference constant of a MetaTTS checkpoint, validated.

This file travels with saved checkpoints (remote code): it imports only transformers and the standard library.
"""

import math

from transformers import PreTrainedConfig

VOCODER_TYPES = ("griffin_lim", "istft", "speecht5_hifigan")
VOICE_ENCODER_TYPES = ("convolution", "speaker_embedding")

#: The adapted parameter set: what few-shot adaptation changes and what a voice file stores.
DEFAULT_ADAPTED_PARAMETERS = [
    "voice.speaker_vector",
    "decoder.layers.*.attention_norm.shift.bias",
    "decoder.layers.*.attention_norm.scale.bias",
    "decoder.layers.*.ffn_norm.shift.bias",
    "decoder.layers.*.ffn_norm.scale.bias",
    "decoder.final_norm.shift.bias",
    "decoder.final_norm.scale.bias",
    "decoder.layers.*.lora_*",
]


def _check_range(name, value, low=None, high=None, *, integer=False, low_open=False):
    """Raise ValueError naming the field and the allowed range when ``value`` is outside it."""
    kind = "an integer" if integer else "a number"
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"MetaTTSConfig.{name} must be {kind}, got {value!r}.")
    if not integer and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise ValueError(f"MetaTTSConfig.{name} must be a finite number, got {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"MetaTTSConfig.{name}={value!r} is out of range: allowed {span}.")


#: the allowed range of ``MetaTTSConfig.aligner_duration_weight``
ALIGNER_DURATION_WEIGHT_RANGE = (0.0, 1000.0)


def check_aligner_duration_weight(weight) -> None:
    """Raise ValueError naming the field and its range unless ``weight`` is a finite number within
    ``ALIGNER_DURATION_WEIGHT_RANGE``: the config's own check, for callers that set the field on a loaded model (a
    bundling, a benchmark reading) and must refuse a bad value first."""
    _check_range("aligner_duration_weight", weight, *ALIGNER_DURATION_WEIGHT_RANGE)


class MetaTTSConfig(PreTrainedConfig):
    r"""Configuration of [`MetaTTSForTextToSpeech`], a FastSpeech2-family acoustic model with a learned
    aligner, conditional-layer-norm voice conditioning and an owned vocoder.

    Audio (SpeechT5's mel definition, so SpeechT5's HiFi-GAN can vocode):
        sampling_rate (`int`, 16000), num_mel_bins (`int`, 80), hop_length (`int`, 256), win_length (`int`, 1024),
        n_fft (`int`, 1024), fmin (`float`, 80.0), fmax (`float`, 7600.0), mel_floor (`float`, 1e-10): log10 mel
        magnitudes.
    Text:
        vocab_size (`int`): size of the phoneme table; pad_token_id (`int`, 0).
    Acoustic model:
        hidden_size, encoder_layers, decoder_layers, num_attention_heads, ffn_dim, ffn_kernel_size, dropout,
        attention_dropout: the feed-forward Transformer blocks. variance_hidden_size, variance_kernel_size,
        variance_dropout: duration, pitch and energy predictors. pitch_mean, pitch_std: log-F0 normalisation (log Hz).
        max_frames_per_token: upper bound of a predicted duration.
    Aligner (RAD-TTS style, monotonic alignment search):
        aligner_hidden_size, aligner_temperature, aligner_prior_scale. aligner_skippable_token_ids (`list[int]`,
        optional): tokens the alignment search may give no frame (stress and length marks, spaces, punctuation),
        as the corpus's phone timings do (`hf_metatts.data.durations.skippable_token_ids`); None: every token
        takes at least one frame. aligner_duration_weight (`float`, 0.0): how strongly `compute_durations` (the
        support clips' durations for `model.adapt`) holds each token's log-duration to the duration predictor's,
        stretched to the clip's length (`modeling_alignment.duration_informed_search`); 0: the aligner alone. Set it
        on a trained model (`hf-metatts bundle --aligner-duration-weight`): while the duration predictor is still
        learning it would pull the inner loops' durations of clips without phone timings towards its guesses.
    Voice:
        speaker_dim: size of the speaker vector. num_speakers: rows of the multi-speaker table (0: none; the
        pretraining baseline uses it). lora_rank: rank of optional decoder low-rank adapters (0: none).
        use_voice_encoder: a support-set encoder that emits a voice from clips (zero-shot start).
        voice_encoder_hidden_size. voice_encoder_type: "convolution" (convolutions trained with the TTS loss) or
        "speaker_embedding" (a frozen discriminative speaker encoder, shape in `speaker_encoder_config`, and a
        trained head; attach one with `model.use_speaker_embedding_voice_encoder(encoder)`).
        adapted_parameters: fnmatch patterns of the adapted parameter set.
    Losses:
        mel_loss_weight, duration_loss_weight, pitch_loss_weight, energy_loss_weight, alignment_loss_weight,
        bin_loss_weight.
    Inference:
        max_chunk_tokens: long input is split at sentence ends into chunks of at most this many symbols.
        sentence_pause_seconds: silence between chunks.
    Vocoder:
        vocoder_type: one of "griffin_lim" (no weights), "istft" (the trained neural vocoder) or
        "speecht5_hifigan" (an attached `SpeechT5HifiGan`, config in `hifigan_config`). griffin_lim_iters,
        griffin_lim_momentum, griffin_lim_power. vocoder_hidden_size, vocoder_intermediate_size, vocoder_layers:
        the iSTFT-head vocoder.
    Voice adaptation of the vocoder (`model.adapt`; only for the trained "istft" vocoder):
        voice_vocoder_steps (`int`, 0: off): Adam steps a copy of the vocoder takes on the support clips (the
        adapted model's teacher-forced log-mels against the recordings), stored in the voice.
        voice_vocoder_learning_rate (`float`, 3e-4). voice_vocoder_parameters: fnmatch patterns of the vocoder's
        parameter names that those steps change (default all). voice_vocoder_batch_size (`int`, 8) and
        voice_vocoder_segment_frames (`int`, 32): random support segments per step and their length in frames.
        voice_vocoder_adapt_phase (`bool`, True): False keeps the phase rows of the vocoder's output layer (the
        second half of `head`'s outputs) as trained, so the steps change only each frequency's magnitude.
        voice_vocoder_clip_context (`bool`, False): True runs the layers below the output layer once over each
        whole support clip, the context they have when the voice speaks, and trains the output layer on segments
        of those hidden states (faster; needs `voice_vocoder_parameters` within `head.*`, `final_norm.*`).
    """

    model_type = "metatts"

    sampling_rate: int = 16000
    num_mel_bins: int = 80
    hop_length: int = 256
    win_length: int = 1024
    n_fft: int = 1024
    fmin: float = 80.0
    fmax: float = 7600.0
    mel_floor: float = 1e-10

    vocab_size: int = 365
    pad_token_id: int = 0

    hidden_size: int = 192
    encoder_layers: int = 4
    decoder_layers: int = 4
    num_attention_heads: int = 2
    ffn_dim: int = 512
    ffn_kernel_size: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.1
    variance_hidden_size: int = 192
    variance_kernel_size: int = 3
    variance_dropout: float = 0.3
    pitch_mean: float = 5.0
    pitch_std: float = 0.35
    max_frames_per_token: int = 40

    aligner_hidden_size: int = 128
    aligner_temperature: float = 0.0005
    aligner_prior_scale: float = 1.0
    aligner_skippable_token_ids: list[int] | None = None
    aligner_duration_weight: float = 0.0

    speaker_dim: int = 64
    num_speakers: int = 0
    lora_rank: int = 0
    use_voice_encoder: bool = True
    voice_encoder_hidden_size: int = 128
    voice_encoder_type: str = "convolution"
    speaker_encoder_config: dict | None = None
    adapted_parameters: list[str] | None = None

    mel_loss_weight: float = 1.0
    duration_loss_weight: float = 1.0
    pitch_loss_weight: float = 0.1
    energy_loss_weight: float = 0.1
    alignment_loss_weight: float = 1.0
    bin_loss_weight: float = 0.1

    max_chunk_tokens: int = 300
    sentence_pause_seconds: float = 0.15

    vocoder_type: str = "griffin_lim"
    griffin_lim_iters: int = 32
    griffin_lim_momentum: float = 0.99
    griffin_lim_power: float = 1.3
    vocoder_hidden_size: int = 256
    vocoder_intermediate_size: int = 768
    vocoder_layers: int = 6
    hifigan_config: dict | None = None

    voice_vocoder_steps: int = 0
    voice_vocoder_learning_rate: float = 3e-4
    voice_vocoder_parameters: list[str] | None = None
    voice_vocoder_batch_size: int = 8
    voice_vocoder_segment_frames: int = 32
    voice_vocoder_adapt_phase: bool = True
    voice_vocoder_clip_context: bool = False

    library_version: str | None = None

    def __post_init__(self, **kwargs):
        if self.adapted_parameters is None:
            self.adapted_parameters = list(DEFAULT_ADAPTED_PARAMETERS)
        if self.voice_vocoder_parameters is None:
            self.voice_vocoder_parameters = ["*"]
        super().__post_init__(**kwargs)
        self.validate_metatts()

    def validate_metatts(self):
        """Check every constant; raise ValueError naming the field and the allowed range."""
        _check_range("sampling_rate", self.sampling_rate, 8000, 48000, integer=True)
        _check_range("num_mel_bins", self.num_mel_bins, 8, 256, integer=True)
        _check_range("n_fft", self.n_fft, 64, 8192, integer=True)
        _check_range("win_length", self.win_length, 16, self.n_fft, integer=True)
        _check_range("hop_length", self.hop_length, 1, self.win_length, integer=True)
        _check_range("fmin", self.fmin, 0.0, self.sampling_rate / 2)
        _check_range("fmax", self.fmax, self.fmin, self.sampling_rate / 2, low_open=True)
        _check_range("mel_floor", self.mel_floor, 0.0, 1e-2, low_open=True)
        _check_range("vocab_size", self.vocab_size, 4, 100_000, integer=True)
        _check_range("pad_token_id", self.pad_token_id, 0, self.vocab_size - 1, integer=True)
        for name in ("hidden_size", "ffn_dim", "variance_hidden_size", "aligner_hidden_size", "speaker_dim",
                     "voice_encoder_hidden_size", "vocoder_hidden_size", "vocoder_intermediate_size"):
            _check_range(name, getattr(self, name), 1, 8192, integer=True)
        for name in ("encoder_layers", "decoder_layers", "num_attention_heads"):
            _check_range(name, getattr(self, name), 1, 64, integer=True)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MetaTTSConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        for name in ("ffn_kernel_size", "variance_kernel_size"):
            value = getattr(self, name)
            _check_range(name, value, 1, 31, integer=True)
            if value % 2 == 0:
                raise ValueError(f"MetaTTSConfig.{name}={value} must be odd (same-length convolution).")
        for name in ("dropout", "attention_dropout", "variance_dropout"):
            _check_range(name, getattr(self, name), 0.0, 0.9)
        _check_range("pitch_mean", self.pitch_mean, 2.0, 8.0)
        _check_range("pitch_std", self.pitch_std, 0.0, 3.0, low_open=True)
        _check_range("max_frames_per_token", self.max_frames_per_token, 1, 1000, integer=True)
        _check_range("aligner_temperature", self.aligner_temperature, 0.0, 1.0, low_open=True)
        _check_range("aligner_prior_scale", self.aligner_prior_scale, 0.0, 100.0)
        check_aligner_duration_weight(self.aligner_duration_weight)
        if self.aligner_skippable_token_ids is not None:
            ids = self.aligner_skippable_token_ids
            if not isinstance(ids, (list, tuple)) or not all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.vocab_size for i in ids):
                raise ValueError(
                    f"MetaTTSConfig.aligner_skippable_token_ids must be a list of token ids in [0, {self.vocab_size})"
                    f" (or None), got {ids!r}: write it with hf_metatts.data.durations.skippable_token_ids(tokenizer)."
                )
        _check_range("num_speakers", self.num_speakers, 0, 1_000_000, integer=True)
        _check_range("lora_rank", self.lora_rank, 0, 256, integer=True)
        for name in ("mel_loss_weight", "duration_loss_weight", "pitch_loss_weight", "energy_loss_weight",
                     "alignment_loss_weight", "bin_loss_weight"):
            _check_range(name, getattr(self, name), 0.0, 1000.0)
        _check_range("max_chunk_tokens", self.max_chunk_tokens, 8, 100_000, integer=True)
        _check_range("sentence_pause_seconds", self.sentence_pause_seconds, 0.0, 5.0)
        if self.vocoder_type not in VOCODER_TYPES:
            raise ValueError(
                f"MetaTTSConfig.vocoder_type={self.vocoder_type!r} is not allowed: choose one of {VOCODER_TYPES}."
            )
        if self.vocoder_type == "speecht5_hifigan" and not self.hifigan_config:
            raise ValueError(
                "MetaTTSConfig.vocoder_type='speecht5_hifigan' needs hifigan_config: attach one with "
                "`model.attach_vocoder(SpeechT5HifiGan.from_pretrained(...))`."
            )
        if self.voice_encoder_type not in VOICE_ENCODER_TYPES:
            raise ValueError(f"MetaTTSConfig.voice_encoder_type={self.voice_encoder_type!r} is not allowed: choose one "
                             f"of {VOICE_ENCODER_TYPES}.")
        if self.voice_encoder_type == "speaker_embedding" and not isinstance(self.speaker_encoder_config, dict):
            raise ValueError(
                "MetaTTSConfig.voice_encoder_type='speaker_embedding' needs speaker_encoder_config (the shape of the "
                "frozen speaker encoder): attach a trained one with `model.use_speaker_embedding_voice_encoder(...)`."
            )
        _check_range("griffin_lim_iters", self.griffin_lim_iters, 1, 1000, integer=True)
        _check_range("griffin_lim_momentum", self.griffin_lim_momentum, 0.0, 0.999)
        _check_range("griffin_lim_power", self.griffin_lim_power, 0.5, 3.0)
        _check_range("vocoder_layers", self.vocoder_layers, 1, 64, integer=True)
        for name, allow_empty in (("adapted_parameters", True), ("voice_vocoder_parameters", False)):
            patterns = getattr(self, name)
            if (not isinstance(patterns, (list, tuple)) or not (patterns or allow_empty)
                    or not all(isinstance(p, str) and p for p in patterns)):
                raise ValueError(f"MetaTTSConfig.{name} must be a list of parameter-name patterns"
                                 f"{'' if allow_empty else ' (at least one)'}, got {patterns!r}.")
        _check_range("voice_vocoder_steps", self.voice_vocoder_steps, 0, 10_000, integer=True)
        _check_range("voice_vocoder_learning_rate", self.voice_vocoder_learning_rate, 0.0, 1.0, low_open=True)
        _check_range("voice_vocoder_batch_size", self.voice_vocoder_batch_size, 1, 1024, integer=True)
        _check_range("voice_vocoder_segment_frames", self.voice_vocoder_segment_frames, 5, 10_000, integer=True)
        for name in ("voice_vocoder_adapt_phase", "voice_vocoder_clip_context"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MetaTTSConfig.{name} must be True or False, got {getattr(self, name)!r}.")

    @property
    def frames_per_second(self) -> float:
        return self.sampling_rate / self.hop_length


__all__ = ["MetaTTSConfig"]
