# SPDX-License-Identifier: Apache-2.0
"""Reconstruction outputs, metrics rows and the evaluation protocol (README, Reconstruction).

Every method runs at every noise level and seed on the same simulated captures, in one run.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from codedap_depth.figures import panel_figure
from codedap_depth.geometry import write_ply
from codedap_depth.heldout import HELDOUT_SCENES, load_heldout_scene
from codedap_depth.imageio import write_png8
from codedap_depth.metrics import depth_metrics, psnr, ssim, uncertainty_calibration
from codedap_depth.optics import PSFBank
from codedap_depth.outputs import KEEP_ALL, frame_outputs
from codedap_depth.pipeline import (
    METHODS,
    STEPLESS_METHODS,
    Reconstruction,
    ReconstructionConfig,
    Reconstructor,
)
from codedap_depth.scenes import SCENES, Scene, load_scene
from codedap_depth.simulate import simulate_capture

#: Scene sets for ``codedap-depth eval --suite``: (scenes, default frame size WxH). ``all`` is
#: the development set (settings are tuned on it); ``heldout`` the real sensor-depth scenes of
#: ``heldout_manifest.json`` (never used to tune; data from ``tools/fetch_heldout.py``).
SUITES: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "quick": (("layered",), (96, 72)),
    "standard": (("motorcycle", "aloe", "layered"), (320, 240)),
    "all": (SCENES, (320, 240)),
    "heldout": (HELDOUT_SCENES, (320, 240)),
}
ROW_KEYS = (
    "scene", "method", "noise_sigma", "seed", "steps", "samples", "depth_absrel",
    "depth_median_rel", "depth_rmse_m", "depth_mae_m", "delta1", "uncertainty_spearman",
    "within_2std", "aif_psnr_db", "aif_ssim", "seconds", "device",
)


@dataclass(frozen=True)
class MethodSpec:
    """A method, its step count and how many of the run's seeds it uses, written
    ``name[:steps][@seeds]`` (e.g. ``dfd-dps:20``, or ``dfd-dps:1000@1`` for a slow reference
    on the first seed only)."""

    name: str
    steps: int
    seeds: int | None = None

    @property
    def label(self) -> str:
        return self.name if self.name in STEPLESS_METHODS else f"{self.name}:{self.steps}"


def parse_methods(text: str, default_steps: int) -> list[MethodSpec]:
    """``"dfd-dps:20,dfd-dps:1000@1,classical"`` -> method specs (bare names take
    ``default_steps`` and every seed)."""
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        item, _, seeds = item.partition("@")
        name, _, steps = item.partition(":")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} in {text!r}; choose from {METHODS}")
        try:
            specs.append(MethodSpec(name, int(steps) if steps else default_steps,
                                    int(seeds) if seeds else None))
        except ValueError as err:
            raise ValueError(f"bad method spec {item!r}: use NAME[:STEPS][@SEEDS]") from err
    if not specs:
        raise ValueError("no method given")
    return specs


def device_name(device: str) -> str:
    """Human name of the device that produced a number (GPU model or CPU)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def metrics_row(
    rec: Reconstruction, gt_depth: np.ndarray | None, gt_aif: np.ndarray | None
) -> dict[str, float]:
    """Depth and AIF metrics of one reconstruction (the ``metrics.json`` keys of the README)."""
    row: dict[str, float] = {}
    if gt_depth is not None:
        m = depth_metrics(rec.depth, gt_depth)
        c = uncertainty_calibration(rec.depth, rec.uncertainty, gt_depth)
        row.update(depth_absrel=m.absrel, depth_median_rel=m.median_rel, depth_rmse_m=m.rmse_m,
                   depth_mae_m=m.mae_m, delta1=m.delta1, uncertainty_spearman=c.spearman,
                   within_2std=c.within_2std)
    if gt_aif is not None:
        aif = rec.aif if rec.aif.shape == gt_aif.shape else rec.aif.mean(-1, keepdims=True)
        truth = gt_aif if rec.aif.shape == gt_aif.shape else gt_aif.mean(-1, keepdims=True)
        row.update(aif_psnr_db=psnr(aif, truth), aif_ssim=ssim(aif, truth))
    return row


def result_figure(
    path: Path,
    coded: np.ndarray,
    rec: Reconstruction,
    depth_limits: tuple[float, float],
    gt_depth: np.ndarray | None = None,
) -> None:
    """input | AIF | depth | uncertainty | GT | |error| with colour bars in metres."""
    panels = [("coded input", coded, None), ("all-in-focus", rec.aif, None),
              ("depth", rec.depth, "m"), ("uncertainty (std)", rec.uncertainty, "m")]
    if gt_depth is not None:
        panels += [("depth GT", gt_depth, "m"), ("|error|", np.abs(rec.depth - gt_depth), "m")]
    panel_figure(panels, path, depth_limits=depth_limits)


