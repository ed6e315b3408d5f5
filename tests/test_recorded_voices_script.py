"""benchmarks/recorded_voices.py: the variants, the pairwise ceiling, identification by talent, the summary and a
whole run on a small corpus of two voices."""

import json
import shlex

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint

from hf_metatts.tokenization_metatts import phonemize

SR = 16000


@pytest.fixture(scope="module")
def recorded():
    return load_benchmark_script("recorded_voices")


def test_the_variants_read_each_step_count_with_and_without_the_vocoder(recorded):
    assert recorded.variant_names([5], [5]) == ["start", "start_no_vocoder", "steps_5", "steps_5_no_vocoder",
                                                "steps_5_rhythm"]
    assert recorded.variant_names([1, 3], [])[2:] == ["steps_1", "steps_1_no_vocoder", "steps_3", "steps_3_no_vocoder"]
    assert recorded.variant_names([5], [], [50])[2:] == ["steps_5", "steps_5_no_vocoder", "steps_5_vocoder_50"]
    assert recorded.variant_names([20], [], [], [40])[2:] == ["steps_20", "steps_20_no_vocoder", "extra_40"]


def test_each_variant_asks_model_adapt_for_its_steps_and_vocoder_steps(recorded):
    calls = []

    class Model:
        def adapt(self, clips, **kwargs):
            calls.append(kwargs)

    variants = ("start", "start_no_vocoder", "steps_5", "steps_20_no_vocoder", "steps_5_vocoder_50", "steps_5_rhythm")
    for variant in variants:
        recorded.adapt_variant(Model(), [], variant, "fr-fr", 16000)
    assert [(c["method"], c["steps"], c["vocoder_steps"], c.get("match_rhythm", False)) for c in calls] == [
        ("zero_shot", 0, None, False), ("zero_shot", 0, 0, False), ("maml", 5, None, False), ("maml", 20, 0, False),
        ("maml", 5, 50, False), ("maml", 5, None, True)]
    assert all(c["language"] == "fr-fr" and c["progress"] is False for c in calls)
    calls.clear()
    for variant in ("start", "steps_100"):  # a baseline: its own voice, then fine-tuning
        recorded.adapt_variant(Model(), [], variant, "en-us", 16000, method="finetune")
    assert [(c["method"], c["steps"]) for c in calls] == [("finetune", 0), ("finetune", 100)]
    calls.clear()
    recorded.adapt_variant(Model(), [], "extra_40", "en-us", 16000, extra_parameters=("decoder.layers.*",),
                           extra_lr=1e-3)
    assert [(c["method"], c["steps"], c["lr"], c["extra_parameters"]) for c in calls] == [
        ("maml", 40, 1e-3, ["decoder.layers.*"])]
    with pytest.raises(ValueError, match="needs extra_parameters"):
        recorded.adapt_variant(Model(), [], "extra_40", "en-us", 16000)


def test_the_ceiling_averages_the_distinct_pairs_only(recorded):
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert recorded.pairwise_similarity(embeddings) == pytest.approx(2 / 6)  # (0 + 1 + 0) x 2 over 6 ordered pairs


def _unit(*values):
    vector = np.array(values, dtype=float)
    return vector / np.linalg.norm(vector)


def test_identification_counts_a_sentence_right_when_its_nearest_voice_has_the_same_talent(recorded):
    # voices a_en and a_es share a talent; b is another person. Each voice's recordings sit on its own axis.
    recordings = {"a_en": np.array([_unit(1, 0, 0)]), "a_es": np.array([_unit(0, 1, 0)]),
                  "b": np.array([_unit(0, 0, 1)])}
    synthesised = {"a_en": np.array([_unit(0.1, 1, 0)]),  # nearest a_es: the same talent, right
                   "a_es": np.array([_unit(0, 1, 0.2)]),  # right
                   "b": np.array([_unit(1, 0, 0.1), _unit(0, 0.1, 1)])}  # one taken for a_en (wrong), one right
    embeddings = {voice: [{"recordings": recordings[voice], "steps_5": synthesised[voice]}] for voice in recordings}
    talents = {"a_en": "A", "a_es": "A", "b": "B"}
    assert recorded.identification(embeddings, talents, "steps_5") == pytest.approx(3 / 4)
    assert recorded.identification(embeddings, {"a_en": "A", "a_es": "C", "b": "B"}, "steps_5") == pytest.approx(2 / 4)
    assert recorded.nearest_voices(embeddings, "steps_5") == {"a_en": {"a_es": 1}, "a_es": {"a_es": 1},
                                                              "b": {"a_en": 1, "b": 1}}
    assert recorded.mistaken_for(embeddings, talents, "steps_5") == {"b": {"a_en": 1}}
    assert recorded.mistaken_for(embeddings, {"a_en": "A", "a_es": "C", "b": "B"}, "steps_5") == {
        "a_en": {"a_es": 1}, "b": {"a_en": 1}}


