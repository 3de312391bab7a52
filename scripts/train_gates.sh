#!/usr/bin/env bash
# The policy issue's gates G2 and G3 on HumanPrompt-Sim's seen (robot) skills, as measured in
# experiments/2026-12-06-state-and-image-policies.md:
#
#   scripts/train_gates.sh        # data → G2 (true state + skill id) → G3 (images + skill id) → evaluation
#
# G2: can the head, the action chunks and the data do the skills when perception is perfect
#     (condition: state)? G3: does the policy's own image encoder see well enough (condition: skill_oracle,
#     stage1_features: false, 128² frames, an auxiliary loss locating the objects)?
# Everything lands under $RUNS and $DATA; each step resumes or skips when its output exists.
# Environment: DATA (data/gates), RUNS (runs/gates), EPISODES (eval episodes per skill, 50), STATE_STEPS
# (20000), IMAGE_STEPS (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 # one torch thread per process: the two runs go side by side

DATA=${DATA:-data/gates}
RUNS=${RUNS:-runs/gates}
EPISODES=${EPISODES:-50}
STATE_STEPS=${STATE_STEPS:-20000}
IMAGE_STEPS=${IMAGE_STEPS:-10000}
SEEN=push_box,pull_puck,open_drawer,rotate_lever,pick_lift
mkdir -p "$RUNS"

echo "== 1/4 data: 200 robot demonstrations per seen skill, and 200 more collected with DART noise"
humanprompt-sim generate --out "$DATA/clean" --tasks "$SEEN" --embodiment robot --seed 0 --episodes 200 --quiet
humanprompt-sim generate --out "$DATA/dart" --tasks "$SEEN" --embodiment robot --seed 200 --episodes 200 \
  --noise-wrist-cm 1.0 --noise-tips-cm 0.3 --quiet
for src in "$DATA/clean" "$DATA/dart"; do # clean_dart links both (failed noisy episodes are skipped in training)
  (cd "$src" && find . -mindepth 3 -maxdepth 3 -type d) | while read -r ep; do
    mkdir -p "$DATA/clean_dart/$(dirname "$ep")"
    [ -e "$DATA/clean_dart/$ep" ] || ln -s "$(realpath "$src/$ep")" "$DATA/clean_dart/$ep"
  done
done

train() { # name data steps overrides...
  local name=$1 data=$2 steps=$3
  shift 3
  [ -f "$RUNS/$name/policy.safetensors" ] ||
    humanprompt-train stage2 --config config/stage2.yaml --set stage1=models/stage1.safetensors \
      --set "data=$data" --set "out=$RUNS/$name" --set "train.steps=$steps" --set train.ema_decay=0.999 \
      --set policy.global_dropout=0 --set policy.guidance=1 "$@" >"$RUNS/$name.log" 2>&1
}

echo "== 2/4 G2 (state) and G3 (images) side by side"
train state "$DATA/clean" "$STATE_STEPS" --set condition=state &
train image "$DATA/clean" "$IMAGE_STEPS" --set condition=skill_oracle --set stage1_features=false \
  --set prompt_tokens=false --set pdcp.enabled=false --set pdcp.pool=scene --set frame_encoder.image_size=128 \
  --set frame_encoder.shift=8 --set frame_encoder.state_weight=1.0 &
wait

echo "== 3/4 closed loop: $EPISODES held-out scenes per seen skill, chunks of 16 and of 8 actions"
for name in state image; do
  for execute in 16 8; do
    out="$RUNS/eval_${name}_execute${execute}.json"
    [ -f "$out" ] || humanprompt-sim eval --policy "$name=$RUNS/$name/policy.safetensors" --split seen \
      --episodes "$EPISODES" --policy-args "{\"execute\": $execute}" --workers 2 --out "$out" | tail -n 12
  done
done

echo "== 4/4 done: humanprompt-sim table $RUNS/eval_*.json"
