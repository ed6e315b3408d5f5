"""Mel-cepstral distortion (dB) between paired utterances of the same text, frames aligned by DTW."""

import dataclasses

import datasets
import evaluate
import numpy as np

from hf_metatts.evaluation.audio import AudioInputsMetricMixin, audio_feature
from hf_metatts.evaluation.mcd import MCD_SETTINGS, mel_cepstral_distortion

_DESCRIPTION = """
Mel-cepstral distortion in dB between each prediction and the reference at the same index, which must
say the same text: 10/ln(10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2), c_0 excluded, averaged over the
frame pairs of a DTW alignment. Mel-cepstra: WORLD CheapTrick envelope (pyworld) -> pysptk.sp2mc,
order 24, alpha 0.41, 16 kHz, 5 ms frames, leading/trailing silence (30 dB below peak) trimmed.
Lower is better; 0 for identical audio.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: synthesised utterances: file paths, lists/arrays of samples, or
        {"array": ..., "sampling_rate": ...} dicts.
    references: real utterances of the same texts, same forms, paired by index.
    sampling_rate: rate (Hz) of raw-sample predictions (and references unless given below).
    references_sampling_rate: rate (Hz) of raw-sample references when it differs.
    order, alpha, frame_period_ms, trim_top_db: analysis settings (defaults 24, 0.41 at 16 kHz, 5.0, 30.0).
Returns:
    mel_cepstral_distortion: mean MCD over pairs, in dB (>= 0).
    scores: MCD of each pair, in dB.
Examples:
    >>> metric = hf_metatts.evaluation.load_metric("mel_cepstral_distortion")
    >>> metric.compute(predictions=["synth.wav"], references=["real.wav"])
    {'mel_cepstral_distortion': 6.8, 'scores': [6.8]}
"""

_CITATION = """
@inproceedings{kubichek1993mel,
  title={Mel-cepstral distance measure for objective speech quality assessment},
  author={Kubichek, Robert},
  booktitle={IEEE Pacific Rim Conference on Communications Computers and Signal Processing}, year={1993}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MelCepstralDistortion(AudioInputsMetricMixin, evaluate.Metric):
    """Mean DTW-aligned mel-cepstral distortion in dB."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": audio_feature(), "references": audio_feature()}),
            reference_urls=[
                "https://github.com/r9y9/pysptk",
                "https://github.com/JeremyCCHsu/Python-Wrapper-for-World-Vocoder",
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        order=MCD_SETTINGS.order,
        alpha=MCD_SETTINGS.alpha,
        frame_period_ms=MCD_SETTINGS.frame_period_ms,
        trim_top_db=MCD_SETTINGS.trim_top_db,
    ):
        settings = dataclasses.replace(
            MCD_SETTINGS, order=order, alpha=alpha, frame_period_ms=frame_period_ms, trim_top_db=trim_top_db
        )
        scores = mel_cepstral_distortion(list(references), list(predictions), settings=settings)
        return {"mel_cepstral_distortion": float(np.mean(scores)), "scores": [float(s) for s in scores]}
