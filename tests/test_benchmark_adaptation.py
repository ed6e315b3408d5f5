"""benchmarks/adaptation.py end to end on the tiny corpus with a tiny model: shape and completeness of the JSON,
one adaptation run per (task, method, k), skipped methods, bad settings that write nothing, speaker
identification, the language filter and the WER ratios."""

from __future__ import annotations

import argparse
import json
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from tiny_models import save_tiny_checkpoint

pytest.importorskip("resemblyzer", reason="resemblyzer (evaluation extra) is needed")

from hf_metatts.evaluation.benchmark import (  # noqa: E402
    BENCHMARK_METHODS,
    BenchmarkConfigError,
    BenchmarkSettings,
    load_tasks,
    pooled_identification,
    run_benchmark,
)
from hf_metatts.evaluation.cli import add_benchmark_arguments  # noqa: E402
from hf_metatts.evaluation.curves import render_markdown  # noqa: E402

SHOTS, STEPS = [1, 2], [0, 1, 3]


def _script():
    return load_benchmark_script("adaptation", "adaptation_benchmark")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from hf_metatts.data import build_corpus

    out = tmp_path_factory.mktemp("bench_corpus") / "voices"
    build_corpus(out, "tiny", num_workers=2)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench_model")
    save_tiny_checkpoint(path)
    return path


@pytest.mark.slow
def test_end_to_end_json_is_complete(corpus, checkpoint, tmp_path, monkeypatch):
    import hf_metatts.meta

    calls = []
    original = hf_metatts.meta.adapt_parameters

    def counting(*args, **kwargs):
        calls.append((kwargs["method"], kwargs["steps"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(hf_metatts.meta, "adapt_parameters", counting)
    out = tmp_path / "results" / "adaptation_speaker.json"
    argv = ["--corpus", str(corpus), "--checkpoints", f"maml={checkpoint}", f"finetune={checkpoint}",
            f"metasgd={checkpoint}", "--shots", *map(str, SHOTS), "--steps", *map(str, STEPS),
            "--max-tasks", "2", "--metrics", "similarity", "mcd", "eer", "identification", "--out", str(out)]
    code = _script().main(argv)
    assert code == 0
    result = json.loads(out.read_text())
    assert result["command"] == shlex.join(["python", "benchmarks/adaptation.py", *argv])
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "| maml | 1 |" in out.with_suffix(".md").read_text()

    assert set(result["methods"]) == set(BENCHMARK_METHODS)
    assert result["methods"]["finetune"]["meta_learner"] is None
    assert result["methods"]["finetune"]["vocoder"] == "griffin_lim"  # what its speech was heard through
    assert result["methods"]["metasgd"]["status"] == "skipped"
    assert "meta-learner" in result["methods"]["metasgd"]["reason"]
    assert result["methods"]["meta_lstm"] == {"status": "skipped", "reason": "no checkpoint given",
                                              "checkpoint": None}
    tasks = [task["name"] for task in result["tasks"]]
    assert len(tasks) == 2 and all(task["heldout"] == 1 for task in result["tasks"])
    for method in ("maml", "finetune"):
        entry = result["methods"][method]
        assert entry["status"] == "ok"
        assert set(entry["results"]) == {str(k) for k in SHOTS}
        for k in SHOTS:
            assert set(entry["results"][str(k)]) == {str(s) for s in STEPS}
            for step in STEPS:
                cell = entry["results"][str(k)][str(step)]
                assert set(cell["per_task"]) == set(tasks), cell["skipped_tasks"]
                assert -1 <= cell["mean"]["similarity"] <= 1
                assert cell["mean"]["mcd"] > 0
                assert 0 <= cell["mean"]["eer"] <= 1
                assert 0 <= cell["mean"]["identification"] <= 1 and cell["mean"]["identification_candidates"] == 2
                losses = [values["support_loss"] for values in cell["per_task"].values()]
                assert all((loss is None) == (step == 0) for loss in losses)
    for bound in ("ground_truth", "resynthesis"):
        mean = result["upper_bounds"][bound]["mean"]
        assert 0 <= mean["eer"] <= 1 and -1 <= mean["similarity"] <= 1 and 0 <= mean["identification"] <= 1
        assert set(result["upper_bounds"][bound]["per_task"]) == set(tasks)
    assert result["upper_bounds"]["ground_truth"]["mean"]["similarity"] > 0.5
    # steps are cumulative: per (task, method, k) one run to the last step, plus the step-0 start
    assert sorted(calls) == sorted([(m, s) for m in ("maml", "finetune") for _ in tasks for _ in SHOTS
                                    for s in (0, max(STEPS))])


def test_a_single_task_reports_eer_as_not_available(corpus, checkpoint):
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0], max_tasks=1, eval_metrics=["similarity", "eer", "identification"])
    result = run_benchmark(settings)
    mean = result["methods"]["finetune"]["results"]["1"]["0"]["mean"]
    assert mean["eer"] is None and "at least 2 tasks" in mean["eer_note"]
    assert mean["identification"] is None and mean["identification_candidates"] == 1
    assert "at least 2 candidate" in mean["identification_note"]
    assert "n/a" in render_markdown(result)


def test_shots_beyond_the_support_pool_are_reported_per_task(corpus, checkpoint):
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[50],
                                 steps=[0], max_tasks=1, eval_metrics=["similarity"])
    cell = run_benchmark(settings)["methods"]["finetune"]["results"]["50"]["0"]
    assert cell["per_task"] == {} and cell["mean"]["similarity"] is None
    assert "k=50" in next(iter(cell["skipped_tasks"].values()))


