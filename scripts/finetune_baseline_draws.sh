#!/usr/bin/env bash
# More draws of the fine-tuning baseline (multi-speaker training, examples/configs/default_pretrain.json) with
# other seeds, each fine-tuned on the test speakers by the bar harness, through Griffin-Lim as the bars are measured
# and through the bundled checkpoint's vocoder, then the bundled model compared with the per-speaker mean over every
# draw (BENCHMARKS.md: "Draws of the fine-tuning baseline").
#   bash scripts/finetune_baseline_draws.sh 1 2 3   # ~25 min per draw on 2 CPU cores, the draws side by side
# Needs data/voices and data/voices-prepared (scripts/train_default_checkpoint.sh builds both). THREADS sets torch
# threads per job (default 1: the draws train, and are measured, side by side). Logs go to logs/, runs to outputs/.
# A draw already trained or measured is not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -ge 1 ] || { echo "usage: $0 SEED [SEED ...]" >&2; exit 2; }
mkdir -p logs
export OMP_NUM_THREADS="${THREADS:-1}"
results=benchmarks/results
speed=("$results/synthesis_speed_default.json" "$results/voice_adaptation_speed_default.json")

pids=()
for seed in "$@"; do
  [ -f "outputs/default_pretrain_seed$seed/model.safetensors" ] && continue
  hf-metatts --log-level INFO meta-train --config examples/configs/default_pretrain.json --seed "$seed" \
    --output-dir "outputs/default_pretrain_seed$seed" > "logs/default_pretrain_seed$seed.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# measure MODEL_DIR with the bar harness beside the bars' result REUSE, into OUT (in the background)
measure() {
  python benchmarks/default_checkpoint.py --workers 1 --checkpoints "finetune=$1" --reuse "$2" --best zero_shot \
    --speed-json "${speed[@]}" --out "$3" > "logs/$(basename "$3" .json).log" 2>&1 &
  pids+=($!)
}
# Griffin-Lim, as every method of the bars is heard
pids=()
for seed in "$@"; do
  out="$results/default_checkpoint_finetune_seed$seed.json"
  [ -f "$out" ] || measure "outputs/default_pretrain_seed$seed" "$results/default_checkpoint.json" "$out"
done
for pid in "${pids[@]}"; do wait "$pid"; done
# the bundled checkpoint's vocoder, what a user hears
pids=()
for seed in "$@"; do
  out="$results/default_checkpoint_neural_vocoder_aligned_start_finetune_seed$seed.json"
  [ -f "$out" ] && continue
  [ -d "outputs/default_pretrain_seed${seed}_vocoder" ] || \
    hf-metatts --log-level INFO bundle --model "outputs/default_pretrain_seed$seed" \
      --vocoder hf_metatts/checkpoints/default --out "outputs/default_pretrain_seed${seed}_vocoder" \
      > "logs/bundle_pretrain_seed$seed.log" 2>&1
  measure "outputs/default_pretrain_seed${seed}_vocoder" \
    "$results/default_checkpoint_neural_vocoder_aligned_start.json" "$out"
done
for pid in "${pids[@]}"; do wait "$pid"; done

# every draw measured so far: the first (its model drawn unseeded), its unchanged rerun, and these
for heard in griffin_lim vocoder; do
  if [ "$heard" = griffin_lim ]; then
    bars="$results/default_checkpoint.json"
    draws=("$bars#finetune@100" "$results/default_checkpoint_finetune_redraw.json#finetune@100")
    for seed in "$@"; do draws+=("$results/default_checkpoint_finetune_seed$seed.json#finetune@100"); done
    # the bundled steps; Meta-SGD from its own start, its first draw and its three draws (BENCHMARKS.md)
    metasgd_draws="$bars#metasgd@5,$results/default_checkpoint_plain_start_800_rerun.json#metasgd@5"
    metasgd_draws+=",$results/default_checkpoint_plain_start_800_third.json#metasgd@5"
    candidates=("$bars#zero_shot@5" "$bars#metasgd@5" "$metasgd_draws")
  else  # the first draw was not measured through this vocoder
    bars="$results/default_checkpoint_neural_vocoder_aligned_start.json"
    draws=("$results/default_checkpoint_neural_vocoder_aligned_start_finetune_redraw.json#finetune@100")
    for seed in "$@"; do
      draws+=("$results/default_checkpoint_neural_vocoder_aligned_start_finetune_seed$seed.json#finetune@100")
    done
    candidates=("$bars#zero_shot@5")  # (its metasgd is the first recipe's, not the MAML bar's model)
  fi
  for metric in similarity wer; do
    python benchmarks/paired_comparison.py --metric "$metric" --baseline "${draws[@]}" \
      --candidates "${candidates[@]}" --out "$results/paired_test_finetune_draws_${heard}_$metric.json"
  done
done
