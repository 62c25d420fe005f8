# SPDX-License-Identifier: Apache-2.0
"""Pick DFD-DPS's settings on the development scenes (never on the held-out set).

Usage: ``python benchmarks/tune_sampler.py --device cuda --out DIR [--noise ...] [--camera
CAMERA.yaml] [--grid '[{"data_weight": 0.25}, ...]']``

Runs the ``aif`` (known depth) and ``full`` parts of ``halves.py`` for each setting of
``GRID`` (overrides of ``SamplerConfig``), and the depth step on the true AIF for each
guided-filter setting of ``DEPTH_GRID``; prints one summary line per setting (means over the
dev scenes and noise levels: AIF gain over least squares with the true depth, and blind AbsRel
and AIF gain over classical) and writes ``tune.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from halves import (
    REPO,
    as_tensor,
    baseline_image_rows,
    depth_scores,
    full_rows,
    known_depth_rows,
    load_set,
)

from codedap_depth.consistency import depth_from_image
from codedap_depth.evaluation import device_name
from codedap_depth.forward import LayeredBlur
from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.prior import load_prior
from codedap_depth.sampler import SamplerConfig
from codedap_depth.simulate import simulate_capture

GRID: list[dict] = [
    {"_extra_steps": [10, 50, 100]},
    {"data_weight": 0.25},
    {"data_weight": 1.0},
    {"sigma_max": 0.1},
    {"sigma_max": 0.4},
    {"cg_iterations": 5},
    {"cg_iterations": 20},
    {"init_cg_iterations": 0},
    {"init_cg_iterations": 50},
    {"renoise": 0.2},
    {"depth_start": 0.25},
    {"depth_start": 0.75},
    {"depth_start": 1.0},
]
DEPTH_GRID = [(r, e) for r in (6, 8, 10) for e in (1e-2, 3e-2, 0.1, 1.0)]


def summary(aif: list[dict], full: list[dict]) -> dict[str, float]:
    """Mean AIF gain over least squares (known depth) and over classical (blind), mean AbsRel
    and its ratio to classical's, per step count."""
    out: dict[str, float] = {}
    def by(rows, method, steps=None):
        return {(r["scene"], r["noise_sigma"], r["seed"]): r for r in rows
                if r["method"] == method and (steps is None or r["steps"] == steps)}
    ls = by(aif, "least-squares")
    for n in sorted({r["steps"] for r in aif if r["method"] == "dfd-dps"}):
        ours = by(aif, "dfd-dps", n)
        out[f"known_gain_db@{n}"] = float(np.mean([ours[k]["aif_psnr_db"] - ls[k]["aif_psnr_db"]
                                                  for k in ours]))
        out[f"known_min_gain_db@{n}"] = float(np.min([ours[k]["aif_psnr_db"]
                                                     - ls[k]["aif_psnr_db"] for k in ours]))
    classical = by(full, "classical")
    for n in sorted({r["steps"] for r in full if r["method"] == "dfd-dps"}):
        ours = by(full, "dfd-dps", n)
        out[f"absrel@{n}"] = float(np.mean([r["depth_absrel"] for r in ours.values()]))
        out[f"absrel_ratio@{n}"] = float(np.mean([ours[k]["depth_absrel"]
                                                 / classical[k]["depth_absrel"] for k in ours]))
        out[f"blind_gain_db@{n}"] = float(np.mean([ours[k]["aif_psnr_db"]
                                                  - classical[k]["aif_psnr_db"] for k in ours]))
    out["classical_absrel"] = float(np.mean([r["depth_absrel"] for r in classical.values()]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--noise", default="0.005,0.01,0.02,0.05")
    parser.add_argument("--steps", default="5,20")
    parser.add_argument("--camera", type=Path, default=REPO / "config" / "camera.yaml")
    parser.add_argument("--grid", type=json.loads, default=GRID,
                        help="JSON list of SamplerConfig overrides (default: GRID)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    bank = synthesize_bank(load_camera(args.camera))
    scenes = load_set("dev", bank, (width, height))
    noises = [float(v) for v in args.noise.split(",")]
    steps = [int(v) for v in args.steps.split(",")]
    prior = load_prior(args.device)
    captures = [(s, n, simulate_capture(s, bank, n, seed=0)) for s in scenes for n in noises]
    report: dict = {"device": device_name(args.device), "camera": str(args.camera), "depth": [],
                    "grid": []}
    model = LayeredBlur(bank, height, width).to(args.device)
    for radius, eps in DEPTH_GRID:
        scores = []
        for scene, _, coded in captures:
            with torch.no_grad():
                inv = depth_from_image(model, as_tensor(coded, args.device),
                                       as_tensor(scene.rgb, args.device), radius, eps)
            scores.append(depth_scores((1 / inv[0, 0]).cpu().numpy(), scene.depth))
        row = {"radius": radius, "eps": eps,
               **{k: float(np.mean([s[k] for s in scores])) for k in scores[0]}}
        report["depth"].append(row)
        print(f"true-AIF depth r={radius:2d} eps={eps:.0e}: AbsRel {row['depth_absrel']:.3f} "
              f"median {row['depth_median_rel']:.3f} delta1 {row['delta1']:.3f}", flush=True)
    baselines_aif, baselines_full = [], []
    for scene, noise, coded in captures:
        key = {"scene": scene.name, "noise_sigma": noise, "seed": 0}
        baselines_aif += [key | r for r in baseline_image_rows(scene, bank, coded, noise,
                                                               args.device)]
        baselines_full += [key | r for r in full_rows(scene, bank, coded, 0, [("classical", 0)],
                                                      prior, args.device, SamplerConfig())]
    report["baselines"] = {"aif": baselines_aif, "full": baselines_full}
    for overrides in args.grid:
        extra = overrides.pop("_extra_steps", [])
        sampler = dataclasses.replace(SamplerConfig(), **overrides)
        grid_steps = steps + extra
        aif, full = list(baselines_aif), list(baselines_full)
        for scene, noise, coded in captures:
            key = {"scene": scene.name, "noise_sigma": noise, "seed": 0}
            aif += [key | r for r in known_depth_rows(scene, bank, coded, 0, grid_steps, prior,
                                                      args.device, sampler)]
            full += [key | r for r in full_rows(scene, bank, coded, 0,
                                                [("dfd-dps", n) for n in steps], prior,
                                                args.device, sampler)]
        line = summary(aif, full)
        report["grid"].append({"overrides": overrides, **line,
                               "aif": aif[len(baselines_aif):],
                               "full": full[len(baselines_full):]})
        print(overrides, " ".join(f"{k} {v:.3f}" for k, v in line.items()), flush=True)
        (args.out / "tune.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
