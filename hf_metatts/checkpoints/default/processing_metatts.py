"""MetaTTSProcessor: the phoneme tokenizer and the mel feature extractor behind one call.

``processor(text=..., language="de")`` gives model inputs; ``processor(text=..., audio=..., sampling_rate=sr)``
gives training examples (``input_ids``, ``labels`` log-mels, ``labels_attention_mask`` and, with
``return_pitch=True``, frame ``pitch``), ready for ``datasets.map`` and `MetaTTSDataCollator`.

This file travels with saved checkpoints (remote code).
"""

from transformers import ProcessorMixin


class MetaTTSProcessor(ProcessorMixin):
    """Wraps a `MetaTTSTokenizer` and a `MetaTTSFeatureExtractor`."""

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, text=None, audio=None, sampling_rate=None, language=None, return_pitch=False,
                 return_tensors=None, **kwargs):
        """Tokenize ``text`` and/or featurize ``audio`` (the training target).

        Returns a `BatchEncoding` with ``input_ids`` / ``attention_mask`` for text and ``labels``
        ``(B, T, M)`` / ``labels_attention_mask`` ``(B, T)`` (/ ``pitch`` ``(B, T)``) for audio.
        """
        if text is None and audio is None:
            raise ValueError("Give `text` (to synthesise) and/or `audio` (its recording, for training).")
        outputs = None
        if text is not None:
            outputs = self.tokenizer(text, language=language, return_tensors=return_tensors, **kwargs)
        if audio is not None:
            features = self.feature_extractor(audio, sampling_rate=sampling_rate, return_pitch=return_pitch,
                                              return_tensors=return_tensors)
            targets = {"labels": features["input_features"], "labels_attention_mask": features["attention_mask"]}
            if return_pitch:
                targets["pitch"] = features["pitch"]
            if outputs is None:
                from transformers import BatchFeature

                return BatchFeature(targets, tensor_type=return_tensors)
            outputs.update(targets)
        return outputs

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self):
        return list(self.tokenizer.model_input_names)


__all__ = ["MetaTTSProcessor"]
