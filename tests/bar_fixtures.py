"""A result of ``benchmarks/default_checkpoint.py`` as cards read it (``hf-metatts bundle``/``push --results``)."""


def harness_result(vocoders=("griffin_lim", "griffin_lim")):
    """A result of benchmarks/default_checkpoint.py as the bundle reads it: bars, machine, command, methods."""
    methods = {name: {"status": "ok", "vocoder": vocoder} for name, vocoder in zip(("finetune", "metasgd"), vocoders)}
    methods["meta_lstm"] = {"status": "skipped", "reason": "no checkpoint given"}
    return {
        "model_index": [{"dataset_name": "held-out speakers", "dataset_type": "voices", "metric_type": "wer",
                         "metric_value": 0.41}],
        "bars": {
            "adaptation_maml": {"requirement": "similarity of metasgd after 5 steps >= finetune after 100 steps",
                                "threshold": "metasgd@5 >= finetune@100", "status": "fail", "reason": None,
                                "measured": {"metasgd_5_steps": 0.6731, "finetune_100_steps": 0.6878,
                                             "difference_ci95": [-0.028, -0.0022], "tasks_above_zero": "8/21"}},
            "rtf": {"requirement": "real-time factor <= 0.05", "threshold": "rtf <= 0.05", "status": "pass",
                    "reason": None, "measured": {"rtf": 0.01044, "source": "speed.json"}},
            "identification": {"requirement": "identification >= 0.90", "threshold": "accuracy >= 0.90",
                               "status": "not measured", "reason": "identification was not measured",
                               "measured": {}},
        },
        "machine": {"cpu": "Test CPU", "cpu_count": 2, "torch_threads": 2, "gpu": None},
        "command": "python benchmarks/default_checkpoint.py --out results.json",
        "methods": methods,
    }
