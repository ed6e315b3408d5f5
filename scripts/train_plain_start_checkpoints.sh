#!/usr/bin/env bash
# MAML from its own meta-learned start (no support encoder), for the MAML bar of BENCHMARKS.md: Meta-SGD with
# learned rates of Adam directions (400 + 400 episodes) and MAML with fixed Adam steps of 0.03 (400 episodes),
# both continuing outputs/default_speaker_embedding_maml_adam with zero_shot_start=false, on CPU or GPU.
# scripts/train_default_checkpoint.sh runs it after scripts/train_speaker_embedding_checkpoint.sh. Logs go to
# logs/, runs to outputs/.
#   bash scripts/train_plain_start_checkpoints.sh   # ~1.5 h on 2 CPU cores
# THREADS sets torch threads (default 2: the steps run one after the other).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
export OMP_NUM_THREADS="${THREADS:-2}"

if [ ! -d outputs/default_speaker_embedding_maml_adam ]; then
  echo "outputs/default_speaker_embedding_maml_adam is missing: run scripts/train_speaker_embedding_checkpoint.sh first" >&2
  exit 1
fi
if [ ! -d data/voices-augmented-prepared ]; then
  echo "data/voices-augmented-prepared is missing: run scripts/train_speaker_embedding_checkpoint.sh first" >&2
  exit 1
fi
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_metasgd_adam.json \
  > logs/default_plain_metasgd_adam.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_metasgd_adam_800.json \
  > logs/default_plain_metasgd_adam_800.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_maml_adam.json \
  > logs/default_plain_maml_adam.log 2>&1
