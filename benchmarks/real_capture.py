# SPDX-License-Identifier: Apache-2.0
"""The real coded capture through every method: re-render error, depth per region, time.

Usage::

    CODEDAP_REAL_CODED=/path/to/real_coded python benchmarks/real_capture.py \
        --out benchmarks/results/real_capture_cpu --figure docs/real_capture_dfd-dps.png

The folder holds ``capture_29_crop.png`` (720x181 RGB coded photo) and ``psfs_29.npz`` (its
8 calibrated 11x11 PSFs, 2.33-3.03 m); README, "Real coded capture". There is no ground
truth, so this reports what can be checked: how well depth and AIF, rendered back through
the bank by the occlusion-aware model, explain the photo (RMS over the frame, [0, 1]
intensities, against the noise the pipeline estimates from the photo), and the median depth
of a few regions (``REGIONS``) that are one surface each. Prints a table and writes
``real_capture.json`` naming the device; ``--figure`` draws the default method's panels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from codedap_depth.evaluation import device_name
from codedap_depth.figures import panel_figure
from codedap_depth.forward import LayeredBlur
from codedap_depth.imageio import read_image
from codedap_depth.optics import load_bank
from codedap_depth.pipeline import (
    DEFAULT_STEPS,
    QUALITY_STEPS,
    ReconstructionConfig,
    Reconstructor,
)

VARIABLE = "CODEDAP_REAL_CODED"
#: (rows, columns) of regions that are one surface each, in the 720x181 crop.
REGIONS = {
    "checkerboard": (slice(0, 68), slice(330, 495)),
    "face": (slice(15, 140), slice(515, 630)),
    "board interior": (slice(75, 176), slice(120, 310)),
}
#: (method, steps) run; the first is drawn by ``--figure``.
RUNS = (("dfd-dps", DEFAULT_STEPS), ("dfd-dps", QUALITY_STEPS), ("classical", 0))


def rerender_rms(bank, coded: np.ndarray, depth: np.ndarray, aif: np.ndarray) -> float:
    """RMS of ``coded - A(aif, depth)`` ([0, 1] intensities) through the occlusion-aware model."""
    height, width = depth.shape
    model = LayeredBlur(bank, height, width)
    with torch.no_grad():
        image = torch.from_numpy(np.ascontiguousarray(aif.transpose(2, 0, 1)))[None]
        inv = torch.from_numpy(1.0 / depth)[None, None]
        rendered = model(image, inv)[0].permute(1, 2, 0).numpy()
    return float(np.sqrt(np.mean((rendered - coded) ** 2)))


def run(folder: Path, device: str) -> tuple[list[dict], dict]:
    """Every run's row, and the first run's outputs for the figure."""
    bank = load_bank(folder / "psfs_29.npz")
    coded = read_image(folder / "capture_29_crop.png")
    rows, first = [], {}
    for method, steps in RUNS:
        config = ReconstructionConfig(method=method, steps=max(steps, 1), device=device)
        rec = Reconstructor(bank, config)(coded)
        rows.append({"method": method, "steps": steps, "seconds": rec.seconds,
                     "noise_sigma": rec.noise_sigma,
                     "rerender_rms": rerender_rms(bank, coded, rec.depth, rec.aif),
                     **{f"median_depth_m/{name}": float(np.median(rec.depth[box]))
                        for name, box in REGIONS.items()}})
        first = first or {"coded": coded, "rec": rec, "limits": (bank.depths[0], bank.depths[-1])}
    return rows, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    if not os.environ.get(VARIABLE):
        sys.exit(f"set {VARIABLE} to the folder of the real coded capture")
    rows, first = run(Path(os.environ[VARIABLE]), args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": device_name(args.device), "rows": rows}
    (args.out / "real_capture.json").write_text(json.dumps(report, indent=1) + "\n")
    keys = [k for k in rows[0] if k not in ("method", "steps")]
    print(f"## real capture ({report['device']})\n")
    print("| method | steps | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['method']} | {row['steps']} | "
              + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    if args.figure:
        rec = first["rec"]
        panel_figure([("coded input", first["coded"], None), ("all-in-focus", rec.aif, None),
                      ("depth", rec.depth, "m"), ("uncertainty (std)", rec.uncertainty, "m")],
                     args.figure, depth_limits=tuple(float(v) for v in first["limits"]))
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
