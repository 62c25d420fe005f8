# SPDX-License-Identifier: Apache-2.0
"""Where a frame's GPU time goes: one eager dfd-dps frame under the torch profiler.

Prints the top kernels by device time and the total device (kernel) time against the frame's
wall time, and writes them as JSON. Eager by default, so that each kernel is attributed (a
CUDA-graph replay shows as one event; the kernels are the same ones the graph replays); with
``--graph`` the frame replays its graph and the table ranks host (CPU) time instead, which is
what is left to see there.

    python benchmarks/profile_frame.py --size 256x256 --steps 5 --cg 4 --out profile.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from torch.profiler import ProfilerActivity, profile

from codedap_depth.evaluation import device_name
from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.pipeline import ReconstructionConfig, Reconstructor
from codedap_depth.sampler import SamplerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256", help="WxH")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cg", type=int, default=4)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--graph", action="store_true", help="profile a graph-replayed frame")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    camera = load_camera(share_file("config/camera.yaml"))
    bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height))
    config = ReconstructionConfig(steps=args.steps, device="cuda", cuda_graph=args.graph,
                                  sampler=SamplerConfig(cg_iterations=args.cg))
    run = Reconstructor(bank, config)
    coded = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    run(coded)  # warm-up
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        rec = run(coded)
    attr = "self_cpu_time_total" if args.graph else "self_device_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr) > 0]
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    total_ms = sum(getattr(e, attr) for e in events) / 1000
    rows = [{"name": e.key[:90], "calls": e.count, "ms": getattr(e, attr) / 1000}
            for e in events[: args.top]]
    print(f"{device_name('cuda')}: {args.size}, {args.steps} steps, CG {args.cg}: wall "
          f"{rec.seconds * 1000:.1f} ms ({'graph' if args.graph else 'eager'}), "
          f"{'host' if args.graph else 'device kernel'} time {total_ms:.1f} ms")
    for row in rows:
        print(f"{row['ms']:8.2f} ms {row['calls']:6d}x  {row['name']}")
    args.out.write_text(json.dumps({"device": device_name("cuda"), "size": args.size,
                                    "steps": args.steps, "cg_iterations": args.cg,
                                    "graph": args.graph, "wall_ms": rec.seconds * 1000,
                                    "profiled_ms": total_ms,
                                    "top": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
