"""hf-metatts: text-to-speech that learns a new voice, language or style from a few utterances.

Importing the package registers the MetaTTS classes with the transformers Auto classes, so
``pipeline("text-to-speech", model=...)`` loads MetaTTS checkpoints.
"""

import logging
import warnings
from pathlib import Path

from .configuration_metatts import MetaTTSConfig
from .errors import CheckpointError, InvalidAudioError, InvalidTextError, MetaTTSError, UnsupportedLanguageError
from .feature_extraction_metatts import MetaTTSFeatureExtractor, load_audio
from .modeling_metatts import MetaTTSForTextToSpeech, MetaTTSOutput, MetaTTSPreTrainedModel
from .processing_metatts import MetaTTSProcessor
from .registration import register_auto_classes
from .tokenization_metatts import MetaTTSTokenizer, phonemize, supported_languages
from .voice import MetaTTSVoice
from .voice_validation import ClipValidation

# pyworld 0.3.x (pitch targets, WORLD perturbations) and pysptk (mel-cepstra), imported where they are used, import
# pkg_resources, whose deprecation notice was printed by every command that reads clips or measures MCD; setup.py
# pins setuptools<81, which still ships pkg_resources.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API", category=UserWarning,
                        module=r"(pyworld|pysptk)(\.|$)")

__version__ = "0.1.0.dev0"

#: The bundled meta-trained base checkpoint (acoustic model + neural vocoder + meta-learner), loadable offline:
#: ``MetaTTSForTextToSpeech.from_pretrained(DEFAULT_CHECKPOINT)`` or ``pipeline("text-to-speech", model=...)``.
DEFAULT_CHECKPOINT = str(Path(__file__).resolve().parent / "checkpoints" / "default")

logging.getLogger(__name__).addHandler(logging.NullHandler())
register_auto_classes()

__all__ = [
    "MetaTTSConfig",
    "MetaTTSForTextToSpeech",
    "MetaTTSPreTrainedModel",
    "MetaTTSOutput",
    "MetaTTSTokenizer",
    "MetaTTSFeatureExtractor",
    "MetaTTSProcessor",
    "MetaTTSVoice",
    "ClipValidation",
    "MetaTTSError",
    "InvalidTextError",
    "InvalidAudioError",
    "UnsupportedLanguageError",
    "CheckpointError",
    "phonemize",
    "supported_languages",
    "load_audio",
    "__version__",
    "DEFAULT_CHECKPOINT",
]
