#!/usr/bin/env bash
# MAML from its own meta-learned start (no support encoder), for the MAML bar of BENCHMARKS.md: Meta-SGD with
# learned rates of Adam directions (400 + 400 episodes) and MAML with fixed Adam steps of 0.03 (400 episodes),
# both continuing outputs/default_speaker_embedding_maml_adam with zero_shot_start=false, on CPU or GPU.
# scripts/train_default_checkpoint.sh runs it after scripts/train_speaker_embedding_checkpoint.sh; on a fresh
# clone it starts from the bundled checkpoint instead (`hf-metatts unbundle`). Logs go to logs/, runs to outputs/.
#   bash scripts/train_plain_start_checkpoints.sh   # about 65 min on 2 CPU cores: corpus 9 + 5.5 min, each run ~17 min
# (measured on 2 AMD EPYC threads: the augmented build 538 s, prepare-corpus 5.5 min, Meta-SGD 16.4 + 17.2 min).
# THREADS sets torch threads (default 2: the steps run one after the other).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
export OMP_NUM_THREADS="${THREADS:-2}"

# The start: the run folder of the bundled model. Without it (a fresh clone), the bundle itself gives it back: the
# same acoustic model and meta-learner, Griffin-Lim in place of the vocoder, and the step size (0.03) and
# global-variance weight (0) it was meta-trained with.
if [ ! -d outputs/default_speaker_embedding_maml_adam ]; then
  hf-metatts --log-level INFO unbundle --model hf_metatts/checkpoints/default \
    --out outputs/default_speaker_embedding_maml_adam --inner-lr 0.03 --global-variance-weight 0 \
    > logs/unbundle_default.log 2>&1
fi
# The augmented corpus (needs the synthesizers: WITH_RUSSIAN=1 bash scripts/install_synthesizers.sh).
[ -f data/voices-augmented/dataset_dict.json ] || \
  hf-metatts build-corpus --preset augmented --out data/voices-augmented --workers 2 > logs/build_augmented.log 2>&1
[ -f data/voices-augmented-prepared/dataset_dict.json ] || \
  hf-metatts --log-level INFO prepare-corpus --corpus data/voices-augmented --out data/voices-augmented-prepared \
    --splits train validation --num-proc 2 > logs/prepare_augmented.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_metasgd_adam.json \
  > logs/default_plain_metasgd_adam.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_metasgd_adam_800.json \
  > logs/default_plain_metasgd_adam_800.log 2>&1
hf-metatts --log-level INFO meta-train --config examples/configs/default_plain_maml_adam.json \
  > logs/default_plain_maml_adam.log 2>&1
