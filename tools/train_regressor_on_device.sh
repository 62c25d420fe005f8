#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Train the U-Net regressor (--method unet) on a lent GPU machine.
#
# Run from the repository root on the GPU host, with this ignored path carried along:
#   .prior_data/photos.npz    from `python -m codedap_depth.tools.prior_dataset --out $PWD/.prior_data`
#                             (or .regdata/photos.npz: a copy, when the cache makes
#                             .prior_data too large to carry)
# and $OUT set to the folder whose contents come back. Needs torch, numpy, scipy,
# scikit-image, pyyaml, pillow and safetensors (all in the GPU image); no diffusers.
#
# Usage: bash tools/train_regressor_on_device.sh [MINUTES] [extra regressor_train args...]
#   e.g. bash tools/train_regressor_on_device.sh 8
#   CPU smoke here: DEVICE=cpu OUT=/tmp/rs bash tools/train_regressor_on_device.sh 0.2 \
#       --batch 2 --crop 64 --val-samples 4 --val-every 2 --log-every 1
# Writes $OUT/regressor/{unet.safetensors,config.json,training.json,loss.jsonl}, $OUT/train.log
# and $OUT/check.log (the trained weights loaded back and run on a 320x240 frame).
set -euo pipefail
MINUTES="${1:-8}"
shift || true
: "${OUT:?set OUT to the output folder}"
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
DATA=.prior_data/photos.npz
test -f "$DATA" || DATA=.regdata/photos.npz
test -f "$DATA" || { echo "missing .prior_data/photos.npz or .regdata/photos.npz (carry it)" >&2; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if [ "$DEVICE" != cpu ]; then nvidia-smi; fi
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'

mkdir -p "$OUT"
"$PYTHON" -m codedap_depth.tools.regressor_train --data "$DATA" --out "$OUT/regressor" \
    --minutes "$MINUTES" --device "$DEVICE" "$@" 2>&1 | tee "$OUT/train.log"
"$PYTHON" - "$OUT/regressor" "$DEVICE" <<'PY' 2>&1 | tee "$OUT/check.log"
import sys, time, torch
from codedap_depth.regressor import load_regressor
reg = load_regressor(sys.argv[2], sys.argv[1])
frame = torch.rand(1, 3, 240, 320)
out = reg(frame)
start = time.perf_counter()
for _ in range(10):
    out = reg(frame)
print(f"loaded back, 320x240 on {sys.argv[2]}: {1000 * (time.perf_counter() - start) / 10:.1f}"
      f" ms/frame (with copies), depth {out.depth.min():.2f}-{out.depth.max():.2f} m")
PY
ls -la "$OUT" "$OUT/regressor"
