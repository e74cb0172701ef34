#!/usr/bin/env bash
# Pack here what bench/gpu_check.sh needs on the GPU machine, which has no corpora, no Kaldi
# packages and no network: gpu-carry/ (git-ignored; about 35 MiB, under the 64 MiB a device call
# carries) and shared-device/ (the Kaldi-family wheels and setup.sh from ../shared/device).
#   gpu-carry/yesno/waves_yesno   yesno's 60 recordings (8 kHz 16-bit WAV, 5.8 MB)
#   gpu-carry/an4/                AN4 after its stage 9, as a recipe dir: the test set's features,
#                                 the graph, the tri1 GMM and the ensemble, the decode configs
# Then:  device run  command="bash bench/gpu_check.sh"  carry=["gpu-carry", "shared-device"]
# Usage: bash bench/gpu_pack.sh [AN4_RECIPE_DIR (default recipes/an4)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
an4=$(cd "${1:-$root/recipes/an4}" && pwd)
shared=$root/../shared
cd "$root"
for need in "$an4/exp/graph/HCLG.fst" "$an4/exp/ensemble/final.pt" "$an4/data/test/feats.scp"; do
  [ -e "$need" ] || { echo "gpu_pack: $need is missing (run AN4's stages 0-9 first)" >&2; exit 1; }
done
rm -rf gpu-carry.tmp && mkdir -p gpu-carry.tmp/yesno gpu-carry.tmp/an4/data gpu-carry.tmp/an4/exp
cp -r "$shared/corpora/yesno/waves_yesno" gpu-carry.tmp/yesno/
cp -r "$an4/conf" gpu-carry.tmp/an4/
cp -r "$an4/data/test" gpu-carry.tmp/an4/data/
cp -r "$an4/exp/graph" gpu-carry.tmp/an4/exp/
for system in tri1 ensemble; do
  mkdir -p gpu-carry.tmp/an4/exp/$system
  cp "$an4"/exp/$system/final.* gpu-carry.tmp/an4/exp/$system/
done
rm -rf gpu-carry && mv gpu-carry.tmp gpu-carry
rm -rf shared-device && cp -r "$shared/device" shared-device
du -sh gpu-carry shared-device