@pytest.mark.parametrize("argv, message", [
    (["--checkpoints", "dreamer=DIR"], "Unknown methods"),
    (["--checkpoints", "maml"], "METHOD=VALUE"),
    (["--checkpoints", "maml=/nonexistent"], "No method could run"),
    (["--checkpoints", "maml=CKPT", "--split", "nope"], "no split"),
    (["--checkpoints", "maml=CKPT", "--task-column", "nope"], "no column"),
    (["--checkpoints", "maml=CKPT", "--heldout", "50"], "No usable"),
    (["--checkpoints", "maml=CKPT", "--languages", "xx"], "has rows in languages"),
])
def test_bad_settings_raise_and_write_nothing(corpus, checkpoint, tmp_path, argv, message):
    argv = [item.replace("CKPT", str(checkpoint)) for item in argv]
    out = tmp_path / "out.json"
    with pytest.raises(ValueError, match=message):
        _script().main(["--corpus", str(corpus), *argv, "--shots", "1", "--steps", "0", "--out", str(out)])
    assert list(tmp_path.iterdir()) == []


def test_settings_validate_grids():
    with pytest.raises(BenchmarkConfigError, match="shots"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, shots=[0]).validate()
    with pytest.raises(BenchmarkConfigError, match="steps"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, steps=[-1]).validate()
    for weight in (-0.5, float("nan")):
        with pytest.raises(BenchmarkConfigError, match="global_variance_weights"):
            BenchmarkSettings(corpus="x", checkpoints={"maml": "x"},
                              global_variance_weights={"maml": weight}).validate()


def test_support_durations_setting_is_checked():
    with pytest.raises(BenchmarkConfigError, match="support_durations='oracle': choose one of timings, aligner"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, support_durations="oracle").validate()


def test_aligner_search_setting_is_checked():
    with pytest.raises(BenchmarkConfigError, match="aligner_search='viterbi': choose one of own, skip_marks, every"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, aligner_search="viterbi").validate()


@pytest.mark.parametrize("search", ["own", "skip_marks", "every_token"])
def test_the_aligner_search_chosen_for_the_harness_is_the_one_each_method_aligns_with(corpus, checkpoint, monkeypatch,
                                                                                       search):
    """skip_marks gives every checkpoint the tokenizer's skippable tokens, every_token none; own keeps each
    checkpoint's config (this one names none). The support clips are read by the aligner either way."""
    from hf_metatts.data.durations import skippable_token_ids
    from hf_metatts.modeling_metatts import MetaTTSForTextToSpeech
    from hf_metatts.processing_metatts import MetaTTSProcessor

    seen = []
    original = MetaTTSForTextToSpeech.compute_durations

    def spy(self, *args, **kwargs):
        seen.append(self.config.aligner_skippable_token_ids)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MetaTTSForTextToSpeech, "compute_durations", spy)
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0, 1], max_tasks=1, eval_metrics=["similarity"], support_durations="aligner",
                                 aligner_search=search)
    result = run_benchmark(settings)
    expected = (skippable_token_ids(MetaTTSProcessor.from_pretrained(str(checkpoint)).tokenizer)
                if search == "skip_marks" else None)
    assert seen and all(ids == expected for ids in seen)
    assert result["settings"]["aligner_search"] == search
    assert result["methods"]["finetune"]["aligner_skips_marks"] is (search == "skip_marks")


