#!/usr/bin/env bash
# The second half of the bundled checkpoint's recipe (scripts/train_default_checkpoint.sh runs it after the
# zero-shot model): the speaker-embedding start and the Adam steps from it, on CPU or GPU:
#   augmented corpus -> speaker encoder -> support encoder on it (Meta-SGD, 400 + 400 episodes)
#   -> MAML with Adam inner steps (400 episodes) = outputs/default_speaker_embedding_maml_adam.
# Needs outputs/default_zero_shot and data/voices. Each step is one command and can be run alone; logs go to
# logs/, runs to outputs/.
#   bash scripts/train_speaker_embedding_checkpoint.sh   # ~2 h on 2 CPU cores
# THREADS sets torch threads (default 2: the steps run one after the other).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
export OMP_NUM_THREADS="${THREADS:-2}"

if [ ! -d outputs/default_zero_shot ]; then
  echo "outputs/default_zero_shot is missing: run scripts/train_default_checkpoint.sh first" >&2
  exit 1
fi
[ -f data/voices-augmented/dataset_dict.json ] || \
  hf-metatts build-corpus --preset augmented --out data/voices-augmented --workers 2 > logs/build_augmented.log 2>&1
[ -f data/voices-augmented-prepared/dataset_dict.json ] || \
  hf-metatts --log-level INFO prepare-corpus --corpus data/voices-augmented --out data/voices-augmented-prepared \
    --splits train validation --num-proc 2 > logs/prepare_augmented.log 2>&1

hf-metatts --log-level INFO train-identity-encoder --dataset data/voices-augmented-prepared \
  --out outputs/identity_encoder --threads "$OMP_NUM_THREADS" > logs/identity_encoder.log 2>&1
# a fresh support-encoder head on the frozen speaker encoder (Meta-SGD rates continue), then 400 more episodes
hf-metatts --log-level INFO meta-train --config examples/configs/default_speaker_embedding.json \
  > logs/default_speaker_embedding.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_speaker_embedding_800.json \
  > logs/default_speaker_embedding_800.log 2>&1
# MAML with fixed Adam inner steps of 0.03 from that start, 400 episodes (400 more,
# default_speaker_embedding_maml_adam_800.json, measured lower similarity: BENCHMARKS.md)
hf-metatts --log-level INFO meta-train --config examples/configs/default_speaker_embedding_maml_adam.json \
  > logs/default_speaker_embedding_maml_adam.log 2>&1
