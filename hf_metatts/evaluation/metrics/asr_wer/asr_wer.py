"""Word error rate of an offline speech recogniser (PocketSphinx, US English) on synthesised speech."""

import datasets
import evaluate

from hf_metatts.evaluation.asr import asr_word_error_rate
from hf_metatts.evaluation.audio import AudioInputsMetricMixin, audio_feature

_DESCRIPTION = """
Transcribes each predicted utterance with PocketSphinx 5 (US English model shipped in its pip package,
16 kHz, offline) and scores the transcripts against the reference texts with jiwer, after the same
normalisation of both (lower case, punctuation removed, in-word apostrophes kept). Corpus WER:
(substitutions + deletions + insertions) / reference words; 0 is perfect and it can exceed 1.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: synthesised utterances: file paths, lists/arrays of samples, or
        {"array": ..., "sampling_rate": ...} dicts.
    references: the texts they should say (numbers written as words), paired by index.
    sampling_rate: rate (Hz) of raw-sample predictions.
Returns:
    wer: corpus word error rate (>= 0).
    per_utterance: WER of each utterance.
    transcripts: what the recogniser heard.
Examples:
    >>> metric = hf_metatts.evaluation.load_metric("asr_wer")
    >>> metric.compute(predictions=["synth.wav"], references=["the birch canoe slid on the smooth planks"])
    {'wer': 0.125, 'per_utterance': [0.125], 'transcripts': ['the birch canoe slid on the smooth planks']}
"""

_CITATION = """
@inproceedings{huggins2006pocketsphinx,
  title={PocketSphinx: A Free, Real-Time Continuous Speech Recognition System for Hand-Held Devices},
  author={Huggins-Daines, David and Kumar, Mohit and Chan, Arthur and Black, Alan W and Ravishankar,
          Mosur and Rudnicky, Alexander I},
  booktitle={ICASSP}, year={2006}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AsrWer(AudioInputsMetricMixin, evaluate.Metric):
    """Word error rate of PocketSphinx transcripts of the predictions against reference texts."""

    audio_inputs = ("predictions",)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": audio_feature(), "references": datasets.Value("string")}),
            reference_urls=["https://github.com/cmusphinx/pocketsphinx", "https://github.com/jitsi/jiwer"],
        )

    def _compute(self, predictions, references):
        result = asr_word_error_rate(list(predictions), list(references))
        return {"wer": result.wer, "per_utterance": result.per_utterance, "transcripts": result.transcripts}
