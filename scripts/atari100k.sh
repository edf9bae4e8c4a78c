#!/usr/bin/env bash
# World-model agents on the 26 Atari100k games, then train/report.py: scores per game and model with
# bootstrap CIs over seeds, mean / median / IQM human-normalised aggregates, profiles (in $OUT/report/).
#   scripts/atari100k.sh                                    # 26 games x drama, preset=atari100k (a GPU)
#   MODELS="drama,s4wm,rssm" SEEDS="0,1,2" scripts/atari100k.sh
#   GAMES="Pong,Boxing" PRESET=small scripts/atari100k.sh  # a quick CPU check
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GAMES:-}" ]; then
  GAMES=$(python -c "from ssmrl.envs.atari.scores import GAMES; print(','.join(GAMES))")
fi
ENVS=$(echo "$GAMES" | sed -E 's#([^,]+)#atari/\1#g')   # Pong,Boxing -> atari/Pong,atari/Boxing
MODELS=${MODELS:-drama}
PRESET=${PRESET:-atari100k}
SEEDS=${SEEDS:-0}
OUT=${OUT:-runs/atari100k/$(date +%Y-%m-%d_%H-%M-%S)}
python train/world_model.py -m env=atari "env.name=$ENVS" "model=$MODELS" "preset=$PRESET" "seed=$SEEDS" \
  progress=false "hydra.sweep.dir=$OUT" "hydra.sweep.subdir=\${env.name}_\${model.name}_\${seed}"
python train/report.py "$OUT"