@pytest.mark.parametrize("text", ["-1", "1001", "nan", "thirty"])
def test_the_scripts_refuse_a_duration_weight_out_of_range(text, capsys):
    import argparse

    from hf_metatts.evaluation.benchmark import add_support_reading_arguments

    parser = argparse.ArgumentParser()
    add_support_reading_arguments(parser)
    assert parser.parse_args(["--aligner-duration-weight", "30"]).aligner_duration_weight == 30.0
    assert parser.parse_args([]).aligner_duration_weight is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--aligner-duration-weight", text])
    assert "give a weight in [0, 1000]" in capsys.readouterr().err


@pytest.mark.parametrize("weight", [None, 30.0])
def test_the_duration_weight_chosen_for_the_harness_is_the_one_each_method_aligns_with(corpus, checkpoint,
                                                                                        monkeypatch, weight):
    """A weight replaces each checkpoint's own (this one's is 0) for every support batch the aligner reads."""
    from hf_metatts.modeling_metatts import MetaTTSForTextToSpeech

    seen = []
    original = MetaTTSForTextToSpeech.compute_durations

    def spy(self, *args, **kwargs):
        seen.append(self.config.aligner_duration_weight)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MetaTTSForTextToSpeech, "compute_durations", spy)
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0, 1], max_tasks=1, eval_metrics=["similarity"], support_durations="aligner",
                                 aligner_duration_weight=weight)
    result = run_benchmark(settings)
    assert seen and all(value == (weight or 0.0) for value in seen)
    assert result["settings"]["aligner_duration_weight"] == weight
    assert result["methods"]["finetune"]["aligner_duration_weight"] == (weight or 0.0)


@pytest.mark.parametrize("mode", ["timings", "aligner"])
def test_the_support_reaches_adaptation_with_the_chosen_durations(corpus, checkpoint, monkeypatch, mode):
    """timings: the corpus's phone-timing durations go into every adaptation; aligner: none do, so the model's
    aligner reads the clips as it does for a user's clips in ``model.adapt``."""
    import hf_metatts.meta

    seen = []
    original = hf_metatts.meta.adapt_parameters

    def spy(model, support, *args, **kwargs):
        seen.append(support.get("durations") is not None)
        return original(model, support, *args, **kwargs)

    monkeypatch.setattr(hf_metatts.meta, "adapt_parameters", spy)
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0, 1], max_tasks=1, eval_metrics=["similarity"], support_durations=mode)
    result = run_benchmark(settings)
    assert result["settings"]["support_durations"] == mode
    assert seen and all(seen) if mode == "timings" else seen and not any(seen)


def test_identification_and_wer_ratios_with_a_stub_recogniser(corpus, checkpoint, monkeypatch):
    """Identification among the 2 tasks' enrolments; WER ratios with recording WERs 0 and 0.5 and synthesis 0.25."""
    import hf_metatts.evaluation.asr

    calls = []

    def stub_wer(waves, texts, rate):  # the first calls are the tasks' real recordings, in task order
        calls.append(len(waves))
        return SimpleNamespace(wer=[0.0, 0.5][len(calls) - 1] if len(calls) <= 2 else 0.25)

    monkeypatch.setattr(hf_metatts.evaluation.asr, "asr_word_error_rate", stub_wer)
    settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"finetune": str(checkpoint)}, shots=[1],
                                 steps=[0], max_tasks=2, eval_metrics=["similarity", "identification", "wer"])
    result = run_benchmark(settings)
    first, second = [task["name"] for task in result["tasks"]]
    cell = result["methods"]["finetune"]["results"]["1"]["0"]
    mean = cell["mean"]
    assert 0 <= mean["identification"] <= 1 and mean["identification_candidates"] == 2
    assert "identification_note" not in mean and "eer" not in mean
    assert cell["per_task"][first]["wer_ratio"] is None  # its recordings' WER is 0
    assert cell["per_task"][second]["wer_ratio"] == pytest.approx(0.5)
    assert mean["wer_ratio"] == pytest.approx(0.5) and mean["wer_ratio_undefined"] == 1
    assert mean["wer_ratio_tasks"] == 2 and mean["wer_real_pooled"] == pytest.approx(0.25)
    assert mean["wer_ratio_pooled"] == pytest.approx(1.0)  # mean 0.25 over mean (0 + 0.5) / 2

    truth = result["upper_bounds"]["ground_truth"]
    assert truth["mean"]["identification"] == 1.0 and truth["mean"]["identification_candidates"] == 2
    assert truth["per_task"][first]["wer_ratio"] is None and truth["per_task"][second]["wer_ratio"] == 1.0
    assert truth["mean"]["wer_ratio_pooled"] == pytest.approx(1.0)
    resynthesis = result["upper_bounds"]["resynthesis"]["mean"]
    assert 0 <= resynthesis["identification"] <= 1 and resynthesis["wer_ratio_pooled"] == pytest.approx(1.0)
    assert "| finetune | 1 |" in render_markdown(result) and "closest of 2 enrolled" in render_markdown(result)


