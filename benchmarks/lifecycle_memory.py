# SPDX-License-Identifier: Apache-2.0
"""GPU memory of the lifecycle node across configure / activate / deactivate / cleanup cycles.

Runs ``LifecycleDepthNode`` in this process (its transitions called directly; no DDS peer is
needed) with the default camera (320x240) and prints, per cycle, the memory torch has allocated
and reserved on the device and the device's used memory (``cudaMemGetInfo``, all processes)
before configure, after configure (which warms up: one frame, CUDA graph capture on dfd-dps)
and after cleanup. Writes the same as JSON with ``--out``; ``--device cpu`` runs the
transitions only. On a lent GPU, ``tools/gpu_node.sh`` runs it.

    python benchmarks/lifecycle_memory.py --device cuda --cycles 3 --out lifecycle_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch


def snapshot(device: torch.device) -> dict[str, float]:
    """MB allocated and reserved by torch, and used on the device by all processes (empty on
    the CPU, where the script only runs the transitions)."""
    if device.type != "cuda":
        return {}
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return {"allocated_mb": torch.cuda.memory_allocated(device) / 2**20,
            "reserved_mb": torch.cuda.memory_reserved(device) / 2**20,
            "device_used_mb": (total - free) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--method", default="dfd-dps")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from codedap_depth.evaluation import device_name
    from codedap_depth.ros.lifecycle_node import LifecycleDepthNode

    device = torch.device(args.device)
    torch.zeros(1, device=device)  # the CUDA context exists before the first measurement
    rclpy.init()
    node = LifecycleDepthNode(parameter_overrides=[
        Parameter("device", value=args.device), Parameter("method", value=args.method)])
    cycles = []
    try:
        for _ in range(args.cycles):
            row = {"before_configure": snapshot(device)}
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            row["after_configure"] = snapshot(device)
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
            row["after_cleanup"] = snapshot(device)
            cycles.append(row)
            print(json.dumps({k: {m: round(v, 1) for m, v in s.items()} for k, s in row.items()}))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    result = {"device": device_name(args.device), "method": args.method, "cycles": cycles}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
