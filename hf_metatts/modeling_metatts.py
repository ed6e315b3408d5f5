"""MetaTTS: a non-autoregressive (FastSpeech2-family) acoustic model with a learned aligner, voice
conditioning by a speaker vector and conditional layer norm, and an owned vocoder.

text ids -> phoneme encoder -> (+ voice) -> duration / pitch / energy predictors -> length regulator
-> decoder (conditional layer norm on the voice) -> log-mel -> vocoder -> waveform.

Alignment is learned from (text, audio) pairs alone (RAD-TTS aligner + monotonic alignment search), so
any speech dataset trains it; token durations can be given instead when a dataset has phone timings.

Shapes: B batch, N tokens, T mel frames, M mel bins, H hidden size, S speaker-vector size.
This file travels with saved checkpoints (remote code): it imports only torch, transformers and siblings.
"""

import fnmatch
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, ModelOutput

from .configuration_metatts import MetaTTSConfig
from .errors import CheckpointError
from .feature_extraction_metatts import SILENCE_LOG_MEL
from .modeling_alignment import (
    AlignmentEncoder,
    beta_binomial_log_prior,
    bin_loss,
    duration_informed_search,
    forward_sum_loss,
    monotonic_alignment_search,
)
from .modeling_blocks import (
    FeedForwardTransformer,
    ScalarEmbedding,
    VariancePredictor,
    VoiceEncoder,
    regulate_length,
)
from .modeling_speaker_encoder import SpeakerEmbeddingVoiceEncoder
from .modeling_vocoder import build_vocoder
from .tokenization_metatts import DEFAULT_SYMBOLS, SENTENCE_END, WORD_BOUNDARY

#: Largest number of chunks synthesised in one acoustic-model call (bounds memory on long input).
INFERENCE_CHUNK_BATCH = 16


@dataclass
class MetaTTSOutput(ModelOutput):
    """Output of [`MetaTTSForTextToSpeech`].

    Training (``labels`` given): ``loss`` (scalar), ``losses`` (dict of components), ``spectrogram``
    ``(B, T, M)`` predicted log-mel and ``durations`` ``(B, N)`` (aligner's frames per token).

    Inference: ``waveform`` first: for one item a ``(1, samples)`` tensor; for several, a jagged nested
    tensor whose item i is that text's waveform at its own length (``waveform.unbind()`` iterates them);
    ``padded_waveform`` ``(B, samples_max)`` with ``waveform_lengths`` ``(B,)``; ``spectrogram``
    ``(B, T_max, M)`` with ``spectrogram_lengths`` ``(B,)``; ``durations`` ``(B, N)`` predicted frames.
    """

    loss: torch.Tensor | None = None
    waveform: torch.Tensor | None = None
    waveform_lengths: torch.Tensor | None = None
    padded_waveform: torch.Tensor | None = None
    spectrogram: torch.Tensor | None = None
    spectrogram_lengths: torch.Tensor | None = None
    durations: torch.Tensor | None = None
    losses: dict | None = None


class VoiceConditioning(nn.Module):
    """Where the voice comes from: the learned speaker vector (the meta-learned initial voice), a
    multi-speaker table (the pretraining baseline) or given embeddings; projected into the encoder output."""

    def __init__(self, config: MetaTTSConfig):
        super().__init__()
        self.speaker_vector = nn.Parameter(torch.randn(config.speaker_dim) * 0.1)
        self.speaker_table = nn.Embedding(config.num_speakers, config.speaker_dim) if config.num_speakers else None
        if self.speaker_table is not None:
            nn.init.normal_(self.speaker_table.weight, std=0.1)
        self.to_hidden = nn.Linear(config.speaker_dim, config.hidden_size)

    def forward(self, batch_size: int, speaker_ids=None, speaker_embeddings=None) -> torch.Tensor:
        """-> speaker vectors ``(B, S)``."""
        if speaker_embeddings is not None:
            vectors = torch.as_tensor(speaker_embeddings, dtype=self.speaker_vector.dtype)
            vectors = vectors.to(self.speaker_vector.device)
            if vectors.dim() == 1:
                vectors = vectors.unsqueeze(0)
            if vectors.shape[-1] != self.speaker_vector.shape[0]:
                raise ValueError(
                    f"speaker_embeddings have size {vectors.shape[-1]}, the model expects "
                    f"{self.speaker_vector.shape[0]} (config.speaker_dim)."
                )
            return vectors.expand(batch_size, -1) if vectors.shape[0] == 1 else vectors
        if speaker_ids is not None:
            if self.speaker_table is None:
                raise ValueError(
                    "speaker_ids were given but this model has no speaker table (config.num_speakers=0): "
                    "use a voice (forward_params={'voice': ...}) or speaker_embeddings instead."
                )
            ids = torch.as_tensor(speaker_ids, device=self.speaker_vector.device).long().view(-1)
            if ids.min() < 0 or ids.max() >= self.speaker_table.num_embeddings:
                raise ValueError(
                    f"speaker_ids must lie in [0, {self.speaker_table.num_embeddings - 1}], got {ids.tolist()}."
                )
            vectors = self.speaker_table(ids)
            return vectors.expand(batch_size, -1) if vectors.shape[0] == 1 else vectors
        return self.speaker_vector.unsqueeze(0).expand(batch_size, -1)


