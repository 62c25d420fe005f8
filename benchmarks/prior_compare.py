# SPDX-License-Identifier: Apache-2.0
"""Two priors side by side on the same captures: known-depth AIF (4 and 20 steps) and the blind
4-step result, over the dev and held-out sets.

Each (scene, noise) capture is simulated once (seed 0) and reconstructed with both priors, so
the difference is the prior's alone. Prints a table of set means and writes ``rows.json``.

    python benchmarks/prior_compare.py --old OLD_WEIGHTS --new codedap_depth/weights \\
        --size 160x120 --out benchmarks/results/prior_compare_cpu_s21
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from halves import REPO, full_rows, known_depth_rows, load_set  # noqa: E402

from codedap_depth.evaluation import device_name  # noqa: E402
from codedap_depth.optics import load_camera, synthesize_bank  # noqa: E402
from codedap_depth.prior import load_prior  # noqa: E402
from codedap_depth.sampler import SamplerConfig  # noqa: E402
from codedap_depth.simulate import simulate_capture  # noqa: E402

KINDS = ("known4", "known20", "blind4")


def compare(weights: dict[str, Path], camera: Path, size: tuple[int, int],
            noises: list[float], device: str) -> list[dict]:
    """One row per (set, scene, noise, prior, kind): AIF PSNR (dB) and, blind, AbsRel."""
    bank = synthesize_bank(load_camera(camera))
    priors = {name: load_prior(device, w) for name, w in weights.items()}
    rows = []
    for set_name in ("dev", "heldout"):
        for scene in load_set(set_name, bank, size):
            for noise in noises:
                coded = simulate_capture(scene, bank, noise, seed=0)
                for name, prior in priors.items():
                    base = {"set": set_name, "scene": scene.name, "noise": noise, "prior": name}
                    for r in known_depth_rows(scene, bank, coded, 0, [4, 20], prior, device,
                                              SamplerConfig()):
                        rows.append({**base, "kind": f"known{r['steps']}",
                                     "psnr": r["aif_psnr_db"]})
                    (blind,) = full_rows(scene, bank, coded, 0, [("dfd-dps", 4)], prior, device,
                                         SamplerConfig())
                    rows.append({**base, "kind": "blind4", "psnr": blind["aif_psnr_db"],
                                 "absrel": blind["depth_absrel"]})
    return rows


def summary(rows: list[dict], names: list[str]) -> str:
    """Markdown table of set means per (set, noise, kind), one column per prior."""
    lines = ["| set | noise | kind | " + " | ".join(f"{n} AIF (dB)" for n in names)
             + " | " + " | ".join(f"{n} AbsRel" for n in names) + " |",
             "|---" * (3 + 2 * len(names)) + "|"]
    keys = sorted({(r["set"], r["noise"]) for r in rows})
    for set_name, noise in keys:
        for kind in KINDS:
            sel = {n: [r for r in rows if (r["set"], r["noise"], r["kind"], r["prior"])
                       == (set_name, noise, kind, n)] for n in names}
            psnr = [f"{statistics.mean(r['psnr'] for r in sel[n]):.2f}" for n in names]
            absrel = [f"{statistics.mean(r['absrel'] for r in sel[n]):.3f}"
                      if kind == "blind4" else "" for n in names]
            lines.append(f"| {set_name} | {noise} | {kind} | " + " | ".join(psnr) + " | "
                         + " | ".join(absrel) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="weights folder")
    parser.add_argument("--new", type=Path, required=True, help="weights folder")
    parser.add_argument("--camera", type=Path, default=REPO / "config" / "camera.yaml")
    parser.add_argument("--size", default="160x120", help="WxH")
    parser.add_argument("--noise", default="0.01,0.02,0.05")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    weights = {"old": args.old, "new": args.new}
    rows = compare(weights, args.camera, (width, height),
                   [float(v) for v in args.noise.split(",")], args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": device_name(args.device), "camera": str(args.camera),
              "size": args.size, "weights": {k: str(v) for k, v in weights.items()}, "rows": rows}
    (args.out / "rows.json").write_text(json.dumps(report, indent=1) + "\n")
    print(summary(rows, list(weights)))


if __name__ == "__main__":
    main()
