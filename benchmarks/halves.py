# SPDX-License-Identifier: Apache-2.0
"""Benchmarks that isolate the two halves of DFD-DPS, and the whole against classical.

Usage::

    python benchmarks/halves.py --parts aif,floors,full --set dev --device cuda \
        --noise 0.005,0.01,0.02,0.05 --seeds 3 --out benchmarks/results/halves_dev

Parts (each on every scene of the set, noise level and seed, one simulated capture each):

* ``aif``: the image half with the true depth given (non-blind deconvolution):
  ``Reconstructor(..., known_depth=...)`` at each of ``--steps`` against the per-layer Wiener
  deconvolution and the least-squares deconvolution of the occlusion-aware model with a
  Gaussian gradient prior (``LS_ITERATIONS`` CG iterations). Both baselines get the true noise
  level and their gradient std tuned per scene and noise level over ``GRADIENT_SIGMAS`` (the
  best value is reported: an oracle-tuned baseline).
* ``floors``: the depth half's limits. Depth from the ground-truth AIF through the sampler's
  depth step (``consistency.depth_from_image``, shipped settings); the ground-truth depth
  snapped to the bank's nearest layer (quantisation).
* ``evidence``: how far the blind depth evidence can go. Every blind depth in the package
  comes from the Gaussian marginal likelihood of the classical baseline (the prior cannot
  score depth, ``benchmarks/NOTES.md``); here that evidence (``ClassicalSolver.scale_energies``,
  each prior scale chosen per ``EVIDENCE_WINDOWS`` window) is pooled over an *oracle* support:
  the pixels of the same true depth (bins of half a layer step in inverse depth) within a
  radius of ``EVIDENCE_RADII`` pixels, or over the whole frame (radius 0). That is an
  aggregation no blind method has, so its best variant per scene is a floor for any
  aggregation of this evidence. Then DFD-DPS's image half given that floor depth (each of
  ``--steps``), against classical's depth and AIF of the same capture.
* ``full``: classical and DFD-DPS at each of ``--steps`` (blind: depth and AIF estimated).
* ``uncertainty``: calibration of the uncertainty output, as shipped (one sample: the layer
  posterior's spread) and over ``UNCERTAINTY_SAMPLES`` posterior samples (``renoise``
  ``UNCERTAINTY_RENOISE``; with the default 0 the samples are equal): Spearman correlation
  between std and |depth error|, and the share of pixels whose error is within 2 std.

Sets: ``dev`` (the tuning scenes of ``scenes.SCENES``) or ``heldout`` (``heldout``; never used
to choose a setting). ``--camera`` picks the camera (PSFs synthesised by ``optics``).
Prints one table per part and writes ``halves.json`` naming the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from codedap_depth.baselines import ClassicalSolver, box_filter
from codedap_depth.consistency import (
    LayerEvidence,
    best_inverse_depth,
    box_mean,
    depth_from_image,
    solve_image,
)
from codedap_depth.evaluation import SUITES, device_name, load_eval_scene
from codedap_depth.forward import LayeredBlur, layer_weights
from codedap_depth.metrics import depth_metrics, psnr, ssim, uncertainty_calibration
from codedap_depth.optics import PSFBank, load_camera, synthesize_bank
from codedap_depth.pipeline import (
    DEFAULT_STEPS,
    QUALITY_STEPS,
    ReconstructionConfig,
    Reconstructor,
)
from codedap_depth.prior import load_prior
from codedap_depth.sampler import SamplerConfig
from codedap_depth.scenes import Scene, fill_unknown
from codedap_depth.simulate import simulate_capture

REPO = Path(__file__).resolve().parents[1]
PARTS = ("aif", "floors", "evidence", "full", "uncertainty")
UNCERTAINTY_SAMPLES = 4
UNCERTAINTY_RENOISE = 0.2
#: Gradient std of the Gaussian prior tried for the Wiener and least-squares baselines.
GRADIENT_SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)
LS_ITERATIONS = 200
#: Windows (pixels) over which ``evidence`` picks each pixel's prior scale, and the radii of
#: its oracle pooling (0 = the whole frame).
EVIDENCE_WINDOWS = (1, 5, 15)
EVIDENCE_RADII = (7, 0)


def load_set(name: str, bank: PSFBank, size: tuple[int, int]) -> list[Scene]:
    """The scenes of set ``dev`` or ``heldout`` over the bank's depth range."""
    depth_range = (float(bank.depths[0]), float(bank.depths[-1]))
    if name not in ("dev", "heldout"):
        raise ValueError(f"unknown set {name!r}: dev or heldout")
    names = SUITES["all" if name == "dev" else "heldout"][0]
    return [load_eval_scene(s, depth_range, size) for s in names]


