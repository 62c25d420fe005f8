# SPDX-License-Identifier: Apache-2.0
"""Depth and image quality metrics.

Depth metrics use pixels where the ground truth is finite (and the prediction too; a pixel the
method leaves NaN counts as a miss for ``coverage``). Images are [H, W, C] in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.metrics import structural_similarity


@dataclass(frozen=True)
class DepthMetrics:
    """Depth errors over scored pixels.

    Attributes:
        absrel: mean |pred - gt| / gt (dimensionless).
        median_rel: median |pred - gt| / gt (robust to the few gross errors AbsRel averages).
        rmse_m: root mean squared error, metres.
        mae_m: mean absolute error, metres.
        delta1: fraction of pixels with max(pred/gt, gt/pred) < 1.25.
        coverage: fraction of finite-GT pixels where the prediction is finite.
    """

    absrel: float
    median_rel: float
    rmse_m: float
    mae_m: float
    delta1: float
    coverage: float


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> DepthMetrics:
    """Compare predicted and ground-truth depth maps ([H, W] metres, NaN = unknown)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    known = np.isfinite(gt) & (gt > 0)
    if not known.any():
        raise ValueError("ground truth has no finite pixel to score")
    scored = known & np.isfinite(pred) & (pred > 0)
    if not scored.any():
        return DepthMetrics(np.nan, np.nan, np.nan, np.nan, 0.0, 0.0)
    p, g = pred[scored].astype(np.float64), gt[scored].astype(np.float64)
    error = p - g
    return DepthMetrics(
        absrel=float(np.mean(np.abs(error) / g)),
        median_rel=float(np.median(np.abs(error) / g)),
        rmse_m=float(np.sqrt(np.mean(error**2))),
        mae_m=float(np.mean(np.abs(error))),
        delta1=float(np.mean(np.maximum(p / g, g / p) < 1.25)),
        coverage=float(scored.sum() / known.sum()),
    )


@dataclass(frozen=True)
class Calibration:
    """How well a per-pixel depth std ``sigma`` tracks the actual error.

    Attributes:
        spearman: rank correlation between ``sigma`` and ``|pred - gt|`` (NaN when ``sigma``
            is constant, e.g. all 0).
        within_2std: share of pixels with ``|pred - gt| <= 2 sigma`` (about 95 % for a
            calibrated Gaussian std).
    """

    spearman: float
    within_2std: float


def uncertainty_calibration(pred: np.ndarray, sigma: np.ndarray, gt: np.ndarray) -> Calibration:
    """Calibration of ``sigma`` ([H, W] metres) on the pixels where ``pred``, ``sigma`` and
    ``gt`` are all finite; NaN fields when the prediction leaves no such pixel (as
    ``depth_metrics``)."""
    from scipy.stats import spearmanr

    if not pred.shape == sigma.shape == gt.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, sigma {sigma.shape}, gt {gt.shape}")
    known = np.isfinite(gt) & (gt > 0)
    if not known.any():
        raise ValueError("ground truth has no finite pixel to score")
    scored = known & np.isfinite(pred) & np.isfinite(sigma)
    if not scored.any():
        return Calibration(spearman=float("nan"), within_2std=float("nan"))
    error = np.abs(pred[scored].astype(np.float64) - gt[scored])
    spread = sigma[scored].astype(np.float64)
    constant = np.ptp(spread) == 0
    spearman = float("nan") if constant else float(spearmanr(spread, error).statistic)
    return Calibration(spearman=spearman, within_2std=float(np.mean(error <= 2 * spread)))


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] images."""
    if pred.shape != truth.shape:
        raise ValueError(f"images differ in shape: {pred.shape} vs {truth.shape}")
    mse = float(np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity of [H, W, C] (or [H, W]) images in [0, 1]."""
    if pred.shape != truth.shape:
        raise ValueError(f"images differ in shape: {pred.shape} vs {truth.shape}")
    channel_axis = -1 if pred.ndim == 3 else None
    return float(
        structural_similarity(
            pred.astype(np.float64), truth.astype(np.float64), data_range=1.0,
            channel_axis=channel_axis,
        )
    )
