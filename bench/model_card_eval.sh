#!/usr/bin/env bash
# Every segmentation figure of the shipped model's card, from one script.
# Usage: bench/model_card_eval.sh OXFORD17_DIR [OUT]   (OXFORD17_DIR holds images/ and masks/)
set -euo pipefail
set_dir=${1:?folder with images/ and masks/}; out=${2:-segtool-out/model-card}
export OMP_WAIT_POLICY=PASSIVE
st=.venv/bin/segtool

# 1. Settings selection: every third image (282 of 846). docs/PIPELINE.md.
$st eval "folder:$set_dir" --stride 3 --out "$out/selection" \
  --methods 'scvae,scvae[refine=none],scvae[colour_weight=0],scvae[colour_weight=0,refine=none],scvae[k=2],scvae[k=3],scvae[k=2,method=spectral],scvae[k=3,method=spectral],scvae[rule=geodesic],scvae[consensus=[2,3,4,5,6]]' \
  --compare 'colour-pipeline,colour-pipeline[refine=none],grabcut,colour,ellipse'

# 2. The full set (846): k=2 and k=3, spectral and K-means, with and without refinement, the
#    default vote, the same pipeline on colour, and the classical baselines in one table.
$st eval "folder:$set_dir" --out "$out/full" \
  --methods 'scvae,scvae[refine=none],scvae[k=2],scvae[k=2,refine=none],scvae[k=3],scvae[k=3,refine=none],scvae[k=2,method=spectral],scvae[k=2,method=spectral,refine=none],scvae[k=3,method=spectral],scvae[k=3,method=spectral,refine=none],scvae[colour_weight=0]' \
  --compare 'colour-pipeline,colour-pipeline[refine=none],grabcut,colour,ellipse'

# 3. Noise robustness on the full set (the paper's Fig. 10): writes noise.png.
$st eval "folder:$set_dir" --out "$out/noise" --noise 0,0.1,0.2,0.3 \
  --methods scvae --compare 'colour-pipeline,grabcut,colour'

# 4. The acceptance command, as a user would type it.
$st eval "folder:$set_dir" --k 2 --compare grabcut,colour --out "$out/k2"
