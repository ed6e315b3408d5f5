"""Two ranks under ``accelerate.debug_launcher`` end meta-training with identical parameters."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_meta_toy import toy_collator, toy_dataset, toy_model

from hf_metatts.meta import MetaTrainer, MetaTrainingArguments


def _train_rank(out_dir, method, first_order, outer_update="query_loss"):
    args = MetaTrainingArguments(
        output_dir=os.path.join(out_dir, "run"), method=method, first_order=first_order, outer_update=outer_update,
        max_steps=3, inner_steps=2, inner_lr=0.3, shots=2, query_shots=2, tasks_per_step=2, learning_rate=0.05,
        save_strategy="no", seed=11, use_cpu=True, disable_tqdm=True, logging_steps=1,
    )
    trainer = MetaTrainer(toy_model(seed=0), args, train_dataset=toy_dataset(num_speakers=8, per_speaker=6),
                          data_collator=toy_collator)
    trainer.train()
    learner = trainer.accelerator.unwrap_model(trainer.model)
    tensors = {n: p.detach().contiguous() for n, p in learner.named_parameters()}
    tasks = torch.tensor(trainer.episode_sampler.episode(0).task_index)
    save_file({**tensors, "tasks": tasks}, os.path.join(out_dir, f"rank{args.process_index}.safetensors"))


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("method,first_order,outer_update", [
    ("maml", True, "query_loss"), ("maml", False, "query_loss"), ("meta_lstm", True, "query_loss"),
    ("maml", True, "reptile"),
])
def test_two_ranks_end_with_identical_parameters(tmp_path, method, first_order, outer_update):
    # debug_launcher forks; a process whose OpenMP pool already ran (earlier tests) can deadlock its forked
    # children, so the two ranks are forked from a fresh interpreter.
    script = (
        "from accelerate import debug_launcher\n"
        "from test_meta_distributed import _train_rank\n"
        f"debug_launcher(_train_rank, args=({str(tmp_path)!r}, {method!r}, {first_order!r}, {outer_update!r}), "
        "num_processes=2)\n"
    )
    tests_dir = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], cwd=tests_dir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert not set(r0.pop("tasks").tolist()) & set(r1.pop("tasks").tolist())  # ranks saw different tasks
    initial = dict(toy_model(seed=0).named_parameters())
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    changed = [n for n in r0 if n.startswith("model.") and not torch.equal(r0[n], initial[n[len("model."):]])]
    assert "model.voice.speaker" in changed
    # Reptile moves the start only; MAML's query loss trains the backbone too
    assert ("model.proj.weight" in changed) == (outer_update == "query_loss")
