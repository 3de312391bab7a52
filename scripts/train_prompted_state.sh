#!/usr/bin/env bash
# The prompted state pipeline of the policy issue's gate G4 (research variant, simulation only), as measured in
# experiments/2026-12-06-prompted-state-pipeline.md:
#
#   scripts/train_prompted_state.sh     # data → state policy, state estimator, prompt embedding → evaluation
#
# Three models trained apart, run together from camera frames and a human prompt video:
#   - a state policy (condition: state) on robot demos of the seen skills and human demos of the human-only ones;
#   - a state estimator reading the scene off each frame, its frames also read under their twin task's skill;
#   - a prompt embedding telling which skill the prompt video shows (no skill label reaches the policy).
# Everything lands under $RUNS and $DATA; each step skips when its output exists.
# Environment: DATA (data/prompted), RUNS (runs/prompted), EPISODES_SEEN (50), EPISODES_UNSEEN (200),
# STATE_STEPS (20000), ESTIMATOR_STEPS (20000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 # one torch thread per process: the runs go side by side

DATA=${DATA:-data/prompted}
RUNS=${RUNS:-runs/prompted}
EPISODES_SEEN=${EPISODES_SEEN:-50}
EPISODES_UNSEEN=${EPISODES_UNSEEN:-200}
STATE_STEPS=${STATE_STEPS:-20000}
ESTIMATOR_STEPS=${ESTIMATOR_STEPS:-20000}
SEEN=push_box,pull_puck,open_drawer,rotate_lever,pick_lift
mkdir -p "$RUNS"

gen() { # out generate-args...
  local out=$1
  shift
  [ -f "$out/generate_summary.json" ] || humanprompt-sim generate --out "$out" --workers 2 --quiet "$@" >/dev/null
}

echo "== 1/4 data: 100 robot demos per seen skill, 100 human demos per skill, 20 held-out human demos per skill"
gen "$DATA/robot" --tasks "$SEEN" --embodiment robot --seed 0 --episodes 100
gen "$DATA/human" --embodiment human --seed 0 --episodes 100
gen "$DATA/human_heldout" --embodiment human --seed 1000000 --episodes 20

echo "== 2/4 state policy, state estimator and prompt embedding side by side"
[ -f "$RUNS/state/policy.safetensors" ] ||
  humanprompt-train stage2 --config config/stage2.yaml --set stage1=models/stage1.safetensors \
    --set condition=state --set policy.global_dropout=0 --set policy.guidance=1 \
    --set "train.steps=$STATE_STEPS" --set train.ema_decay=0.999 --set "out=$RUNS/state" \
    --set "data=[$DATA/robot, $DATA/human/knock_over, $DATA/human/pick_place, $DATA/human/press_button]" \
    >"$RUNS/state.log" 2>&1 &
[ -f "$RUNS/estimator.safetensors" ] ||
  python benchmarks/bench_state_estimator.py --data "$DATA/robot,$DATA/human" --per-task 100 --twin-views \
    --steps "$ESTIMATOR_STEPS" --batch 16 --lr 2e-3 --channels 16,32,32 --first-frame \
    --out "$RUNS/estimator.safetensors" >"$RUNS/estimator.log" 2>&1 &
wait
[ -f "$RUNS/prompt_embedding.safetensors" ] ||
  humanprompt-train prompt-embedding --data "$DATA/human" --heldout "$DATA/human_heldout" \
    --out "$RUNS/prompt_embedding.safetensors" >"$RUNS/prompt_embedding.log" 2>&1
tail -n 10 "$RUNS/estimator.log" "$RUNS/prompt_embedding.log"

echo "== 3/4 closed loop from frames and a held-out human prompt: seen and human-only skills"
ARGS="{\"execute\": 16, \"estimator\": \"$RUNS/estimator.safetensors\", \"prompt_embedding\": \"$RUNS/prompt_embedding.safetensors\"}"
for split in seen unseen; do
  episodes=$EPISODES_SEEN
  [ "$split" = unseen ] && episodes=$EPISODES_UNSEEN
  out="$RUNS/eval_$split.json"
  [ -f "$out" ] || humanprompt-sim eval --policy "prompted=$RUNS/state/policy.safetensors" --split "$split" \
    --episodes "$episodes" --policy-args "$ARGS" --workers 2 --out "$out" | tail -n 14
done

echo "== 4/4 table"
humanprompt-sim table "$RUNS/eval_seen.json" "$RUNS/eval_unseen.json"
