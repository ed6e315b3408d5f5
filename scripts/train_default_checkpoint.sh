#!/usr/bin/env bash
# Rebuild the bundled checkpoint (hf_metatts/checkpoints/default) from nothing, on CPU or GPU:
#   corpus -> prepared features -> multi-speaker pretraining (the baseline) -> Meta-SGD and Meta-LSTM
#   meta-training from it -> the support encoder added to Meta-SGD (zero-shot start) -> neural vocoder
#   -> a support encoder on a frozen speaker encoder, then MAML with Adam steps from it
#   (scripts/train_speaker_embedding_checkpoint.sh) -> MAML with Adam steps from its own start, for the MAML bar
#   (scripts/train_plain_start_checkpoints.sh) -> bundle -> the global-variance weight chosen on validation
#   -> bundle again -> the vocoder fine-tuned on the model's mels -> its adaptation to each voice chosen on
#   validation -> bundle again -> speed, bars, transcript check -> card.
# Each step is one command and can be run alone; logs go to logs/, runs to outputs/.
#   bash scripts/train_default_checkpoint.sh            # ~6 h on 2 CPU cores (two jobs at a time)
# THREADS sets torch threads per job (default 1: two single-threaded jobs side by side use 2 cores best).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs
export OMP_NUM_THREADS="${THREADS:-1}"

# The bundled checkpoint's corpus has every synthesiser voice, the Russian festival voice included, which
# scripts/setup.sh does not install: `sudo WITH_RUSSIAN=1 scripts/install_synthesizers.sh` does.
if [ ! -f data/voices/dataset_dict.json ] && \
    ! python -m hf_metatts.data.cli --list-sources 2>/dev/null | grep -q msu_ru_nsh_clunits; then
  echo "the festival voices are missing: run 'sudo WITH_RUSSIAN=1 scripts/install_synthesizers.sh' first" >&2
  exit 1
fi
[ -f data/voices/dataset_dict.json ] || \
  hf-metatts build-corpus --preset default --out data/voices --workers 2 > logs/build_corpus.log 2>&1
[ -f data/voices-prepared/dataset_dict.json ] || \
  hf-metatts --log-level INFO prepare-corpus --corpus data/voices --out data/voices-prepared \
    --splits train validation --num-proc 2 > logs/prepare_corpus.log 2>&1

# the baseline and the vocoder, side by side
hf-metatts --log-level INFO meta-train --config examples/configs/default_pretrain.json \
  > logs/default_pretrain.log 2>&1 &
pretrain=$!
hf-metatts --log-level INFO train-vocoder --dataset data/voices --out outputs/vocoder --max-steps 6000 \
  --threads "$OMP_NUM_THREADS" > logs/train_vocoder.log 2>&1 &
vocoder=$!
wait "$pretrain"

# both meta-learners start from the pretrained model
hf-metatts --log-level INFO meta-train --config examples/configs/default_metasgd.json \
  > logs/default_metasgd.log 2>&1 &
metasgd=$!
hf-metatts --log-level INFO meta-train --config examples/configs/default_meta_lstm.json \
  > logs/default_meta_lstm.log 2>&1 &
meta_lstm=$!
wait "$metasgd"

# the support encoder joins the trained Meta-SGD model (its learned rates continue)
hf-metatts --log-level INFO meta-train --config examples/configs/default_zero_shot.json \
  > logs/default_zero_shot.log 2>&1
wait "$meta_lstm" "$vocoder"

# the speaker-embedding start and its Adam steps (augmented corpus, speaker encoder, three continuations)
bash scripts/train_speaker_embedding_checkpoint.sh
# Meta-SGD (Adam directions) and MAML from their own meta-learned start, without the support encoder
bash scripts/train_plain_start_checkpoints.sh
# the step size the checkpoint ships with, chosen on the validation speakers (0.02: BENCHMARKS.md)
python benchmarks/adaptation_rules.py --checkpoint outputs/default_speaker_embedding_maml_adam --split validation \
  --rules learned adam:0.01 adam:0.02 --threads "$OMP_NUM_THREADS" \
  --out benchmarks/results/adaptation_rules_validation_speaker_embedding_maml_adam.json > logs/rules_validation.log 2>&1

runs="outputs/default_pretrain outputs/default_metasgd outputs/default_zero_shot outputs/default_speaker_embedding
      outputs/default_speaker_embedding_800 outputs/default_speaker_embedding_maml_adam outputs/default_meta_lstm
      outputs/vocoder"
