# SPDX-License-Identifier: Apache-2.0
"""Figures (matplotlib, headless): PSF banks, simulated captures, reconstructions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from codedap_depth.optics import PSFBank  # noqa: E402


def bank_figure(bank: PSFBank, path: str | Path, blur_px: np.ndarray | None = None) -> None:
    """One panel per layer (channel-averaged PSF), titled with its depth (and blur in px)."""
    k = bank.num_depths
    cols = min(k, 8)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.1 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= k:
            continue
        ax.imshow(bank.psfs[i].mean(axis=0), cmap="magma", interpolation="nearest")
        title = f"{bank.depths[i]:.2f} m"
        if blur_px is not None:
            title += f"\n{blur_px[i]:.1f} px"
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"PSF bank: {k} layers, {bank.size}x{bank.size} px", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def panel_figure(
    panels: Sequence[tuple[str, np.ndarray, str | None]],
    path: str | Path,
    depth_limits: tuple[float, float] | None = None,
) -> None:
    """A row of images. Each panel is (title, array, unit): RGB arrays are shown as images,
    2-D arrays with a colour bar labelled ``unit``; panels whose title starts with "depth"
    share ``depth_limits`` and a depth colour map."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False)
    for ax, (title, array, unit) in zip(axes[0], panels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        if array.ndim == 3:
            shown = array[..., 0] if array.shape[-1] == 1 else array
            ax.imshow(np.clip(shown, 0, 1), cmap="gray" if shown.ndim == 2 else None)
            continue
        is_depth = title.lower().startswith("depth")
        limits = depth_limits if is_depth and depth_limits else (None, None)
        im = ax.imshow(np.ma.masked_invalid(array), cmap="turbo_r" if is_depth else "magma",
                       vmin=limits[0], vmax=limits[1])
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        if unit:
            bar.set_label(unit)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