class MetaTTSPreTrainedModel(PreTrainedModel):
    config_class = MetaTTSConfig
    base_model_prefix = "metatts"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False

    def _init_weights(self, module):
        """Modules initialise themselves at construction (zero-initialised heads included)."""


class MetaTTSForTextToSpeech(MetaTTSPreTrainedModel):
    """Text -> waveform. ``model(input_ids, attention_mask)`` synthesises; with ``labels`` (log-mels) it
    returns the training losses. ``adapted_parameter_names()`` lists the voice's adapted parameter set."""

    def __init__(self, config: MetaTTSConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, hidden, padding_idx=config.pad_token_id)
        nn.init.normal_(self.embed_tokens.weight, std=hidden**-0.5)
        self.encoder = FeedForwardTransformer(config, config.encoder_layers, conditional=False)
        self.voice = VoiceConditioning(config)
        self.aligner = AlignmentEncoder(hidden, config.num_mel_bins, config.aligner_hidden_size,
                                        config.aligner_temperature)
        predictor_args = (hidden, config.variance_hidden_size, config.variance_kernel_size, config.variance_dropout)
        self.duration_predictor = VariancePredictor(*predictor_args)
        self.pitch_predictor = VariancePredictor(*predictor_args)
        self.energy_predictor = VariancePredictor(*predictor_args)
        self.pitch_embedding = ScalarEmbedding(hidden)
        self.energy_embedding = ScalarEmbedding(hidden)
        self.decoder = FeedForwardTransformer(config, config.decoder_layers, conditional=True)
        self.mel_head = nn.Linear(hidden, config.num_mel_bins)
        self.vocoder = build_vocoder(config)
        self.voice_encoder = self._build_voice_encoder() if config.use_voice_encoder else None
        self.post_init()

    def _build_voice_encoder(self) -> nn.Module:
        """The support encoder of ``config.voice_encoder_type`` for the adapted set (LoRA factors excluded)."""
        shapes = {name: self.get_parameter(name).shape for name in self.adapted_parameter_names()
                  if "lora_" not in name}
        if self.config.voice_encoder_type == "speaker_embedding":
            return SpeakerEmbeddingVoiceEncoder(self.config, shapes)
        return VoiceEncoder(self.config, shapes)

    def use_speaker_embedding_voice_encoder(self, speaker_encoder: nn.Module) -> None:
        """Replace the support encoder with one on ``speaker_encoder`` (a trained
        ``SpeakerIdentityEncoder``, see ``hf-metatts train-identity-encoder``), frozen, and a fresh head whose
        output starts at zero (the zero-shot voice is then the model's own until the head trains). The config
        records the change, so saved checkpoints rebuild and reload it."""
        from dataclasses import asdict

        fields = ("use_voice_encoder", "voice_encoder_type", "speaker_encoder_config")
        before = {name: getattr(self.config, name) for name in fields}
        self.config.use_voice_encoder = True
        self.config.voice_encoder_type = "speaker_embedding"
        self.config.speaker_encoder_config = {k: list(v) if isinstance(v, tuple) else v
                                              for k, v in asdict(speaker_encoder.config).items()}
        try:  # a mismatching encoder leaves the model and its config as they were
            self.config.validate_metatts()
            encoder = self._build_voice_encoder().to(next(self.parameters()).device)
            encoder.speaker_encoder.load_state_dict(speaker_encoder.state_dict(), strict=True)
        except (ValueError, RuntimeError):
            for name, value in before.items():
                setattr(self.config, name, value)
            raise
        encoder.train(self.training)
        self.voice_encoder = encoder

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, strict: a missing, truncated or corrupted weights file, or
        weights that do not fit the config (missing or unexpected keys), raise `CheckpointError` naming it.
        A voice folder or repo (with the hf_metatts package imported) loads its base with the voice applied."""
        if "hf_metatts" in sys.modules:  # voices are a plugin feature; remote code alone loads checkpoints only
            try:  # (transformers' remote-code import check skips try blocks, so the plugin stays optional)
                from hf_metatts.voice import load_voiced_model
            except ImportError:
                load_voiced_model = None
            voiced = load_voiced_model and load_voiced_model(cls, pretrained_model_name_or_path, *args, **kwargs)
            if voiced is not None:
                return voiced
        if os.path.isdir(str(pretrained_model_name_or_path)):
            _check_local_weights(str(pretrained_model_name_or_path), kwargs.get("subfolder", ""))
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                              **kwargs)
        problems = {key: sorted(info.get(key) or []) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        problems = {key: value for key, value in problems.items() if value}
        if problems:
            details = "; ".join(f"{key}: {', '.join(map(str, value[:8]))}" for key, value in problems.items())
            raise CheckpointError(
                f"The weights of {pretrained_model_name_or_path} do not match its config ({details}). The checkpoint "
                "was saved by another version or edited: re-save it with save_pretrained."
            )
        if isinstance(model.voice_encoder, SpeakerEmbeddingVoiceEncoder):
            model.voice_encoder.speaker_encoder.requires_grad_(False)  # loading makes fresh trainable parameters
        return (model, info) if want_info else model

    # ----------------------------------------------------------------------------------------------
    # The adapted parameter set
    def adapted_parameter_names(self, patterns: list[str] | None = None) -> list[str]:
        """Names (as in ``named_parameters()``) of the adapted parameter set, in a stable order.

        Args:
            patterns: fnmatch patterns; default ``config.adapted_parameters``. Explicit patterns must each
                match a parameter.

        Raises:
            ValueError: an explicit pattern matches no parameter (the message lists some valid names).
        """
        explicit = patterns is not None
        patterns = list(self.config.adapted_parameters if patterns is None else patterns)
        names = [name for name, _ in self.named_parameters() if not name.startswith("voice_encoder.")]
        selected = []
        for pattern in patterns:
            matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
            if not matched and (explicit or "lora_" not in pattern or self.config.lora_rank):
                examples = ", ".join(names[:6])
                raise ValueError(
                    f"Adapted-parameter pattern {pattern!r} matches no parameter of this model. Parameter "
                    f"names look like: {examples}, ... (see model.named_parameters())."
                )
            selected.extend(name for name in matched if name not in selected)
        return selected

    def adapted_state_dict(self) -> dict[str, torch.Tensor]:
        """Current values of the adapted parameter set (detached copies)."""
        return {name: self.get_parameter(name).detach().clone() for name in self.adapted_parameter_names()}

    def encode_voice(self, labels: torch.Tensor, labels_attention_mask: torch.Tensor | None = None):
        """Zero-shot voice from support clips: ``{name: value}`` for the adapted set (differentiable).

        Args:
            labels: ``(K, T, M)`` log-mels of K support clips; labels_attention_mask: ``(K, T)``.
        """
        if self.voice_encoder is None:
            raise ValueError("This model has no voice encoder (config.use_voice_encoder=False): adapt with steps.")
        if labels_attention_mask is None:
            labels_attention_mask = torch.ones(labels.shape[:2], dtype=torch.bool, device=labels.device)
        changes = self.voice_encoder(labels, labels_attention_mask)
        voice = {name: self.get_parameter(name) + change for name, change in changes.items()}
        for name in self.adapted_parameter_names():
            voice.setdefault(name, self.get_parameter(name))
        return voice

    @torch.no_grad()
    def compute_durations(self, input_ids, attention_mask=None, labels=None, labels_attention_mask=None, **unused):
        """The aligner's hard durations ``(B, N)`` (frames per token) for a batch with ``labels`` ``(B, T, M)``.

        With ``config.aligner_duration_weight`` 0, the aligner's most likely monotonic path. Above 0, the search
        also holds each token's log-duration near what the model's duration predictor expects for the text in the
        clips' voice, stretched to each clip's length (`expected_durations`, `duration_informed_search`).
        Neither reads the adapted parameter set, so a few-shot inner loop can compute these once and pass them as
        ``durations`` to every step.
        """
        if not self.config.aligner_duration_weight:
            hard, _, _ = self._align_batch(input_ids, attention_mask, labels, labels_attention_mask)
            return hard.sum(dim=1).long()
        text_mask, labels, mel_mask = self._batch_masks(input_ids, attention_mask, labels, labels_attention_mask)
        soft, _ = self._soft_align(input_ids, text_mask, labels, mel_mask)
        expected = self.expected_durations(input_ids, text_mask, labels, mel_mask)
        log_soft = soft.clamp(min=1e-12).log().transpose(1, 2)
        return duration_informed_search(log_soft, text_mask.sum(1), mel_mask.sum(1), expected,
                                        self.config.aligner_duration_weight, self._skippable(input_ids),
                                        max_duration=2 * self.config.max_frames_per_token)

    @torch.no_grad()
    def expected_durations(self, input_ids, attention_mask=None, labels=None, labels_attention_mask=None, **unused):
        """Frames per token ``(B, N)`` (float) that the duration predictor gives each clip's text in the clips'
        voice, stretched so each row sums to the clip's frames.

        The voice is the voice encoder's from all the batch's clips (``labels`` ``(B, T, M)``) when the model has
        one, else the model's own speaker vector: the speaker vector is the only adapted value the duration
        predictor reads.
        """
        text_mask, labels, mel_mask = self._batch_masks(input_ids, attention_mask, labels, labels_attention_mask)
        batch = input_ids.shape[0]
        if self.voice_encoder is not None:
            voice = self.encode_voice(labels, mel_mask)
            vector = voice.get("voice.speaker_vector", self.voice.speaker_vector).reshape(1, -1)
            speaker = self.voice(batch, speaker_embeddings=vector)
        else:
            speaker = self.voice(batch)
        _, encoded = self._encode(input_ids, text_mask, speaker)
        predicted = torch.expm1(self.duration_predictor(encoded, text_mask)).clamp(min=0.0) * text_mask
        scale = mel_mask.sum(1).to(predicted.dtype) / predicted.sum(1).clamp(min=1e-6)
        return predicted * scale.unsqueeze(1)

    @torch.no_grad()
    def transcript_scores(self, input_ids, attention_mask=None, labels=None, labels_attention_mask=None,
                          **unused) -> tuple[torch.Tensor, torch.Tensor]:
        """How badly each clip's text fits its audio, from one pass of the aligner (`model.adapt`'s transcript check).

        Returns ``(B,)`` forward-sum scores (the aligner's forward-sum loss per token: high for a transcript far
        too short or long for the audio) and ``(B,)`` path scores (the mean negative log attention, without the
        prior, over the frames of the most likely monotonic path: a trained aligner scores a clip read with its
        own transcript low and one read with another transcript high). The path is the one where every token takes
        a frame, whatever ``config.aligner_skippable_token_ids`` says: the check's thresholds were set on it.
        """
        hard, _, logits = self._align_batch(input_ids, attention_mask, labels, labels_attention_mask,
                                            every_token=True)
        text_mask = (input_ids.ne(self.config.pad_token_id) if attention_mask is None else attention_mask.bool())
        mel_lengths = (torch.full_like(text_mask.sum(1), labels.shape[1]) if labels_attention_mask is None
                       else labels_attention_mask.sum(1))
        forward_sum = forward_sum_loss(logits, text_mask.sum(1), mel_lengths, reduction="none")
        log_attention = torch.log_softmax(logits.masked_fill(~text_mask.unsqueeze(1), -1e9), dim=-1)
        path = -(log_attention * hard).sum(dim=(1, 2)) / hard.sum(dim=(1, 2)).clamp(min=1.0)
        return forward_sum, path

    def _align_batch(self, input_ids, attention_mask, labels, labels_attention_mask, every_token: bool = False):
        """`_align` for a collated batch whose masks may be missing: -> hard, soft, logits, each ``(B, T, N)``;
        ``every_token`` gives every token a frame whatever the config's skippable tokens."""
        text_mask, labels, mel_mask = self._batch_masks(input_ids, attention_mask, labels, labels_attention_mask)
        return self._align(input_ids, text_mask, labels, mel_mask, every_token)

    def _batch_masks(self, input_ids, attention_mask, labels, labels_attention_mask):
        """-> text mask ``(B, N)`` bool, labels ``(B, T, M)`` in the model's dtype, frame mask ``(B, T)`` bool."""
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        labels = labels.to(self.embed_tokens.weight.dtype)
        mel_mask = (torch.ones(labels.shape[:2], dtype=torch.bool, device=labels.device)
                    if labels_attention_mask is None else labels_attention_mask.bool())
        return attention_mask.bool(), labels, mel_mask

    def _align(self, input_ids, text_mask, labels, mel_mask, every_token: bool = False):
        """Soft and hard alignment: -> hard ``(B, T, N)``, soft ``(B, T, N)``, logits ``(B, T, N)``."""
        soft, logits = self._soft_align(input_ids, text_mask, labels, mel_mask)
        skippable = None if every_token else self._skippable(input_ids)
        return self._hard_align(soft, text_mask, mel_mask, skippable), soft, logits

    def _skippable(self, input_ids):
        """``(B, N)`` bool: tokens the alignment search may give no frame (``config.aligner_skippable_token_ids``),
        or None when the config names none."""
        ids = self.config.aligner_skippable_token_ids
        if not ids:
            return None
        table = torch.zeros(self.config.vocab_size, dtype=torch.bool, device=input_ids.device)
        table[torch.tensor(ids, dtype=torch.long, device=input_ids.device)] = True
        return table[input_ids]

    def _soft_align(self, input_ids, text_mask, labels, mel_mask):
        """The aligner's attention per frame: soft ``(B, T, N)`` (prior applied) and logits ``(B, T, N)``."""
        text_lengths, mel_lengths = text_mask.sum(1), mel_mask.sum(1)
        log_prior = beta_binomial_log_prior(text_lengths.cpu(), mel_lengths.cpu(), input_ids.shape[1],
                                            labels.shape[1], self.config.aligner_prior_scale).to(labels.device)
        logits, soft = self.aligner(self.embed_tokens(input_ids), labels, text_mask, log_prior)
        return soft.masked_fill(~mel_mask.unsqueeze(-1), 0.0), logits

    @staticmethod
    def _hard_align(soft, text_mask, mel_mask, skippable=None):
        """Most likely monotonic path through ``soft`` ``(B, T, N)``: -> hard ``(B, T, N)`` 0/1; tokens marked in
        ``skippable`` ``(B, N)`` may take no frame."""
        log_soft = soft.clamp(min=1e-12).log().transpose(1, 2)
        return monotonic_alignment_search(log_soft.detach(), text_mask.sum(1), mel_mask.sum(1),
                                          skippable).transpose(1, 2)

    def attach_vocoder(self, vocoder) -> None:
        """Use a `transformers.SpeechT5HifiGan` as this model's vocoder; it is saved with the checkpoint."""
        from .modeling_vocoder import SpeechT5HifiGanAdapter

        self.config.hifigan_config = vocoder.config.to_dict()
        self.config.vocoder_type = "speecht5_hifigan"
        adapter = SpeechT5HifiGanAdapter(self.config)
        adapter.hifigan.load_state_dict(vocoder.state_dict())
        self.vocoder = adapter.to(self.device)

    # ----------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        labels_attention_mask: torch.Tensor | None = None,
        pitch: torch.Tensor | None = None,
        durations: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | int | None = None,
        speaker_embeddings: torch.Tensor | None = None,
        voice=None,
        speaking_rate: float = 1.0,
        pitch_shift: float = 0.0,
        language: str | None = None,
        return_dict: bool | None = None,
    ) -> MetaTTSOutput | tuple:
        """Synthesise (no ``labels``) or compute the training losses (``labels`` given).

        Args:
            input_ids: ``(B, N)`` phoneme ids; attention_mask: ``(B, N)``.
            labels: ``(B, T, M)`` target log-mels; labels_attention_mask: ``(B, T)``.
            pitch: ``(B, T)`` frame log-F0 (natural log of Hz, 0 = unvoiced), optional.
            durations: ``(B, N)`` frames per token from phone timings; replaces the aligner when given (rows of
                -1 still use the aligner).
            speaker_ids: ``(B,)`` rows of the multi-speaker table; speaker_embeddings: ``(B, S)`` or ``(S,)``.
            voice: an adapted voice, ``{name: tensor}`` for the adapted set or an object with an
                ``adapted_parameters`` mapping (a `MetaTTSVoice`); the base weights are not changed.
            speaking_rate: > 1 speaks faster. pitch_shift: semitones (-24..24).
            language: not used here: the language is chosen when the text is phonemized.
        """
        if language is not None:
            raise ValueError(
                f"The language is chosen when the text is phonemized, before the model runs: pass "
                f"language={language!r} to the tokenizer, or preprocess_params={{'language': {language!r}}} "
                "to the text-to-speech pipeline."
            )
        if voice is not None:
            return torch.func.functional_call(
                self, _voice_parameters(voice, self), args=(input_ids,),
                kwargs=dict(attention_mask=attention_mask, labels=labels, labels_attention_mask=labels_attention_mask,
                            pitch=pitch, durations=durations, speaker_ids=speaker_ids,
                            speaker_embeddings=speaker_embeddings, speaking_rate=speaking_rate,
                            pitch_shift=pitch_shift, return_dict=return_dict),
                strict=False,
            )
        return_dict = True if return_dict is None else return_dict
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        if labels is not None:
            output = self._training_forward(input_ids, attention_mask.bool(), labels, labels_attention_mask, pitch,
                                             durations, speaker_ids, speaker_embeddings)
        else:
            output = self._synthesize(input_ids, attention_mask.bool(), speaker_ids, speaker_embeddings,
                                      float(speaking_rate), float(pitch_shift))
        return output if return_dict else output.to_tuple()

    # ----------------------------------------------------------------------------------------------
    def _encode(self, input_ids, text_mask, speaker):
        """-> token embeddings ``(B, N, H)`` and voiced encoder states ``(B, N, H)``."""
        embedded = self.embed_tokens(input_ids)
        encoded = self.encoder(embedded * math.sqrt(self.config.hidden_size), text_mask)
        encoded = encoded + self.voice.to_hidden(speaker).unsqueeze(1)
        return embedded, encoded.masked_fill(~text_mask.unsqueeze(-1), 0.0)

    def _decode(self, encoded, durations, speaker, max_frames=None):
        """Length-regulate and decode: -> log-mel ``(B, T, M)``, frame mask ``(B, T)``, frame counts ``(B,)``."""
        frames, counts = regulate_length(encoded, durations, max_frames)
        frame_mask = torch.arange(frames.shape[1], device=frames.device).unsqueeze(0) < counts.unsqueeze(1)
        decoded = self.decoder(frames, frame_mask, speaker)
        mel = self.mel_head(decoded)
        return mel.masked_fill(~frame_mask.unsqueeze(-1), SILENCE_LOG_MEL), frame_mask, counts

    def _training_forward(self, input_ids, text_mask, labels, labels_mask, pitch, durations, speaker_ids,
                          speaker_embeddings):
        config = self.config
        batch = input_ids.shape[0]
        labels = labels.to(self.embed_tokens.weight.dtype)
        mel_mask = (torch.ones(labels.shape[:2], dtype=torch.bool, device=labels.device)
                    if labels_mask is None else labels_mask.bool())
        text_lengths, mel_lengths = text_mask.sum(1), mel_mask.sum(1)
        if (mel_lengths < text_lengths).any():
            raise ValueError("Each clip needs at least as many mel frames as phoneme tokens: a clip is too short "
                             "for its transcript.")
        speaker = self.voice(batch, speaker_ids, speaker_embeddings)
        _, encoded = self._encode(input_ids, text_mask, speaker)
        losses = {}
        durations, hard = self._training_durations(input_ids, text_mask, labels, mel_mask, durations, losses)
        frames_per_token = durations.clamp(min=1).to(labels.dtype)
        token_energy = torch.einsum("btn,bt->bn", hard, labels.mean(-1) * mel_mask) / frames_per_token
        log_duration_pred = self.duration_predictor(encoded, text_mask)
        pitch_pred = self.pitch_predictor(encoded, text_mask)
        energy_pred = self.energy_predictor(encoded, text_mask)
        if pitch is not None:
            voiced = (pitch > 0) & mel_mask
            normalised = torch.where(voiced, (pitch - config.pitch_mean) / config.pitch_std, torch.zeros_like(pitch))
            voiced_frames = torch.einsum("btn,bt->bn", hard, voiced.to(labels.dtype))
            token_pitch = torch.einsum("btn,bt->bn", hard, normalised.to(labels.dtype)) / voiced_frames.clamp(min=1)
            losses["pitch"] = _masked_mse(pitch_pred, token_pitch, text_mask)
        else:
            token_pitch = pitch_pred.detach()
        conditioned = encoded + self.pitch_embedding(token_pitch) + self.energy_embedding(token_energy)
        mel, _, _ = self._decode(conditioned, durations, speaker, max_frames=labels.shape[1])
        losses["mel"] = (mel - labels).abs().mean(-1).masked_select(mel_mask).mean()
        losses["duration"] = _masked_mse(log_duration_pred, torch.log1p(durations.to(labels.dtype)), text_mask)
        losses["energy"] = _masked_mse(energy_pred, token_energy, text_mask)
        weights = {"mel": config.mel_loss_weight, "duration": config.duration_loss_weight,
                   "pitch": config.pitch_loss_weight, "energy": config.energy_loss_weight,
                   "alignment": config.alignment_loss_weight, "alignment_given": config.alignment_loss_weight,
                   "bin": config.bin_loss_weight}
        loss = sum(weights[name] * value for name, value in losses.items())
        return MetaTTSOutput(loss=loss, losses=losses, spectrogram=mel, durations=durations)

    def _training_durations(self, input_ids, text_mask, labels, mel_mask, durations, losses):
        """Frames per token ``(B, N)`` and the hard path ``(B, T, N)`` for a training batch; adds the aligner's losses.

        Rows of ``durations`` (from phone timings) are used as given and teach the aligner directly: the
        ``alignment_given`` loss is the negative log attention on the given path. Rows that are -1 (or all rows
        when ``durations`` is None) take the aligner's monotonic path and the unsupervised forward-sum and
        binarisation losses.
        """
        text_lengths, mel_lengths = text_mask.sum(1), mel_mask.sum(1)
        if durations is None:
            missing = torch.ones(input_ids.shape[0], dtype=torch.bool, device=labels.device)
            durations = torch.zeros_like(input_ids)
        else:
            durations = durations.to(labels.device).long()
            missing = (durations < 0).any(dim=1)
            durations = durations.clamp(min=0) * text_mask
            given_sums, given_lengths = durations.sum(1)[~missing], mel_lengths[~missing]
            if not torch.equal(given_sums, given_lengths):
                raise ValueError("Given durations must sum to each clip's number of mel frames "
                                 f"({given_lengths.tolist()}), got {given_sums.tolist()}.")
        hard = _durations_to_path(durations, labels.shape[1]).to(labels.dtype)
        if not missing.any() and not self.training:  # e.g. a few-shot inner loop with durations found once
            return durations, hard
        soft, logits = self._soft_align(input_ids, text_mask, labels, mel_mask)
        if missing.any():
            skippable = self._skippable(input_ids)
            found = self._hard_align(soft[missing], text_mask[missing], mel_mask[missing],
                                     None if skippable is None else skippable[missing]).to(labels.dtype)
            hard[missing] = found
            durations[missing] = found.sum(dim=1).long()
            losses["alignment"] = forward_sum_loss(logits[missing], text_lengths[missing], mel_lengths[missing])
            losses["bin"] = bin_loss(found, soft[missing])
        if not missing.all():
            losses["alignment_given"] = bin_loss(hard[~missing], soft[~missing])
        return durations, hard

    # ----------------------------------------------------------------------------------------------
    def _sentence_end_ids(self) -> set[int]:
        ids = {DEFAULT_SYMBOLS.index(ch) for ch in SENTENCE_END if ch in DEFAULT_SYMBOLS}
        return {index for index in ids if index < self.config.vocab_size}

    def _split_long_input(self, ids: list[int]) -> list[list[int]]:
        """Split one text's ids at sentence ends into chunks of at most ``config.max_chunk_tokens``.

        Sentences are merged while they fit; a sentence longer than the limit is split at word boundaries
        (then, if a single word is longer still, at the limit). Nothing is dropped.
        """
        limit = self.config.max_chunk_tokens
        enders = self._sentence_end_ids()
        boundary = DEFAULT_SYMBOLS.index(WORD_BOUNDARY)
        sentences, current = [], []
        for token in ids:
            current.append(token)
            if token in enders:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        pieces = []
        for sentence in sentences:
            while len(sentence) > limit:
                cut = max((i for i in range(1, limit) if sentence[i] == boundary), default=limit)
                pieces.append(sentence[:cut])
                sentence = sentence[cut:]
            pieces.append(sentence)
        chunks, current = [], []
        for piece in pieces:
            if current and len(current) + len(piece) > limit:
                chunks.append(current)
                current = []
            current = current + piece
        if current:
            chunks.append(current)
        return [chunk for chunk in chunks if any(t != boundary for t in chunk)] or [ids]

    @torch.no_grad()
    def _acoustic_inference(self, input_ids, text_mask, speaker, speaking_rate, pitch_shift):
        """-> log-mels ``(B, T, M)`` and frame counts ``(B,)`` and durations ``(B, N)``."""
        config = self.config
        _, encoded = self._encode(input_ids, text_mask, speaker)
        log_duration = self.duration_predictor(encoded, text_mask)
        durations = torch.round(torch.expm1(log_duration).clamp(min=0) / speaking_rate)
        durations = durations.clamp(max=config.max_frames_per_token).long() * text_mask
        empty = durations.sum(1) == 0
        durations[empty, 0] = 1
        pitch = self.pitch_predictor(encoded, text_mask)
        if pitch_shift:
            pitch = pitch + pitch_shift * math.log(2.0) / 12.0 / config.pitch_std
        energy = self.energy_predictor(encoded, text_mask)
        conditioned = encoded + self.pitch_embedding(pitch) + self.energy_embedding(energy)
        mel, _, counts = self._decode(conditioned, durations, speaker)
        return mel, counts, durations

    @torch.no_grad()
    def _synthesize(self, input_ids, text_mask, speaker_ids, speaker_embeddings, speaking_rate, pitch_shift):
        config = self.config
        if not speaking_rate > 0 or not math.isfinite(speaking_rate):
            raise ValueError(f"speaking_rate must be a positive number (1.0 = normal), got {speaking_rate}.")
        if not -24.0 <= pitch_shift <= 24.0:
            raise ValueError(f"pitch_shift is in semitones and must lie in [-24, 24], got {pitch_shift}.")
        batch = input_ids.shape[0]
        speaker = self.voice(batch, speaker_ids, speaker_embeddings)
        chunks, owners = [], []
        for index in range(batch):
            ids = input_ids[index][text_mask[index]].tolist()
            if not ids:
                raise ValueError(f"Item {index} of the batch has no tokens: give non-empty text.")
            for chunk in self._split_long_input(ids):
                chunks.append(chunk)
                owners.append(index)
        mels, waves, all_durations = [], [], []
        for start in range(0, len(chunks), INFERENCE_CHUNK_BATCH):
            group = chunks[start : start + INFERENCE_CHUNK_BATCH]
            group_owners = torch.tensor(owners[start : start + INFERENCE_CHUNK_BATCH], device=input_ids.device)
            longest = max(len(chunk) for chunk in group)
            ids = torch.full((len(group), longest), config.pad_token_id, dtype=torch.long, device=input_ids.device)
            mask = torch.zeros(len(group), longest, dtype=torch.bool, device=input_ids.device)
            for row, chunk in enumerate(group):
                ids[row, : len(chunk)] = torch.tensor(chunk, device=input_ids.device)
                mask[row, : len(chunk)] = True
            mel, counts, durations = self._acoustic_inference(ids, mask, speaker[group_owners], speaking_rate,
                                                              pitch_shift)
            for row in range(len(group)):
                frames = int(counts[row])
                mels.append(mel[row, :frames])
                # Each chunk is vocoded at its own length, so batching never changes the audio.
                waves.append(self.vocoder(mel[row : row + 1, :frames])[0])
                all_durations.append(durations[row, : len(group[row])])
        pause_frames = int(round(config.sentence_pause_seconds * config.frames_per_second))
        per_item_mels = [[] for _ in range(batch)]
        per_item_waves = [[] for _ in range(batch)]
        per_item_durations = [[] for _ in range(batch)]
        for owner, mel, wave, durations in zip(owners, mels, waves, all_durations):
            if per_item_mels[owner] and pause_frames:
                per_item_mels[owner].append(mel.new_full((pause_frames, mel.shape[1]), SILENCE_LOG_MEL))
                per_item_waves[owner].append(wave.new_zeros(pause_frames * config.hop_length))
            per_item_mels[owner].append(mel)
            per_item_waves[owner].append(wave)
            per_item_durations[owner].append(durations)
        item_mels = [torch.cat(parts) for parts in per_item_mels]
        item_waves = [torch.cat(parts) for parts in per_item_waves]
        spectrogram = nn.utils.rnn.pad_sequence(item_mels, batch_first=True, padding_value=SILENCE_LOG_MEL)
        padded_waveform = nn.utils.rnn.pad_sequence(item_waves, batch_first=True)
        durations = nn.utils.rnn.pad_sequence([torch.cat(parts) for parts in per_item_durations], batch_first=True)
        if batch == 1:
            waveform = padded_waveform
        else:
            waveform = torch.nested.nested_tensor(item_waves, layout=torch.jagged)
        return MetaTTSOutput(
            waveform=waveform,
            waveform_lengths=torch.tensor([len(w) for w in item_waves], device=input_ids.device),
            padded_waveform=padded_waveform,
            spectrogram=spectrogram,
            spectrogram_lengths=torch.tensor([len(m) for m in item_mels], device=input_ids.device),
            durations=durations,
        )

    def adapt(self, clips, **kwargs):
        """Few-shot voice adaptation: (audio, transcript) pairs or a `datasets.Dataset` -> a `MetaTTSVoice`;
        this model's weights are not changed. See `hf_metatts.voice_adapt.adapt_model` for the arguments."""
        try:  # plugin-only feature (a try block, so remote code does not require the package)
            from hf_metatts.voice import adapt_model
        except ImportError as error:
            raise ImportError("model.adapt needs the hf-metatts package: pip install hf-metatts.") from error
        return adapt_model(self, clips, **kwargs)


