"""Tiny MetaTTS configurations and checkpoints for fast tests."""

import hf_metatts

TINY_CONFIG = dict(
    hidden_size=32,
    ffn_dim=64,
    encoder_layers=1,
    decoder_layers=1,
    num_attention_heads=2,
    variance_hidden_size=16,
    aligner_hidden_size=16,
    speaker_dim=8,
    voice_encoder_hidden_size=16,
    vocoder_hidden_size=16,
    vocoder_intermediate_size=32,
    vocoder_layers=1,
    griffin_lim_iters=4,
    dropout=0.0,
    attention_dropout=0.0,
    variance_dropout=0.0,
)


def tiny_config(**overrides) -> hf_metatts.MetaTTSConfig:
    return hf_metatts.MetaTTSConfig(**{**TINY_CONFIG, **overrides})


def tiny_model(frames_per_token: float = 3.0, **overrides) -> hf_metatts.MetaTTSForTextToSpeech:
    """A tiny random model whose duration predictor says ``frames_per_token`` for every token, so that
    its audio length follows its text length (a random model otherwise predicts near-zero durations)."""
    import math

    import torch

    model = hf_metatts.MetaTTSForTextToSpeech(tiny_config(**overrides)).eval()
    with torch.no_grad():
        model.duration_predictor.head.weight.zero_()
        model.duration_predictor.head.bias.fill_(math.log1p(frames_per_token))
    return model


def tiny_processor(config=None) -> hf_metatts.MetaTTSProcessor:
    config = config or tiny_config()
    return hf_metatts.MetaTTSProcessor(
        hf_metatts.MetaTTSFeatureExtractor.from_model_config(config), hf_metatts.MetaTTSTokenizer()
    )


def save_tiny_checkpoint(path, **overrides):
    """Save a tiny model with its processor (tokenizer + feature extractor) to ``path``; return the model."""
    model = tiny_model(**overrides)
    model.save_pretrained(path)
    tiny_processor(model.config).save_pretrained(path)
    return model


def tiny_support_batch(model, seed: int = 0) -> dict:
    """A random 2-utterance support batch for ``model`` (6 tokens, 24 mel frames each)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 20, (2, 6), generator=generator),
            "attention_mask": torch.ones(2, 6, dtype=torch.long),
            "labels": torch.randn(2, 24, model.config.num_mel_bins, generator=generator) - 4.0,
            "labels_attention_mask": torch.ones(2, 24, dtype=torch.long)}
