"""Registers the MetaTTS classes with the transformers Auto classes, once per process."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForTextToWaveform,
    AutoProcessor,
    AutoTokenizer,
)

from .configuration_metatts import MetaTTSConfig
from .feature_extraction_metatts import MetaTTSFeatureExtractor
from .modeling_metatts import MetaTTSForTextToSpeech
from .pipeline_integration import register_text_to_speech_pipeline
from .processing_metatts import MetaTTSProcessor
from .tokenization_metatts import MetaTTSTokenizer

_REGISTERED = False


def register_auto_classes() -> None:
    """Make ``AutoConfig``, ``AutoModel(ForTextToWaveform)``, ``AutoTokenizer``, ``AutoFeatureExtractor``
    and ``AutoProcessor`` resolve ``model_type="metatts"``; mark the classes so that ``save_pretrained``
    writes ``auto_map`` and the remote-code files (``trust_remote_code=True`` then loads without this package);
    let the text-to-speech pipeline pass ``forward_params={"language": ...}`` to MetaTTS phonemization.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    AutoConfig.register(MetaTTSConfig.model_type, MetaTTSConfig, exist_ok=True)
    AutoModel.register(MetaTTSConfig, MetaTTSForTextToSpeech, exist_ok=True)
    AutoModelForTextToWaveform.register(MetaTTSConfig, MetaTTSForTextToSpeech, exist_ok=True)
    AutoTokenizer.register(MetaTTSConfig, slow_tokenizer_class=MetaTTSTokenizer, exist_ok=True)
    AutoFeatureExtractor.register(MetaTTSConfig, MetaTTSFeatureExtractor, exist_ok=True)
    AutoProcessor.register(MetaTTSConfig, MetaTTSProcessor, exist_ok=True)
    MetaTTSConfig.register_for_auto_class()
    MetaTTSForTextToSpeech.register_for_auto_class("AutoModelForTextToWaveform")
    MetaTTSTokenizer.register_for_auto_class("AutoTokenizer")
    MetaTTSFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    MetaTTSProcessor.register_for_auto_class("AutoProcessor")
    register_text_to_speech_pipeline()
    _REGISTERED = True