def test_pooled_identification_counts_every_task_as_a_candidate():
    axes = np.eye(3, dtype=np.float32)
    audios = {name: SimpleNamespace(pool_emb=np.stack([axes[i], axes[i] + 0.1 * axes[(i + 1) % 3]]))
              for i, name in enumerate("abc")}
    # a's trial is nearest a; b's is nearest c (a miss); c has no trial but is still a candidate
    trials = {"a": axes[[0]], "b": np.array([[0.0, 0.2, 1.0]], dtype=np.float32)}
    assert pooled_identification(trials, audios) == (0.5, 3, None)
    accuracy, candidates, reason = pooled_identification({"a": axes[[0]]}, {"a": audios["a"]})
    assert (accuracy, candidates) == (None, 1) and "at least 2" in reason
    assert pooled_identification({}, audios)[2] == "no synthesised utterance to identify"


def test_languages_keep_only_the_matching_rows(corpus):
    def tasks(split, languages, max_tasks=None):
        return load_tasks(BenchmarkSettings(corpus=str(corpus), checkpoints={"maml": "x"}, split=split,
                                            languages=languages, max_tasks=max_tasks))

    czech = tasks("train", ["cs"])
    assert [t.name for t in czech] == ["espeak:cs+f1", "espeak:cs+m1", "espeak:cs+m3"]
    assert all(row["language"] == "cs" for t in czech for row in t.pool + t.heldout)
    english = tasks("train", ["EN"], max_tasks=20)  # prefixes match whole codes (en-us), case aside
    assert len(english) == 10 and not {t.name for t in english} & {t.name for t in czech}
    assert len(tasks("train", None, max_tasks=20)) == 13
    with pytest.raises(BenchmarkConfigError, match=r"has rows in languages \['de'\].*'en-us'"):
        tasks("test", ["de"])
    with pytest.raises(BenchmarkConfigError, match="language-code prefixes"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, languages=[]).validate()


def test_task_prefixes_keep_the_tasks_named_so_and_none_left_is_an_error(corpus):
    def names(prefixes, languages=None):
        settings = BenchmarkSettings(corpus=str(corpus), checkpoints={"maml": "x"}, split="train",
                                     languages=languages, task_prefixes=prefixes, max_tasks=20)
        return [t.name for t in load_tasks(settings)]

    every = names(None)
    assert names(["espeak:cs+m"]) == ["espeak:cs+m1", "espeak:cs+m3"]
    assert names(["espeak:cs+f", "espeak:cs+m3"]) == ["espeak:cs+f1", "espeak:cs+m3"]
    assert names(["espeak:"]) == [name for name in every if name.startswith("espeak:")]
    with pytest.raises(BenchmarkConfigError, match=r"starts with one of \['nothing'\] \(its tasks: \['espeak:cs\+f1'"):
        names(["nothing"])
    with pytest.raises(BenchmarkConfigError, match=r"starts with one of \['espeak:cs'\]"):
        names(["espeak:cs"], languages=["en"])  # the prefixes read only the tasks of the chosen languages


