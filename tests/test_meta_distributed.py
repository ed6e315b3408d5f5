"""Two ranks under ``accelerate.debug_launcher`` end meta-training with identical parameters."""

import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_meta_toy import toy_collator, toy_dataset, toy_model

from hf_metatts.meta import MetaTrainer, MetaTrainingArguments


def _train_rank(out_dir, method, first_order):
    args = MetaTrainingArguments(
        output_dir=os.path.join(out_dir, "run"), method=method, first_order=first_order, max_steps=3,
        inner_steps=2, inner_lr=0.3, shots=2, query_shots=2, tasks_per_step=2, learning_rate=0.05,
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
@pytest.mark.parametrize("method,first_order", [("maml", True), ("maml", False), ("meta_lstm", True)])
def test_two_ranks_end_with_identical_parameters(tmp_path, method, first_order):
    from accelerate import debug_launcher

    debug_launcher(_train_rank, args=(str(tmp_path), method, first_order), num_processes=2)
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert not set(r0.pop("tasks").tolist()) & set(r1.pop("tasks").tolist())  # ranks saw different tasks
    initial = dict(toy_model(seed=0).named_parameters())
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    changed = [n for n in r0 if n.startswith("model.") and not torch.equal(r0[n], initial[n[len("model."):]])]
    assert "model.voice.speaker" in changed and "model.proj.weight" in changed
