"""Lets ``forward_params={"language": ...}`` choose the phonemization language of MetaTTS models in the
stock text-to-speech pipeline.

The language decides how text becomes phonemes, which happens in the pipeline's preprocessing, before the
model's forward. This subclass of `TextToAudioPipeline` moves a ``language`` forward parameter into the
preprocessing parameters for MetaTTS models only; every other model runs exactly as before.
"""

from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.text_to_audio import TextToAudioPipeline

METATTS_MODEL_TYPE = "metatts"
TASK = "text-to-audio"  # "text-to-speech" is its alias


class TextToAudioPipelineWithLanguage(TextToAudioPipeline):
    """`TextToAudioPipeline` where a MetaTTS model's ``forward_params["language"]`` reaches the tokenizer."""

    def _sanitize_parameters(self, preprocess_params=None, forward_params=None, generate_kwargs=None, **kwargs):
        is_metatts = getattr(self.model.config, "model_type", None) == METATTS_MODEL_TYPE
        if is_metatts and forward_params and "language" in forward_params:
            forward_params = dict(forward_params)
            preprocess_params = {**(preprocess_params or {}), "language": forward_params.pop("language")}
        return super()._sanitize_parameters(preprocess_params, forward_params, generate_kwargs, **kwargs)


def register_text_to_speech_pipeline() -> None:
    """Serve the text-to-speech task with `TextToAudioPipelineWithLanguage` (same models, same defaults)."""
    PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] = TextToAudioPipelineWithLanguage
