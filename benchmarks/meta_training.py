"""Meta-training throughput: tasks per second and peak memory for first-order MAML, second-order MAML and
Meta-LSTM on CPU, one process against two (gloo, ``torch.multiprocessing``).

    python benchmarks/meta_training.py --steps 3 --out benchmarks/results/meta_training.json

Synthetic speaker-dependent log-mels (80 bins) feed the real ``MetaTTSForTextToSpeech`` (``--size base`` is
the default MetaTTSConfig, ``--size tiny`` the test config). Peak memory is the process's max RSS.
"""

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

logger = logging.getLogger("benchmarks.meta_training")

TINY = dict(hidden_size=32, encoder_layers=1, decoder_layers=1, num_attention_heads=2, ffn_dim=64,
            variance_hidden_size=32, aligner_hidden_size=32, speaker_dim=16, voice_encoder_hidden_size=32)
RUNS = [("fomaml", "maml", True), ("maml_2nd", "maml", False), ("meta_lstm", "meta_lstm", True)]


def corpus(num_speakers, per_speaker, seed=0):
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    rows = {"speaker_id": [], "input_ids": [], "labels": [], "pitch": []}
    for s in range(num_speakers):
        mean = rng.normal(-2, 1, size=80)
        for _ in range(per_speaker):
            n = int(rng.integers(20, 40))
            t = int(n * rng.integers(3, 5))
            rows["speaker_id"].append(f"s{s}")
            rows["input_ids"].append(rng.integers(1, 300, size=n).tolist())
            rows["labels"].append((mean + 0.3 * rng.normal(size=(t, 80))).astype(np.float32).tolist())
            rows["pitch"].append((5 + 0.1 * rng.normal(size=t)).astype(np.float32).tolist())
    return Dataset.from_dict(rows)


def run(rank, world, opts, method, first_order, result_file):
    """Meta-train opts.steps episodes on this rank; rank 0 writes tasks/s and peak RSS."""
    torch.set_num_threads(max(1, opts.threads // world))
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(opts.port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.nn.parallel import DistributedDataParallel

    from hf_metatts import MetaTTSConfig, MetaTTSForTextToSpeech
    from hf_metatts.data_collator import MetaTTSDataCollator
    from hf_metatts.meta import EpisodeSampler, MetaLearner, MetaLearnerConfig

    torch.manual_seed(0)
    model = MetaTTSForTextToSpeech(MetaTTSConfig(**(TINY if opts.size == "tiny" else {})))
    cfg = MetaLearnerConfig(method=method, first_order=first_order, inner_steps=opts.inner_steps, inner_lr=0.01,
                            adapted_parameter_names=model.adapted_parameter_names())
    learner = MetaLearner(model, cfg)
    learner.log_before = False
    wrapped = DistributedDataParallel(learner, find_unused_parameters=True) if world > 1 else learner
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-4)
    sampler = EpisodeSampler(corpus(8, opts.shots + opts.query_shots), "speaker_id", opts.shots, opts.query_shots,
                             opts.tasks, seed=0, rank=rank, world_size=world)
    collator = MetaTTSDataCollator()
    episodes = [sampler.collate(sampler.episode(i), collator) for i in range(opts.steps + 1)]
    times = []
    for i, episode in enumerate(episodes):
        start = time.perf_counter()
        optimizer.zero_grad()
        wrapped(**episode).loss.backward()
        optimizer.step()
        if i > 0:  # the first step warms up
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if world > 1:
        peak = torch.tensor([peak_mb])
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        peak_mb = float(peak)
        dist.destroy_process_group()
    if rank == 0:
        per_step = float(np.mean(times))
        with open(result_file, "w") as fh:
            json.dump({"seconds_per_step": per_step, "tasks_per_second": opts.tasks * world / per_step,
                       "peak_rss_mb_per_process": peak_mb}, fh)


def measure(opts, method, first_order, world):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    if world == 1:
        run(0, 1, opts, method, first_order, path)
    else:
        mp.spawn(run, args=(world, opts, method, first_order, path), nprocs=world)
    with open(path) as fh:
        result = json.load(fh)
    os.unlink(path)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["base", "tiny"], default="base")
    parser.add_argument("--steps", type=int, default=3, help="timed episodes (after one warm-up)")
    parser.add_argument("--tasks", type=int, default=2, help="tasks per episode per process")
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--query-shots", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, default=29531)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="benchmarks/results/meta_training.json")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from hf_metatts.evaluation.cli import script_command

    results = {"config": vars(opts), "torch": torch.__version__, "cpu_count": os.cpu_count(), "runs": {},
               "command": script_command(__file__, argv)}
    for name, method, first_order in RUNS:
        for world in opts.processes:
            result = measure(opts, method, first_order, world)
            results["runs"][f"{name}/{world}proc"] = result
            logger.info("%-10s %d process(es): %.3f tasks/s, %.2f s/step, peak RSS %.0f MB/process", name, world,
                        result["tasks_per_second"], result["seconds_per_step"], result["peak_rss_mb_per_process"])
    os.makedirs(os.path.dirname(opts.out) or ".", exist_ok=True)
    with open(opts.out, "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
