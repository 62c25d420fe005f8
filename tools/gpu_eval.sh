#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The accuracy measurement on a lent GPU (one call): the dev and
# held-out sets through both cameras (image half and floors by benchmarks/halves.py, the blind
# accuracy by `codedap-depth eval`), the known-depth AIF against steps, and the real-time
# speed of both presets. Carry .whl/ (diffusers and its pure-Python needs, cp312), .evaldata/
# (opencv-doc's aloeL.jpg and aloeGT.png) and .heldout_data/ (tools/fetch_heldout.py).
# Writes $OUT/results.tgz (one folder per run: halves.json, results.json/.md of `codedap-depth
# eval`, or bench.json), re-packed after each set and camera, so a call cut off at its limit
# still returns what finished. The runs themselves stay in /tmp: the device tool brings back at
# most 8 files from $OUT and leaves the rest out, so only the archive goes there. To split the
# work over calls: CAMERAS (default "camera camera_b") and SETS (default "dev heldout") pick
# cameras and sets; HALVES=0 skips the parts that do not depend on the blind pipeline (image
# half with known depth, floors, steps with known depth) and PARTS (default aif,floors) picks
# halves.py's parts; STEPS=0 skips the steps part, EVAL=0 the blind eval, SPEED=0 the speed
# part; METHODS overrides the blind eval's methods (default
# classical,dfd-dps:4,dfd-dps:20,dfd-dps:50). With five methods (unet added) the evals alone
# took about 9 minutes on an H200 with figures (now not written).
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export CODEDAP_OPENCV_DATA=$PWD/.evaldata CODEDAP_HELDOUT_DATA=$PWD/.heldout_data
nvidia-smi -L
work=/tmp/gpu_eval
runs=$work/runs
mkdir -p "$runs" "$OUT"
for camera in ${CAMERAS:-camera camera_b}; do
    for set in ${SETS:-dev heldout}; do
        [ "${HALVES:-1}" = 0 ] || timeout 150 python3 benchmarks/halves.py --parts "${PARTS:-aif,floors}" \
            --set $set --camera config/$camera.yaml --steps 4,20 --seeds 1 \
            --out "$runs/aif_${set}_$camera"
        suite=$([ $set = dev ] && echo all || echo heldout)
        [ "${EVAL:-1}" = 0 ] || timeout 300 python3 -m codedap_depth.cli eval --suite $suite \
            --camera config/$camera.yaml --methods "${METHODS:-classical,dfd-dps:4,dfd-dps:20,dfd-dps:50}" \
            --noise 0.005,0.01,0.02,0.05 --seeds 3 \
            --device cuda --no-figures --out "$runs/eval_${set}_$camera"
        tar czf "$OUT/results.tgz" -C "$work" runs  # after each run: a cut-off call keeps it
    done
done
# known depth against steps, default camera: 4 and 20 steps are the image-half runs above
for set in ${SETS:-dev heldout}; do
    [ "${HALVES:-1}" = 0 ] || [ "${STEPS:-1}" = 0 ] || timeout 150 python3 benchmarks/halves.py \
        --parts aif --set $set --noise 0.005,0.01,0.02,0.05 --steps 10,50,100 --seeds 1 \
        --out "$runs/steps_$set"
done
[ "${SPEED:-1}" = 0 ] || timeout 90 python3 -m codedap_depth.cli bench --device cuda --parts speed \
    --sizes 256x256,512x512,320x240 --steps 4,20 --samples 1 --cg 10 --out "$runs/speed"
tar czf "$OUT/results.tgz" -C "$work" runs
