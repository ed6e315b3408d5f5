"""Speaker similarity: cosine between resemblyzer speaker embeddings of paired utterances."""

import datasets
import evaluate
import numpy as np

from hf_metatts.evaluation.audio import AudioInputsMetricMixin, audio_feature
from hf_metatts.evaluation.speaker import speaker_similarity

_DESCRIPTION = """
Cosine similarity, in [-1, 1], between the speaker embeddings (resemblyzer GE2E encoder, 256-d, 16 kHz)
of each prediction and the reference at the same index. Higher means the prediction sounds more like
the reference speaker: about 0.85 to 0.92 for the same voice saying another sentence, 0.45 to 0.77
between different voices.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: synthesised utterances: file paths, lists/arrays of samples, or
        {"array": ..., "sampling_rate": ...} dicts.
    references: real utterances of the target speakers, same forms, paired by index.
    sampling_rate: rate (Hz) of raw-sample predictions (and references unless given below).
    references_sampling_rate: rate (Hz) of raw-sample references when it differs.
Returns:
    speaker_similarity: mean cosine over pairs, in [-1, 1].
    scores: cosine of each pair.
Examples:
    >>> metric = hf_metatts.evaluation.load_metric("speaker_similarity")
    >>> metric.compute(predictions=["synth.wav"], references=["real.wav"])
    {'speaker_similarity': 0.87, 'scores': [0.87]}
"""

_CITATION = """
@inproceedings{wan2018generalized,
  title={Generalized End-to-End Loss for Speaker Verification},
  author={Wan, Li and Wang, Quan and Papir, Alan and Moreno, Ignacio Lopez},
  booktitle={ICASSP}, year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeakerSimilarity(AudioInputsMetricMixin, evaluate.Metric):
    """Mean cosine similarity of speaker embeddings, in [-1, 1]."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": audio_feature(), "references": audio_feature()}),
            reference_urls=["https://github.com/resemble-ai/Resemblyzer"],
        )

    def _compute(self, predictions, references):
        scores = speaker_similarity(list(references), list(predictions))
        return {"speaker_similarity": float(np.mean(scores)), "scores": [float(s) for s in scores]}
