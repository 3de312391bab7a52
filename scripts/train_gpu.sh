#!/usr/bin/env bash
# The whole learning pipeline on one CUDA GPU, sized by wall-clock budgets instead of step counts:
# model timings, stage 1 (with classifier-free prompt dropout), its evaluation, the five stage-2
# variants of the evaluation table trained side by side, and float16 exports of every checkpoint.
# The closed-loop evaluation (MuJoCo, CPU) runs afterwards wherever the benchmark is installed:
#   humanprompt-sim eval --policy full=OUT/full.safetensors --policy no_prompt=OUT/no_prompt.safetensors ...
#
#   DATA=data/humanprompt-sim OUT=runs/gpu S1_SECONDS=190 bash scripts/train_gpu.sh
#
# DATA holds train/ and heldout/ (humanprompt-sim generate; only meta.json, actions.npy, proprio.npy
# and frames_64.npy of each episode are read). PY is the Python that has torch with CUDA and the
# package's requirements (default python3). This is how models/policy.safetensors was trained when a
# GPU was lent (models/README.md); scripts/train_benchmark.sh is the CPU route.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DATA=${DATA:-data/humanprompt-sim}
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
S1_SECONDS=${S1_SECONDS:-180}     # stage-1 denoiser budget (the autoencoder takes AE_STEPS first)
AE_STEPS=${AE_STEPS:-2000}
# Per stage-2 variant (the five run at the same time on the one GPU): S2_SECONDS of training, unless
# S2_STEPS come first. The policy needs many passes over its data (~100;
# experiments/2026-11-29-fitting-and-scene-leak.md), so by default the budget decides.
S2_STEPS=${S2_STEPS:-1000000}
S2_SECONDS=${S2_SECONDS:-600}
S2_DATA=${S2_DATA:-$DATA/train}   # e.g. $DATA/train80 (scenes 0-79, scripts/train_benchmark.sh links it)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
train() { "$PY" -m humanprompt_ros.cli.train "$@"; }
mkdir -p "$OUT"
start=$SECONDS
stamp() { echo "[train_gpu] $(( SECONDS - start )) s: $*"; }

stamp "model timings on $DEVICE"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
"$PY" benchmarks/bench_models.py --device "$DEVICE" --iters 100 | tee "$OUT/bench_models_$DEVICE.txt"

stamp "stage 1"
train stage1 --config config/stage1.yaml --fresh --set data="$DATA/train" --set out="$OUT/stage1" \
    --set model.prompt_dropout=0.1 --set train.ae_steps="$AE_STEPS" --set train.ae_batch_size=64 \
    --set train.batch_size=64 --set train.steps=1000000 --set train.time_budget_s="$S1_SECONDS" \
    --set train.warmup_steps=500 --set train.checkpoint_every=5000 --set train.log_every=100 --set train.device="$DEVICE"
S1="$OUT/stage1/stage1.safetensors"

stamp "stage-1 evaluation (background) and five stage-2 variants"
train eval-stage1 --checkpoint "$S1" --train "$DATA/train" --heldout "$DATA/heldout" --device "$DEVICE" \
    --guidance 1,3 --json > "$OUT/eval_stage1.txt" 2>&1 &
variants=("full:" "no_prompt:condition=none policy.global_dropout=0 policy.guidance=1" "no_stage1:stage1_pretrained=false stage1_trainable=true"
          "no_pdcp:pdcp.enabled=false" "oracle:condition=skill_oracle")
for v in "${variants[@]}"; do
    name=${v%%:*}
    sets=(--set data="$S2_DATA" --set stage1="$S1" --set out="$OUT/stage2/$name" --set train.cached_prompts=0
          --set train.batch_size=64 --set train.steps="$S2_STEPS" --set train.time_budget_s="$S2_SECONDS"
          --set train.checkpoint_every=1000000 --set train.log_every=100 --set train.device="$DEVICE")
    for kv in ${v#*:}; do sets+=(--set "$kv"); done
    train stage2 --config config/stage2.yaml --fresh "${sets[@]}" > "$OUT/stage2_$name.log" 2>&1 &
done
wait
stamp "exports"
train export --checkpoint "$S1" --out "$OUT/stage1.safetensors"
for v in "${variants[@]}"; do
    name=${v%%:*}
    train export --checkpoint "$OUT/stage2/$name/policy.safetensors" --out "$OUT/$name.safetensors" ||
        { echo "[train_gpu] $name failed:"; tail -c 2000 "$OUT/stage2_$name.log"; }
    tr '\r' '\n' < "$OUT/stage2_$name.log" | grep "^stage2" | tail -1 || true
done
tr '\r' '\n' < "$OUT/eval_stage1.txt" | grep -v -e '^{' -e 'it/s' -e '^load' || true
stamp "done"
