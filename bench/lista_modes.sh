#!/usr/bin/env bash
# Paper vs official LISTA at equal training (600 steps of 64x64 crops, small-d3, same seed), then
# the label-free pipeline (the default when this was measured: boundary connectivity, k = 2, 3, 4,
# GrabCut) and codes-only clustering on every 6th Oxford-17 image.
# Usage: bench/lista_modes.sh IMAGENET_SAMPLE_DIR OXFORD17_DIR [OUT]
set -euo pipefail
data=${1:?imagenet-style training folder}; eval_set=${2:?folder with images/ and masks/}; out=${3:-segtool-out/lista-modes}
export OMP_WAIT_POLICY=PASSIVE
for mode in paper official; do
  .venv/bin/segtool train small-cpu --data-root "$data" --out "$out/$mode" --set model.lista_mode=$mode \
    --max-steps 600 --set 'train.resolution_schedule=[]' --set train.ckpt_every=600 --set train.warmup_steps=50
  grep '"kind": "checkpoint"' "$out/$mode/log.jsonl" | tail -1
  .venv/bin/segtool eval "folder:$eval_set" --stride 6 --model "$out/$mode/checkpoints/step-00000600" \
    --methods "scvae[rule=simple,consensus=[2,3,4],refine=grabcut],scvae[rule=simple,consensus=[2,3,4],refine=none,colour_weight=0]" --out "$out/eval-$mode"
done
