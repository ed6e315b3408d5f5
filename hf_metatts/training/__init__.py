"""Training what the checkpoint owns besides the acoustic model: the neural vocoder (`train_vocoder`)."""

from .vocoder import VocoderTrainingArguments, train_vocoder

__all__ = ["VocoderTrainingArguments", "train_vocoder"]
