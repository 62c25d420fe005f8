#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Train the diffusion prior on a lent GPU machine and benchmark it.
#
# Run from the repository root on the GPU host, with these ignored paths carried along:
#   .whl/                     diffusers 0.42.1 + importlib_metadata (+ zipp, lazy-importer);
#                             optionally bm3d, bm4d, PyWavelets (cp312, manylinux) for the
#                             BM3D column of the quality benchmark (skipped without them)
#   .prior_data/photos.npz    from `python -m codedap_depth.tools.prior_dataset --out .prior_data`
# and $OUT set to the folder whose contents come back.
#
# Usage: bash tools/train_prior_on_device.sh [MINUTES] [extra prior_train args...]
#   e.g. bash tools/train_prior_on_device.sh 12 --dead-leaves 0.25
#        bash tools/train_prior_on_device.sh 8 --init codedap_depth/weights   # continue
# Writes $OUT/prior/{unet.safetensors,config.json,scheduler.json,training.json,loss.jsonl},
# $OUT/prior_quality.json and $OUT/prior_samples.png, and $OUT/shipped_quality.json: the same
# benchmark of the shipped weights (codedap_depth/weights) on the same photos. Eight files at
# most, the most the device tool brings back (with more, some are left out, weights included);
# the logs stay in /tmp and are printed.
set -euo pipefail
MINUTES="${1:-12}"
shift || true
: "${OUT:?set OUT to the output folder}"
test -f .prior_data/photos.npz || { echo "missing .prior_data/photos.npz (carry it)" >&2; exit 2; }
ls .whl/*.whl >/dev/null || { echo "missing .whl/*.whl (carry it)" >&2; exit 2; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi
python3 -c 'import torch, diffusers; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), torch.cuda.get_device_name(0), "diffusers", diffusers.__version__)'
no_bm3d=$(python3 -c 'import bm3d' 2>/dev/null || echo --no-bm3d)

mkdir -p "$OUT"
python3 -m codedap_depth.tools.prior_train --data .prior_data/photos.npz --out "$OUT/prior" \
    --minutes "$MINUTES" --device cuda "$@" 2>&1 | tr '\r' '\n' > /tmp/train.log \
    || { tail -n 40 /tmp/train.log; exit 1; }  # a failed run prints why
grep -v 'step/s\|it/s' /tmp/train.log | tail -n 5
python3 benchmarks/prior_quality.py --weights "$OUT/prior" --device cuda --out "$OUT" \
    --data .prior_data/photos.npz $no_bm3d
python3 benchmarks/prior_quality.py --weights codedap_depth/weights --device cuda \
    --out /tmp/shipped --data .prior_data/photos.npz $no_bm3d
cp /tmp/shipped/prior_quality.json "$OUT/shipped_quality.json"
find "$OUT" -type f | sort
