"""A toy TTS model with the MetaTTS call contract, synthetic task splits, and checks of the toy itself.

Other ``test_meta_*`` files import the helpers from here (``from test_meta_toy import ...``).
"""

import fnmatch
from dataclasses import dataclass

import datasets
import numpy as np
import pytest
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

N_MELS = 4


class ToyTTSConfig(PretrainedConfig):
    model_type = "toy_meta_tts"

    def __init__(self, vocab_size=12, hidden_size=8, num_mel_bins=N_MELS, num_speakers=0, use_voice_encoder=False,
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_size, self.num_mel_bins = vocab_size, hidden_size, num_mel_bins
        self.num_speakers, self.use_voice_encoder, self.dropout = num_speakers, use_voice_encoder, dropout


@dataclass
class ToyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    losses: dict | None = None


class ToyTTS(PreTrainedModel):
    """text (B,N) + voice -> one mel frame repeated over T; loss = masked MSE to labels (B,T,M)."""

    config_class = ToyTTSConfig
    base_model_prefix = "toy"
    ADAPTED = ("voice.speaker", "cond_norm.scale", "cond_norm.bias")

    def __init__(self, config):
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, h)
        self.voice = nn.Module()
        self.voice.speaker = nn.Parameter(torch.zeros(h))
        self.cond_norm = nn.Module()
        self.cond_norm.scale = nn.Parameter(torch.zeros(h))
        self.cond_norm.bias = nn.Parameter(torch.zeros(h))
        self.proj = nn.Linear(h, h)
        self.out = nn.Linear(h, config.num_mel_bins)
        self.dropout = nn.Dropout(config.dropout)
        if config.num_speakers > 0:
            self.speakers = nn.Embedding(config.num_speakers, h)
        if config.use_voice_encoder:
            self.voice_encoder = nn.Linear(config.num_mel_bins, h)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.3)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def adapted_parameter_names(self, patterns=None):
        names = [n for n, _ in self.named_parameters()]
        if not patterns:
            return list(self.ADAPTED)
        unknown = [p for p in patterns if not fnmatch.filter(names, p)]
        if unknown:
            raise ValueError(f"patterns {unknown} match no parameter")
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]

    def encode_voice(self, labels, labels_attention_mask):
        mask = labels_attention_mask.unsqueeze(-1).to(labels.dtype)
        mean = (labels * mask).sum(1) / mask.sum(1).clamp_min(1)
        return {"voice.speaker": torch.tanh(self.voice_encoder(mean)).mean(0)}

    def forward(self, input_ids, attention_mask, labels, labels_attention_mask, pitch=None, speaker_ids=None):
        mask = attention_mask.unsqueeze(-1).float()
        text = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1)
        voice = self.voice.speaker
        if speaker_ids is not None and self.config.num_speakers > 0:
            voice = voice + self.speakers(speaker_ids)
        z = torch.tanh(self.proj(self.dropout(text + voice)))
        z = z * (1 + self.cond_norm.scale) + self.cond_norm.bias
        frame = self.out(z)  # (B, M)
        err = ((frame.unsqueeze(1) - labels) ** 2).mean(-1)  # (B, T)
        fmask = labels_attention_mask.float()
        loss = (err * fmask).sum() / fmask.sum()
        return ToyOutput(loss=loss, losses={"mel": loss})


def toy_model(seed=0, **kwargs) -> ToyTTS:
    torch.manual_seed(seed)
    return ToyTTS(ToyTTSConfig(**kwargs))


def toy_dataset(num_speakers=6, per_speaker=10, seed=0, task_column="speaker_id", spread=1.5) -> datasets.Dataset:
    """Each speaker has its own mean mel frame; utterances = that mean + noise, 3..8 frames."""
    rng = np.random.default_rng(seed)
    rows = {task_column: [], "input_ids": [], "labels": []}
    for s in range(num_speakers):
        mean = rng.normal(0, spread, size=N_MELS)
        for _ in range(per_speaker):
            n, t = int(rng.integers(2, 6)), int(rng.integers(3, 9))
            rows[task_column].append(f"spk{s}")
            rows["input_ids"].append(rng.integers(1, 12, size=n).tolist())
            rows["labels"].append((mean + 0.1 * rng.normal(size=(t, N_MELS))).astype(np.float32).tolist())
    return datasets.Dataset.from_dict(rows)


def toy_collator(rows):
    """Rows -> padded batch: input_ids (B,N), attention_mask (B,N), labels (B,T,M), labels_attention_mask (B,T)."""
    b = len(rows)
    n = max(len(r["input_ids"]) for r in rows)
    t = max(len(r["labels"]) for r in rows)
    ids = torch.zeros(b, n, dtype=torch.long)
    am = torch.zeros(b, n, dtype=torch.long)
    labels = torch.zeros(b, t, N_MELS)
    lm = torch.zeros(b, t, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        am[i, : len(r["input_ids"])] = 1
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
        lm[i, : len(r["labels"])] = 1
    return {"input_ids": ids, "attention_mask": am, "labels": labels, "labels_attention_mask": lm}


def toy_batch(speaker=0, n=4, seed=0):
    ds = toy_dataset(seed=seed)
    rows = [ds[i] for i in range(speaker * 10, speaker * 10 + n)]
    return toy_collator(rows)


# ------------------------------------------------------------------------------------------------ checks
def test_toy_contract_functional_call_matches_forward():
    model = toy_model()
    batch = toy_batch()
    names = model.adapted_parameter_names()
    params = {n: p.detach().clone() for n, p in model.named_parameters() if n in names}
    via_call = torch.func.functional_call(model, params, args=(), kwargs=batch).loss
    assert torch.allclose(via_call, model(**batch).loss)
    assert model.adapted_parameter_names(["voice.*"]) == ["voice.speaker"]
    with pytest.raises(ValueError):
        model.adapted_parameter_names(["nope.*"])