def as_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    """[H, W, C] numpy -> [1, C, H, W] float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] tensor -> [H, W, C] numpy clipped to [0, 1]."""
    return x[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()


def wiener_image(model: LayeredBlur, y: torch.Tensor, inv_depth: torch.Tensor, noise: float,
                 gradient_sigma: float) -> torch.Tensor:
    """Per-layer Wiener deconvolution ``conj(H_k) Y / (|H_k|^2 + (noise / s)^2 |G|^2)``
    blended by each pixel's two-layer split of the known inverse depth (occlusions ignored)."""
    evidence = LayerEvidence(model, y, noise, gradient_sigma, 1)
    sharp = evidence.crop(model.otf.conj() * evidence.spectrum_y
                          / (evidence.power + evidence.lambda_g * evidence.grad2))
    weights = layer_weights(inv_depth, model.layer_inv_depths).unsqueeze(2)
    return (weights * sharp).sum(dim=1)


def image_scores(aif: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """AIF PSNR (dB) and SSIM."""
    return {"aif_psnr_db": psnr(aif, truth), "aif_ssim": ssim(aif, truth)}


def depth_scores(depth: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """AbsRel, median relative error, delta1 and RMSE (m) on the finite ground truth."""
    m = depth_metrics(depth, truth)
    return {"depth_absrel": m.absrel, "depth_median_rel": m.median_rel, "delta1": m.delta1,
            "depth_rmse_m": m.rmse_m}


_RUNNERS: dict[tuple, Reconstructor] = {}


def runner(bank: PSFBank, method: str, steps: int, prior, device: str,
           sampler: SamplerConfig, samples: int = 1) -> Reconstructor:
    """One Reconstructor per (bank, prior, method, steps, sampler, samples), so a CUDA graph is
    captured once per frame size, not once per frame."""
    key = (id(bank), id(prior), method, steps, sampler, samples)
    if key not in _RUNNERS:
        config = ReconstructionConfig(method=method, steps=steps, samples=samples,
                                      device=device, sampler=sampler)
        _RUNNERS[key] = Reconstructor(bank, config, prior)
    return _RUNNERS[key]


def known_depth(scene: Scene, bank: PSFBank, coded: np.ndarray, device: str
                ) -> tuple[LayeredBlur, torch.Tensor, torch.Tensor]:
    """Forward model, measurement [1, C, H, W] and true inverse depth [1, 1, H, W] on the
    device."""
    height, width = scene.depth.shape
    model = LayeredBlur(bank, height, width).to(device)
    inv = torch.from_numpy(1.0 / fill_unknown(scene.depth))[None, None].to(device)
    return model, as_tensor(coded, device), inv


def baseline_image_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, noise: float,
                        device: str) -> list[dict]:
    """Image half's baselines with the true depth and noise level, each at its best gradient
    std of ``GRADIENT_SIGMAS``: Wiener and least squares."""
    model, y, inv = known_depth(scene, bank, coded, device)
    operator, valid = model.at(inv), torch.ones_like(y[:, :1])
    rows = []
    with torch.no_grad():
        for name, solve in (
            ("wiener", lambda s: wiener_image(model, y, inv, noise, s)),
            ("least-squares", lambda s: solve_image(operator, y, valid, y, 0.0, (noise / s) ** 2,
                                                    LS_ITERATIONS).image),
        ):
            best = max((image_scores(to_image(solve(s)), scene.rgb) | {"gradient_sigma": s}
                        for s in GRADIENT_SIGMAS), key=lambda r: r["aif_psnr_db"])
            rows.append({"method": name, "steps": 0, **best})
    return rows


def known_depth_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, seed: int,
                     steps: list[int], prior, device: str, sampler: SamplerConfig) -> list[dict]:
    """Image half: DFD-DPS given the true depth, at each step count."""
    rows = []
    for n in steps:
        rec = runner(bank, "dfd-dps", n, prior, device, sampler)(coded, seed=seed,
                                                                 known_depth=scene.depth)
        rows.append({"method": "dfd-dps", "steps": n, "seconds": rec.seconds,
                     **image_scores(rec.aif, scene.rgb)})
    return rows


def floor_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, device: str,
               sampler: SamplerConfig) -> list[dict]:
    """Depth half's limits: depth from the true AIF, and the true depth snapped to layers."""
    model, y, _ = known_depth(scene, bank, coded, device)
    with torch.no_grad():
        inv = depth_from_image(model, y, as_tensor(scene.rgb, device), sampler.depth_radius,
                               sampler.depth_eps)
    from_truth = (1.0 / inv[0, 0]).cpu().numpy()
    layer_inv = 1.0 / bank.depths.astype(np.float64)
    nearest = np.abs(1.0 / fill_unknown(scene.depth)[..., None] - layer_inv).argmin(axis=-1)
    snapped = bank.depths[nearest].astype(np.float32)
    return [{"method": "depth from true AIF", **depth_scores(from_truth, scene.depth)},
            {"method": "true depth on layers", **depth_scores(snapped, scene.depth)}]