def write_reconstruction(
    out: Path,
    coded: np.ndarray,
    rec: Reconstruction,
    K: np.ndarray | None,
    depth_limits: tuple[float, float],
    gt_depth: np.ndarray | None = None,
) -> list[str]:
    """depth.npy, uncertainty.npy, aif.png, points.ply (when K is known), figure.png: the
    output stage's arrays (``outputs.frame_outputs``), with no depth range or filter."""
    out.mkdir(parents=True, exist_ok=True)
    produced = frame_outputs(rec, K, KEEP_ALL)
    np.save(out / "depth.npy", produced.depth)
    np.save(out / "uncertainty.npy", produced.uncertainty)
    write_png8(out / "aif.png", produced.aif)
    written = ["depth.npy", "uncertainty.npy", "aif.png"]
    if produced.cloud is not None:
        write_ply(out / "points.ply", produced.cloud.xyz, produced.cloud.rgb / 255.0)
        written.append("points.ply")
    result_figure(out / "figure.png", coded, rec, depth_limits, gt_depth)
    return written + ["figure.png"]


def run_eval(
    bank: PSFBank,
    scenes: tuple[str, ...],
    size: tuple[int, int],
    methods: list[MethodSpec],
    noises: list[float],
    seeds: list[int],
    samples: int,
    device: str,
    out: Path,
    prior=None,
    figures: bool = True,
) -> list[dict]:
    """Simulate every (scene, noise, seed), reconstruct with every method, score, write
    results.json, results.md and (``figures``) one figure per (scene, noise, method) for the
    first seed into ``out/figures``."""
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        (out / "figures").mkdir(exist_ok=True)
    depth_range = (float(bank.depths[0]), float(bank.depths[-1]))
    if prior is None and any(m.name not in STEPLESS_METHODS for m in methods):
        from codedap_depth.prior import load_prior

        prior = load_prior(device)
    runners = {
        m: Reconstructor(bank, ReconstructionConfig(method=m.name, steps=m.steps,
                                                    samples=samples, device=device), prior)
        for m in methods
    }
    loaded = {name: load_eval_scene(name, depth_range, size) for name in scenes}
    rows: list[dict] = []
    jobs = [(s, n, seed) for s in scenes for n in noises for seed in seeds]
    name = device_name(device)
    for scene_name, noise, seed in tqdm(jobs, desc="eval", unit="capture"):
        scene = loaded[scene_name]
        coded = simulate_capture(scene, bank, noise, seed=seed)
        for spec, runner in runners.items():
            if spec.seeds is not None and seeds.index(seed) >= spec.seeds:
                continue
            rec = runner(coded, seed=seed)
            row = {"scene": scene_name, "method": spec.label, "noise_sigma": noise,
                   "seed": seed, "steps": 0 if spec.name in STEPLESS_METHODS else spec.steps,
                   "samples": 1 if spec.name in STEPLESS_METHODS else samples,
                   **metrics_row(rec, scene.depth, scene.rgb), "seconds": rec.seconds,
                   "device": name}
            rows.append({k: row[k] for k in ROW_KEYS})
            if figures and seed == seeds[0]:
                label = spec.label.replace(":", "_")
                figure = out / "figures" / f"{scene_name}_{noise}_{label}.png"
                result_figure(figure, coded, rec, depth_range, scene.depth)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "results.md").write_text(summary_table(rows))
    return rows


def load_eval_scene(name: str, depth_range: tuple[float, float], size: tuple[int, int]
                    ) -> Scene:
    """A development scene (``scenes``) or a held-out one (``heldout``) by name."""
    if name in HELDOUT_SCENES:
        return load_heldout_scene(name, depth_range, size)
    return load_scene(name, depth_range, size)


def summary_table(rows: list[dict]) -> str:
    """Markdown table: mean over seeds per (scene, noise, method)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scene"], row["noise_sigma"], row["method"]), []).append(row)
    lines = [
        "| scene | noise | method | seeds | AbsRel | median rel. | RMSE (m) | delta1 "
        "| std-error Spearman | within 2 std | AIF PSNR (dB) | AIF SSIM | s/frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (scene, noise, method), group in groups.items():
        mean = {k: float(np.mean([r[k] for r in group])) for k in
                ("depth_absrel", "depth_median_rel", "depth_rmse_m", "delta1",
                 "uncertainty_spearman", "within_2std", "aif_psnr_db", "aif_ssim", "seconds")}
        lines.append(
            f"| {scene} | {noise} | {method} | {len(group)} | {mean['depth_absrel']:.3f} | "
            f"{mean['depth_median_rel']:.3f} | {mean['depth_rmse_m']:.3f} | "
            f"{mean['delta1']:.3f} | {mean['uncertainty_spearman']:.2f} | "
            f"{mean['within_2std']:.2f} | {mean['aif_psnr_db']:.2f} | "
            f"{mean['aif_ssim']:.3f} | {mean['seconds']:.2f} |"
        )
    device = rows[0]["device"] if rows else "?"
    return "\n".join(lines) + f"\n\nDevice: {device}; each row is the mean over its seeds.\n"