def _check_local_weights(folder: str, subfolder: str = "") -> None:
    """Raise `CheckpointError` naming the file when a local checkpoint's weights are missing or unreadable."""
    from safetensors import safe_open

    folder = os.path.join(folder, subfolder) if subfolder else folder
    single = os.path.join(folder, SAFE_WEIGHTS_NAME)
    index = os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(index):
        import json

        with open(index, encoding="utf-8") as handle:
            files = sorted(set(json.load(handle)["weight_map"].values()))
        paths = [os.path.join(folder, name) for name in files]
    elif os.path.isfile(single):
        paths = [single]
    else:
        raise CheckpointError(
            f"{folder} has no {SAFE_WEIGHTS_NAME}: the checkpoint is incomplete. Save it again with "
            "`model.save_pretrained(...)` or download it again."
        )
    for path in paths:
        if not os.path.isfile(path):
            raise CheckpointError(f"Weights file {path} is missing: the checkpoint is incomplete.")
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as error:
            raise CheckpointError(
                f"Weights file {path} is corrupted or truncated ({error}). Save or download the checkpoint again."
            ) from error


def _masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction.masked_select(mask), target.masked_select(mask))


def _durations_to_path(durations: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B, N)`` frames per token -> ``(B, T, N)`` 0/1 alignment."""
    ends = durations.cumsum(1)
    starts = ends - durations
    frames = torch.arange(num_frames, device=durations.device).view(1, -1, 1)
    return ((frames >= starts.unsqueeze(1)) & (frames < ends.unsqueeze(1))).float()


def _voice_parameters(voice, model) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` mapping of a voice argument, checked against the model's parameters."""
    check = getattr(voice, "check_compatible", None)
    if callable(check):  # a MetaTTSVoice refuses a base other than its own (weight fingerprint)
        check(model)
    params = getattr(voice, "adapted_parameters", voice)
    if not isinstance(params, Mapping):
        raise TypeError("voice must be a MetaTTSVoice or a mapping {parameter name: tensor}.")
    own = dict(model.named_parameters())
    converted = {}
    for name, value in params.items():
        if name not in own:
            raise ValueError(f"The voice holds {name!r}, which this model does not have: it was made for another "
                             "architecture.")
        value = torch.as_tensor(value)
        if value.shape != own[name].shape:
            raise ValueError(f"The voice's {name!r} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(own[name].shape)}.")
        converted[name] = value.to(device=own[name].device, dtype=own[name].dtype)
    base = model.__dict__.get("_metatts_base")
    if base is not None:  # a voiced view whose voice reaches beyond the adapted set: the rest speaks as the base
        base_params = dict(base.named_parameters())
        for name, value in own.items():
            if name not in converted and value is not base_params[name]:
                converted[name] = base_params[name].detach().to(device=value.device, dtype=value.dtype)
    return converted


__all__ = ["MetaTTSForTextToSpeech", "MetaTTSPreTrainedModel", "MetaTTSOutput"]
