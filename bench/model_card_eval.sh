#!/usr/bin/env bash
# Every segmentation figure of the shipped model's card, from one script.
# Usage: bench/model_card_eval.sh OXFORD17_DIR [OUT] [PARTS]
#   OXFORD17_DIR holds images/ and masks/; PARTS is any of "selection full noise k2" (default: all),
#   so that parts can run side by side on a machine with spare cores.
set -euo pipefail
set_dir=${1:?folder with images/ and masks/}; out=${2:-segtool-out/model-card}; parts=${3:-selection full noise k2}
export OMP_WAIT_POLICY=PASSIVE
st=.venv/bin/segtool
# The card's tables were made with the scorers fit on Oxford-17 alone (shipped as scvae-flowers and
# colour-pipeline-flowers); pinning them keeps every table reproducible now that the default scorer
# is fit across kinds of images.
# They also predate the saliency vote and the per-image cut: P pins the map as it was then.
P='saliency_weight=0,mask_cut=0.5'
# and V the vote as it was then (a method with its own k takes no vote).
V='consensus=[3,4,6,8]'
S="scvae[scorer=scvae-flowers,$P,$V]"; C="colour-pipeline[scorer=colour-pipeline-flowers,$P,$V]"

for part in $parts; do
  case $part in
  selection)  # Settings selection: every third image (282 of 846). docs/PIPELINE.md.
    $st eval "folder:$set_dir" --stride 3 --out "$out/selection" \
      --methods "$S,scvae[scorer=scvae-flowers,$P,$V,refine=grabcut],scvae[scorer=scvae-flowers,$P,$V,colour_weight=0],scvae[scorer=scvae-flowers,$P,k=2],scvae[scorer=scvae-flowers,$P,k=3],scvae[scorer=scvae-flowers,$P,k=2,method=spectral],scvae[scorer=scvae-flowers,$P,k=3,method=spectral],scvae[rule=simple,consensus=[2,3,4],refine=grabcut]" \
      --compare "$C,colour-pipeline[rule=simple,consensus=[2,3,4],refine=grabcut],grabcut,colour,ellipse" ;;
  full)  # All 846: k=2 and k=3, spectral and K-means, with and without refinement, the default
         # vote, the same pipeline on colour (the ablation), the label-free rule of earlier versions
         # (boundary connectivity, k = 2, 3, 4, GrabCut), and the classical baselines in one table.
    $st eval "folder:$set_dir" --out "$out/full" \
      --methods "$S,scvae[scorer=scvae-flowers,$P,$V,refine=grabcut],scvae[scorer=scvae-flowers,$P,k=2],scvae[scorer=scvae-flowers,$P,k=2,refine=grabcut],scvae[scorer=scvae-flowers,$P,k=3],scvae[scorer=scvae-flowers,$P,k=3,refine=grabcut],scvae[scorer=scvae-flowers,$P,k=2,method=spectral],scvae[scorer=scvae-flowers,$P,k=2,method=spectral,refine=grabcut],scvae[scorer=scvae-flowers,$P,k=3,method=spectral],scvae[scorer=scvae-flowers,$P,k=3,method=spectral,refine=grabcut],scvae[scorer=scvae-flowers,$P,$V,colour_weight=0],scvae[rule=simple,consensus=[2,3,4],refine=grabcut]" \
      --compare "$C,colour-pipeline[scorer=colour-pipeline-flowers,$P,$V,refine=grabcut],colour-pipeline[rule=simple,consensus=[2,3,4],refine=grabcut],grabcut,colour,ellipse" ;;
  noise)  # Noise robustness on all 846 (the paper's Fig. 10): writes noise.png.
    $st eval "folder:$set_dir" --out "$out/noise" --noise 0,0.1,0.2,0.3 \
      --methods "$S" --compare "$C,grabcut,colour" ;;
  k2)  # The acceptance command, as a user would type it.
    $st eval "folder:$set_dir" --methods "$S" --k 2 --compare grabcut,colour --out "$out/k2" ;;
  *) echo "unknown part $part (choose from: selection full noise k2)" >&2; exit 2 ;;
  esac
done
