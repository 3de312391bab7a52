#!/usr/bin/env bash
# The prompt's benchmark: two twin pairs on shared scenes, small enough to fit stage 2 on a CPU.
#
#   scripts/train_twins.sh      # data → stage 2 (full, no prompt, no PDCP, oracle) → evaluation tables
#
# Sessions 14-15 ran these commands by hand (runs/s14 with z pooling the scene, runs/s15 with z pooling
# the prompt: pdcp.pool); the figures are in experiments/2026-11-30-twin-pairs.md.
#
# Each pair (knock_over / pull_puck, press_button / rotate_lever) holds one human-only skill and one
# robot skill that start from the very same scene (`--twin-scenes shared`), so the scene does not say
# which is asked: only the prompt does. With 4 tasks × SCENES scenes, STEPS steps are ~57 passes over
# the data (the default benchmark's recipe gets ~6-13 in the same time). experiments/2026-11-30-twin-pairs.md.
# Stage 1 is the default benchmark's (runs/stage1; scripts/train_benchmark.sh trains it); where it is missing,
# the one the shipped policy was trained with is written there from it (`humanprompt-train export --stage1`).
# Each step resumes or skips when its output exists, so a re-run continues.
# Environment: DATA (data/humanprompt-sim), RUNS (runs/twins), STAGE1 (runs/stage1/stage1.safetensors),
# SCENES (20), PROMPTS (prompt-only human demos per task, 80), STEPS (10000), EPISODES (eval episodes per skill, 50), SEED (training seed, 0), JOBS (2),
# POOL (what z pools in the prompted variants, pdcp.pool: prompt).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one torch thread per process: 2 threads contend badly on 2 cores

DATA=${DATA:-data/humanprompt-sim}
RUNS=${RUNS:-runs/twins}
STAGE1=${STAGE1:-runs/stage1/stage1.safetensors}
SCENES=${SCENES:-20}
PROMPTS=${PROMPTS:-80}
STEPS=${STEPS:-10000}
EPISODES=${EPISODES:-50}
SEED=${SEED:-0}
POOL=${POOL:-prompt}
JOBS=${JOBS:-2}
TASKS=knock_over,pull_puck,press_button,rotate_lever
mkdir -p "$RUNS/seed$SEED"
[ -f "$STAGE1" ] || humanprompt-train export --stage1 --checkpoint models/policy.safetensors --out "$STAGE1"

echo "== 1/3 data: $DATA/twins$SCENES (human demos of all 4 tasks, robot demos of pull_puck and rotate_lever)"
humanprompt-sim generate --out "$DATA/twins$SCENES" --tasks "$TASKS" --episodes "$SCENES" --twin-scenes shared --quiet
# PROMPTS more human demos per task, in scenes after those (still training seeds, never held-out ones),
# used only as prompts (prompt_data): with 20 prompts per task the policy learns the prompts, not the task
humanprompt-sim generate --out "$DATA/twins_prompts" --tasks "$TASKS" --embodiment human --seed "$SCENES" \
  --episodes "$PROMPTS" --twin-scenes shared --quiet

echo "== 2/3 stage 2: $STEPS steps each, training seed $SEED"
# The adaLN head with a learned null condition (experiments/2026-12-02-shared-scene-model.md); every variant the same
# but for its one flag. The two prompted ones pool z from the prompt alone (POOL): pooling the scene
# lets PDCP's prototypes name the skill from the robot hand in view (experiments/2026-11-30-twin-pairs.md);
# the oracle's z keeps its skill token and the no-prompt one its frame.
# Sampled plainly (guidance 1, as when these figures were made; the guided eval below sets its own scale), and
# prompted by human demos only (prompt_embodiment: human, the default then).
COMMON="--set policy.global_cond=true --set policy.guidance=1 --set prompt_embodiment=human --set train.steps=$STEPS --set train.seed=$SEED --set prompt_data=$DATA/twins_prompts"
declare -A VARIANTS=(
  [full]="--set policy.global_dropout=0.1 --set pdcp.pool=$POOL"
  [no_prompt]="--set condition=none"
  [no_pdcp]="--set policy.global_dropout=0.1 --set pdcp.enabled=false --set pdcp.pool=$POOL"
  [oracle]="--set condition=skill_oracle"
)
# full and no_prompt first: they build the two stage-1 feature caches (prompt / blank prompt).
for name in full no_prompt no_pdcp oracle; do
  out="$RUNS/seed$SEED/$name"
  if [ ! -f "$out/policy.safetensors" ]; then
    # shellcheck disable=SC2086
    humanprompt-train stage2 --config config/stage2.yaml --set "data=$DATA/twins$SCENES" \
      --set "stage1=$STAGE1" --set "out=$out" $COMMON ${VARIANTS[$name]} > "$out.log" 2>&1 &
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
done
wait

echo "== 3/3 closed loop: held-out shared scenes, prompts from held-out human demos; EPISODES per skill, then"
echo "         3 x EPISODES more of the human-only ones (the first 50 scenes flattered every row)"
policies=()
for name in full no_prompt no_pdcp oracle; do
  policies+=(--policy "$name=$RUNS/seed$SEED/$name/policy.safetensors")
done
humanprompt-sim eval "${policies[@]}" --tasks "$TASKS" --twin-scenes shared --episodes "$EPISODES" \
  --workers "$JOBS" --quiet --out "$RUNS/seed$SEED/eval_a.json"
humanprompt-sim eval "${policies[@]}" --tasks knock_over,press_button --twin-scenes shared \
  --seed $((1000000 + EPISODES)) --episodes $((3 * EPISODES)) --workers "$JOBS" --quiet --out "$RUNS/seed$SEED/eval_b.json"
# the prompted variants again with classifier-free guidance on z (their null z: global_dropout): session
# 15 found PDCP ahead of no PDCP only there (experiments/2026-12-04-pdcp-pairs-same-embodiment.md)
humanprompt-sim eval --policy "full=$RUNS/seed$SEED/full/policy.safetensors" \
  --policy "no_pdcp=$RUNS/seed$SEED/no_pdcp/policy.safetensors" --policy-args '{"guidance": 3.0}' \
  --tasks knock_over,press_button --twin-scenes shared --episodes $((4 * EPISODES)) --workers "$JOBS" --quiet \
  --out "$RUNS/seed$SEED/eval_g3.json"
humanprompt-sim table "$RUNS/seed$SEED/eval_a.json" "$RUNS/seed$SEED/eval_b.json" | tee "$RUNS/seed$SEED/eval.md"
humanprompt-sim table "$RUNS/seed$SEED/eval_g3.json" | tee -a "$RUNS/seed$SEED/eval.md"