def test_the_summary_averages_draws_and_leaves_unread_wer_out(recorded):
    def cell(similarity, wer):
        return {"start": {"similarity": similarity, "mcd": 7.0, "wer": wer}, "recordings_similarity": 0.8,
                "recordings_wer": wer}

    table = recorded.summary({"en": [cell(0.5, 0.2), cell(0.7, 0.4)], "fr": [cell(0.6, None)]}, ["start"])
    assert table["en"]["start"]["similarity"] == pytest.approx(0.6)
    assert table["en"]["start"]["wer"] == pytest.approx(0.3)
    assert table["fr"]["start"]["wer"] is None and table["fr"]["recordings"]["wer"] is None
    assert table["all"]["start"]["similarity"] == pytest.approx(0.6)
    assert table["all"]["start"]["wer"] == pytest.approx(0.3)


def _rows(folder, speaker: str, talent: str, lang: str, count: int, pitch: float) -> list[dict]:
    import soundfile

    texts = {"en-us": ["The cat sat on a mat.", "A dog ran to the park.", "We walk home at night."],
             "fr-fr": ["Le chat dort ici.", "Il fait beau ce matin.", "Nous allons au parc."]}[lang]
    t = np.arange(int(1.4 * SR)) / SR
    rows = []
    for index in range(count):
        tone = sum(np.sin(2 * np.pi * (pitch + 5 * index) * k * t) / k for k in (1, 2, 3))
        path = folder / f"{speaker.replace(':', '_')}_{index}.wav"
        soundfile.write(path, (0.2 * tone * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t)))).astype(np.float32), SR)
        text = texts[index % len(texts)]
        rows.append({"id": f"{speaker}/{index}", "audio": str(path), "text": text, "speaker_id": speaker,
                     "base_speaker": talent, "language": lang, "phonemes": phonemize([text], lang)[0]})
    return rows


def test_a_run_reads_every_voice_draw_and_variant(recorded, tmp_path):
    from datasets import Dataset, DatasetDict

    rows = (_rows(tmp_path, "asterisk:en_US_f_A", "asterisk:A", "en-us", 4, 150.0)
            + _rows(tmp_path, "asterisk:fr_CA_f_B", "asterisk:B", "fr-fr", 4, 220.0))
    DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "prompts"))
    save_tiny_checkpoint(tmp_path / "model")
    out = tmp_path / "recorded.json"
    argv = ["--checkpoint", str(tmp_path / "model"), "--corpus", str(tmp_path / "prompts"), "--shots", "2",
            "--heldout", "2", "--draws", "2", "--steps", "1", "--rhythm-steps", "1", "--threads", "1",
            "--out", str(out)]
    recorded.main(argv)
    result = json.loads(out.read_text())
    assert result["command"] == shlex.join(["python", "benchmarks/recorded_voices.py", *argv])
    assert result["variants"] == ["start", "start_no_vocoder", "steps_1", "steps_1_no_vocoder", "steps_1_rhythm"]
    assert result["method"] == "maml"
    english, french = result["cells"]["asterisk:en_US_f_A"], result["cells"]["asterisk:fr_CA_f_B"]
    assert len(english) == 2 and len(french) == 2
    assert english[0]["support_ids"] != english[1]["support_ids"]  # each draw its own clips
    for cell in english + french:
        assert len(cell["support_ids"]) == 2 and not set(cell["support_ids"]) & set(cell["heldout_ids"])
        for variant in result["variants"]:
            assert -1.0 <= cell[variant]["similarity"] <= 1.0 and cell[variant]["mcd"] > 0
    assert all(cell["start"]["wer"] is not None and cell["recordings_wer"] is not None for cell in english)
    assert all(cell["start"]["wer"] is None for cell in french)  # no recogniser for French
    assert set(result["identification"]) == {"recordings", *result["variants"]}
    assert result["identification"]["recordings"] == 1.0  # two far-apart voices: their own recordings are nearest
    assert result["talents"] == {"asterisk:en_US_f_A": "asterisk:A", "asterisk:fr_CA_f_B": "asterisk:B"}
    assert out.with_suffix(".png").stat().st_size > 1000

    with pytest.raises(SystemExit, match="fewer than shots"):
        recorded.main([*argv[:-2], "--heldout", "9", "--out", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