def oracle_pooled(cost: torch.Tensor, bins: torch.Tensor, radius: int) -> torch.Tensor:
    """[K, H, W] cost averaged, per pixel, over the pixels of its own ``bins`` label within
    ``radius`` (a (2 radius + 1)^2 box), or over the whole frame when ``radius`` is 0."""
    pooled = torch.empty_like(cost)
    for label in torch.unique(bins):
        mask = (bins == label).to(cost.dtype)
        if radius == 0:
            mean = (cost * mask).sum(dim=(-2, -1), keepdim=True) / mask.sum()
        else:
            window = 2 * radius + 1
            mean = (box_mean((cost * mask)[None], window)[0]
                    / box_mean(mask[None, None], window)[0].clamp(min=1e-12))
        pooled = torch.where(mask.bool(), mean.expand_as(cost), pooled)
    return pooled


def evidence_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, noise: float, seed: int,
                  steps: list[int], prior, device: str, sampler: SamplerConfig) -> list[dict]:
    """Classical; the marginal-likelihood depth under each oracle pooling; DFD-DPS's image
    half given the best of those depths (by AbsRel)."""
    classical = runner(bank, "classical", 1, prior, device, sampler)(coded, seed=seed)
    rows = [{"method": "classical", **depth_scores(classical.depth, scene.depth),
             **image_scores(classical.aif, scene.rgb)}]
    height, width = scene.depth.shape
    solver = ClassicalSolver(bank, height, width, device=device)
    with torch.no_grad():
        energies = solver.scale_energies(as_tensor(coded, device)[0], noise)
    layer_inv = torch.from_numpy(1.0 / bank.depths).float().to(device)
    step = float(layer_inv[0] - layer_inv[1])
    truth_inv = torch.from_numpy(1.0 / fill_unknown(scene.depth)).to(device)
    bins = torch.floor(truth_inv / (0.5 * step)).long()
    floors, depths = [], []
    for window in EVIDENCE_WINDOWS:
        cost = torch.stack([0.5 * (box_filter(e, window) + d) for e, d in energies]).amin(0)
        for radius in EVIDENCE_RADII:
            inv = best_inverse_depth(oracle_pooled(cost, bins, radius)[None], layer_inv)
            depths.append((1.0 / inv[0, 0]).cpu().numpy())
            floors.append({"method": "oracle-pooled evidence", "window": window,
                           "radius": radius, **depth_scores(depths[-1], scene.depth)})
    best = min(range(len(floors)), key=lambda i: floors[i]["depth_absrel"])
    for n in steps:
        rec = runner(bank, "dfd-dps", n, prior, device, sampler)(coded, seed=seed,
                                                                 known_depth=depths[best])
        rows.append({"method": "dfd-dps given the floor depth", "steps": n,
                     "window": floors[best]["window"], "radius": floors[best]["radius"],
                     **image_scores(rec.aif, scene.rgb)})
    return rows + floors


def full_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, seed: int,
              runs: list[tuple[str, int]], prior, device: str, sampler: SamplerConfig
              ) -> list[dict]:
    """Blind reconstruction by each (method, steps) of ``runs``."""
    rows = []
    for method, n in runs:
        rec = runner(bank, method, max(n, 1), prior, device, sampler)(coded, seed=seed)
        rows.append({"method": method, "steps": n, "seconds": rec.seconds,
                     **depth_scores(rec.depth, scene.depth), **image_scores(rec.aif, scene.rgb)})
    return rows


def uncertainty_rows(scene: Scene, bank: PSFBank, coded: np.ndarray, seed: int,
                     steps: list[int], prior, device: str, sampler: SamplerConfig) -> list[dict]:
    """Calibration of the uncertainty output at each step count: as shipped (one sample, the
    layer posterior's spread) and with ``UNCERTAINTY_SAMPLES`` samples drawn with
    ``UNCERTAINTY_RENOISE`` fresh noise (their spread added)."""
    stochastic = dataclasses.replace(sampler, renoise=UNCERTAINTY_RENOISE)
    rows = []
    for n in steps:
        for samples, config in ((1, sampler), (UNCERTAINTY_SAMPLES, stochastic)):
            rec = runner(bank, "dfd-dps", n, prior, device, config, samples)(coded, seed=seed)
            c = uncertainty_calibration(rec.depth, rec.uncertainty, scene.depth)
            rows.append({"method": f"dfd-dps M={samples}", "steps": n, "samples": samples,
                         "renoise": config.renoise,
                         "mean_std_m": float(np.nanmean(rec.uncertainty)),
                         "spearman_std_error": c.spearman, "within_2std": c.within_2std})
    return rows


