#!/usr/bin/env bash
# Final returns for every POPGym game x model at one budget: train/report.py's tables (mean and IQM with
# bootstrap CIs over seeds), aggregate, profile and curves in $OUT/report/.
#   scripts/popgym_table.sh                       # all 45 games x {s5,gru,mamba,mlp}, preset=small, 1M steps
#   GAMES="RepeatPreviousEasy,CountRecallEasy" MODELS="s5,gru" STEPS=300000 scripts/popgym_table.sh
#   PRESET=full STEPS=15000000 scripts/popgym_table.sh     # the paper budget, for a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GAMES:-}" ]; then
  GAMES=$(python -c "from envs.popgym import ENVS; print(','.join(sorted(ENVS)))")
fi
MODELS=${MODELS:-s5,gru,mamba,mlp}
STEPS=${STEPS:-1000000}
PRESET=${PRESET:-small}
SEEDS=${SEEDS:-3}   # vmapped in one run per game x model
OUT=${OUT:-runs/popgym-table/$(date +%Y-%m-%d_%H-%M-%S)}
python train/ppo.py -m env=popgym "env.name=$GAMES" "model=$MODELS" "preset=$PRESET" \
  "total_timesteps=$STEPS" "seeds=$SEEDS" progress=false deterministic_eval=true "hydra.sweep.dir=$OUT"
python train/report.py "$OUT"