bundle() {
  # shellcheck disable=SC2086
  hf-metatts --log-level INFO bundle --model outputs/default_speaker_embedding_maml_adam --vocoder outputs/vocoder \
    --inner-lr 0.02 --runs $runs --datasets hf-metatts/voices-default hf-metatts/voices-augmented \
    --out hf_metatts/checkpoints/default "$@"
}
bundle
# the weight of the inner loop's global-variance term, chosen on the validation speakers (0.3: BENCHMARKS.md)
python benchmarks/adaptation_rules.py --checkpoint hf_metatts/checkpoints/default --split validation --heldout 6 \
  --rules learned learned+gv0.3 learned+gv1 learned+gv3 --threads "$OMP_NUM_THREADS" \
  --out benchmarks/results/adaptation_rules_validation_global_variance.json > logs/rules_gv_validation.log 2>&1
bundle --global-variance-weight 0.3
# the vocoder fine-tuned on the bundled model's own adapted, teacher-forced mels (ground-truth aligned), then
# bundled in place of the first one, its run added to the card (BENCHMARKS.md: "The vocoder fine-tuned on the
# model's own mels")
hf-metatts --log-level INFO train-vocoder --dataset data/voices-augmented --aligned-model hf_metatts/checkpoints/default \
  --init-from outputs/vocoder --aligned-start-fraction 0.5 --learning-rate 2e-4 --warmup-steps 100 --max-steps 2000 \
  --eval-steps 250 --save-steps 250 --threads "$OMP_NUM_THREADS" --out outputs/vocoder_aligned_start \
  > logs/vocoder_aligned_start.log 2>&1
hf-metatts --log-level INFO bundle --model hf_metatts/checkpoints/default --vocoder outputs/vocoder_aligned_start \
  --runs outputs/vocoder_aligned_start --keep-runs --datasets hf-metatts/voices-default hf-metatts/voices-augmented \
  --out hf_metatts/checkpoints/default
# the vocoder adapted to each voice too (hf_metatts.voice_vocoder): settings on the validation speakers, the fastest
# that keep model.adapt within its 2 s chosen by similarity (BENCHMARKS.md: "The vocoder adapted to the voice")
for grid in "--vocoder-parameters head --vocoder-steps 15 20 --vocoder-lr 1e-3 3e-3" \
            "--vocoder-parameters all --vocoder-steps 15 20 50 --vocoder-lr 3e-4"; do
  # shellcheck disable=SC2086
  python benchmarks/vocoder_voice_adaptation.py --checkpoint hf_metatts/checkpoints/default --split validation \
    --languages --heldout 6 $grid --no-mcd --threads "$OMP_NUM_THREADS" \
    --out "benchmarks/results/vocoder_voice_adaptation_validation_$(echo "$grid" | cut -d' ' -f2).json" \
    > logs/vocoder_voice_adaptation.log 2>&1
done
hf-metatts --log-level INFO bundle --model hf_metatts/checkpoints/default --voice-vocoder-steps 15 \
  --voice-vocoder-lr 3e-3 --voice-vocoder-parameters 'head.*' 'final_norm.*' \
  --datasets hf-metatts/voices-default hf-metatts/voices-augmented --out hf_metatts/checkpoints/default
python benchmarks/voice_adaptation_speed.py --model hf_metatts/checkpoints/default --corpus data/voices --threads 2 \
  --out benchmarks/results/voice_adaptation_speed_default.json > logs/speed_adapt.log 2>&1
python benchmarks/synthesis_speed.py --model hf_metatts/checkpoints/default --threads 2 --runs 5 \
  --out benchmarks/results/synthesis_speed_default.json > logs/speed_synth.log 2>&1
python benchmarks/default_checkpoint.py --best zero_shot \
  --checkpoints zero_shot=hf_metatts/checkpoints/default finetune=outputs/default_pretrain \
    metasgd=outputs/default_plain_metasgd_adam_800 meta_lstm=outputs/default_meta_lstm maml=outputs/default_plain_maml_adam \
  --speed-json benchmarks/results/synthesis_speed_default.json benchmarks/results/voice_adaptation_speed_default.json \
  --out benchmarks/results/default_checkpoint.json > logs/benchmark_default.log 2>&1
python benchmarks/transcript_check.py --model hf_metatts/checkpoints/default --max-speakers 21 --clips-per-speaker 3 \
  --seed 1 --out benchmarks/results/transcript_check.json > logs/transcript_check.log 2>&1
hf-metatts --log-level INFO bundle --model hf_metatts/checkpoints/default --results benchmarks/results/default_checkpoint.json \
  --datasets hf-metatts/voices-default hf-metatts/voices-augmented --out hf_metatts/checkpoints/default  # its card with the bars