def run_parts(parts: list[str], scenes: list[Scene], bank: PSFBank, noises: list[float],
              seeds: int, steps: list[int], prior, device: str,
              sampler: SamplerConfig | None = None) -> dict[str, list[dict]]:
    """Every part on every (scene, noise, seed); rows carry those keys."""
    sampler = sampler or SamplerConfig()
    result: dict[str, list[dict]] = {part: [] for part in parts}
    for scene in scenes:
        for noise in noises:
            for seed in range(seeds):
                coded = simulate_capture(scene, bank, noise, seed=seed)
                key = {"scene": scene.name, "noise_sigma": noise, "seed": seed}
                if "aif" in parts:
                    rows = baseline_image_rows(scene, bank, coded, noise, device) + (
                        known_depth_rows(scene, bank, coded, seed, steps, prior, device, sampler))
                    result["aif"] += [key | r for r in rows]
                if "floors" in parts and seed == 0:
                    result["floors"] += [key | r for r in floor_rows(scene, bank, coded, device,
                                                                     sampler)]
                if "evidence" in parts and seed == 0:
                    result["evidence"] += [key | r for r in evidence_rows(
                        scene, bank, coded, noise, seed, steps, prior, device, sampler)]
                if "uncertainty" in parts:
                    result["uncertainty"] += [key | r for r in uncertainty_rows(
                        scene, bank, coded, seed, steps, prior, device, sampler)]
                if "full" in parts:
                    runs = [("classical", 0)] + [("dfd-dps", n) for n in steps]
                    result["full"] += [key | r for r in full_rows(
                        scene, bank, coded, seed, runs, prior, device, sampler)]
    return result


def table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """Markdown table of the mean over seeds per (scene, noise, method, steps)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["scene"], row["noise_sigma"], row["method"], row.get("steps", 0),
               row.get("window", ""), row.get("radius", ""))
        groups.setdefault(key, []).append(row)
    lines = ["| scene | noise | method | steps | window | radius | seeds | "
             + " | ".join(columns) + " |", "|" + "---|" * (7 + len(columns))]
    for (scene, noise, method, steps, window, radius), group in groups.items():
        means = [np.mean([r.get(c, np.nan) for r in group]) for c in columns]
        lines.append(f"| {scene} | {noise} | {method} | {steps} | {window} | {radius} | "
                     f"{len(group)} | "
                     + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


COLUMNS = {
    "aif": ("aif_psnr_db", "aif_ssim"),
    "floors": ("depth_absrel", "depth_median_rel", "delta1", "depth_rmse_m"),
    "evidence": ("depth_absrel", "depth_median_rel", "delta1", "aif_psnr_db"),
    "full": ("depth_absrel", "depth_median_rel", "delta1", "depth_rmse_m", "aif_psnr_db",
             "aif_ssim", "seconds"),
    "uncertainty": ("mean_std_m", "spearman_std_error", "within_2std"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="aif,floors,full")
    parser.add_argument("--set", default="dev", choices=("dev", "heldout"))
    parser.add_argument("--camera", type=Path, default=REPO / "config" / "camera.yaml")
    parser.add_argument("--size", default="320x240", help="WxH")
    parser.add_argument("--noise", default="0.005,0.01,0.02,0.05")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", default=f"{DEFAULT_STEPS},{QUALITY_STEPS}",
                        help="DFD-DPS step counts (default: the real-time and quality presets)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", type=Path, default=None,
                        help="prior weights folder (default: the shipped codedap_depth/weights)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {PARTS}")
    width, height = (int(v) for v in args.size.lower().split("x"))
    bank = synthesize_bank(load_camera(args.camera))
    started = time.perf_counter()
    result = run_parts(parts, load_set(args.set, bank, (width, height)), bank,
                       [float(v) for v in args.noise.split(",")], args.seeds,
                       [int(v) for v in args.steps.split(",")],
                       load_prior(args.device, args.weights), args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": device_name(args.device), "set": args.set, "camera": str(args.camera),
              "size": args.size, "weights": str(args.weights or "shipped"),
              "seconds": time.perf_counter() - started, **result}
    (args.out / "halves.json").write_text(json.dumps(report, indent=1) + "\n")
    for part in parts:
        print(f"\n## {part} ({report['device']}, {args.set}, {args.camera.name})\n")
        print(table(result[part], COLUMNS[part]))


if __name__ == "__main__":
    main()
