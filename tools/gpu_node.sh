#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The node on a lent GPU (one call): benchmarks/lifecycle_memory.py (GPU memory across
# configure/cleanup cycles) and benchmarks/node_gpu.py (node over real DDS beside bench).
# Carry .whl/ (see tools/gpu_eval.sh) and .rosbundle/ros.tar.xz (built here by the shared
# gpu-ros-bundle tool after `make test`). Writes $OUT/lifecycle_memory.json, $OUT/node_gpu/.
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
mkdir -p /tmp/v && tar -xJf .rosbundle/ros.tar.xz -C /tmp/v || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl || exit 1
export PYTHONPATH=/tmp/v/lib/python3.12/site-packages:/tmp/site:$PWD
export LD_LIBRARY_PATH=/tmp/v/lib:$(ls -d /tmp/v/lib/python3.12/site-packages/ros_*.libs | tr '\n' ':')
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 AMENT_PREFIX_PATH=/tmp/v RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=77 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L
timeout 120 python3 benchmarks/lifecycle_memory.py --device cuda --cycles 3 \
    --out "$OUT/lifecycle_memory.json"
timeout 300 python3 benchmarks/node_gpu.py --device cuda --sizes 320x240,640x480 --hz 10,30 \
    --seconds 8 --warmup 5 --out "$OUT/node_gpu"