def test_cli_defaults_measure_identification_and_take_languages():
    parser = argparse.ArgumentParser()
    add_benchmark_arguments(parser)
    args = parser.parse_args(["--checkpoints", "maml=x", "--corpus", "c", "--out", "o.json", "--languages", "en"])
    assert "identification" in args.metrics and args.languages == ["en"]
    assert parser.parse_args(["--checkpoints", "maml=x", "--corpus", "c", "--out", "o.json"]).languages is None
    with pytest.raises(BenchmarkConfigError, match="Unknown metrics"):
        BenchmarkSettings(corpus="x", checkpoints={"maml": "x"}, eval_metrics=["similarity", "pesq"]).validate()


def test_each_run_records_how_its_meta_learner_was_trained():
    import torch

    from hf_metatts.evaluation.benchmark import meta_learner_summary
    from hf_metatts.meta.head import MetaLearnerConfig, MetaLearnerHead

    config = MetaLearnerConfig(method="metasgd", inner_lr=0.03, inner_optimizer="adam", zero_shot_start=True,
                               adapted_parameter_names=["voice.speaker_vector"])
    head = MetaLearnerHead(config, {"voice.speaker_vector": torch.Size([4])})
    assert meta_learner_summary(head) == {"method": "metasgd", "inner_optimizer": "adam", "inner_lr": 0.03,
                                          "zero_shot_start": True}
    assert meta_learner_summary(None) is None  # fine-tuning has no meta-learner


def _spectrum_embeddings(waves, rate=None):
    """A stand-in speaker encoder for a random vocoder's audio, which resemblyzer's voice detector finds silent:
    each wave's magnitude spectrum in 256 bands, L2-normalised ``(n, 256)``."""
    rows = []
    for wave in waves:
        spectrum = np.abs(np.fft.rfft(np.asarray(wave, dtype=np.float64), n=4096))[:4096 // 2]
        row = spectrum.reshape(256, -1).mean(1) + 1e-9
        rows.append(row / np.linalg.norm(row))
    return np.stack(rows).astype(np.float32)


def test_the_vocoder_adapts_to_the_support_after_the_steps_only(corpus, tmp_path_factory, monkeypatch):
    """``vocoder_steps``: the voices after 1 step hear an adapted vocoder, the voice before none; the run records
    the setting; a checkpoint without vocoder weights refuses it; bad values are refused."""
    import hf_metatts.evaluation.speaker
    from hf_metatts.voice_vocoder import VocoderAdaptationError

    monkeypatch.setattr(hf_metatts.evaluation.speaker, "embed_utterances", _spectrum_embeddings)

    istft = tmp_path_factory.mktemp("bench_istft")
    save_tiny_checkpoint(istft, vocoder_type="istft")
    base = dict(corpus=str(corpus), checkpoints={"finetune": str(istft)}, shots=[1], steps=[0, 1], max_tasks=2,
                eval_metrics=["similarity", "mcd"])
    plain = run_benchmark(BenchmarkSettings(**base))["methods"]["finetune"]
    adapted = run_benchmark(BenchmarkSettings(**base, vocoder_steps={"finetune": 3},
                                              vocoder_lrs={"finetune": 1e-2}))["methods"]["finetune"]
    assert plain["vocoder_adaptation"] is None
    assert adapted["vocoder_adaptation"] == {"steps": 3, "learning_rate": 1e-2, "parameters": ["*"]}
    before, after = plain["results"]["1"], adapted["results"]["1"]
    assert before["0"]["per_task"] == after["0"]["per_task"]  # no step taken: no vocoder adaptation either
    for task, values in before["1"]["per_task"].items():
        assert after["1"]["per_task"][task]["mcd"] != values["mcd"], task
    griffin_lim = tmp_path_factory.mktemp("bench_griffin_lim")
    save_tiny_checkpoint(griffin_lim)
    with pytest.raises(VocoderAdaptationError, match="no weights to adapt"):
        run_benchmark(BenchmarkSettings(**{**base, "checkpoints": {"finetune": str(griffin_lim)}},
                                        vocoder_steps={"finetune": 2}))
    for bad in ({"vocoder_steps": {"finetune": -1}}, {"vocoder_lrs": {"finetune": 0.0}}):
        with pytest.raises(BenchmarkConfigError, match="vocoder_"):
            BenchmarkSettings(**base, **bad).validate()
