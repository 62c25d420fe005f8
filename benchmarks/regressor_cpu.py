# SPDX-License-Identifier: Apache-2.0
"""CPU time per frame of ``--method unet`` (the whole ``Reconstructor`` call: noise estimate,
padding, network, metres, copies) at 320x240 and 160x120, on simulated dev captures.

    python benchmarks/regressor_cpu.py [--threads 0] [--repeats 10] \
        [--out benchmarks/results/regressor_cpu.json]

Writes JSON naming the CPU (model name from /proc/cpuinfo), torch threads and torch version,
with the median and min over ``--repeats`` frames after two warm-up frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.pipeline import ReconstructionConfig, Reconstructor
from codedap_depth.scenes import load_scene
from codedap_depth.simulate import simulate_capture

SIZES = ((320, 240), (160, 120))


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/regressor_cpu.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bank = synthesize_bank(load_camera(share_file("config/camera.yaml")))
    rec = Reconstructor(bank, ReconstructionConfig(method="unet"))
    rows = []
    for width, height in SIZES:
        scene = load_scene("motorcycle", (0.5, 5.0), (width, height))
        coded = simulate_capture(scene, bank, 0.01, seed=0)
        for _ in range(2):
            rec(coded)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            rec(coded)
            times.append(time.perf_counter() - start)
        rows.append({"size": f"{width}x{height}", "median_ms": 1000 * statistics.median(times),
                     "min_ms": 1000 * min(times), "repeats": args.repeats})
        print(f"{width}x{height}: median {rows[-1]['median_ms']:.0f} ms, "
              f"min {rows[-1]['min_ms']:.0f} ms")
    result = {"method": "unet", "cpu": cpu_name(), "logical_cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['cpu']}, {result['torch_threads']} threads: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
