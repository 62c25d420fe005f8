# SPDX-License-Identifier: Apache-2.0
"""Shared test helpers for the core tests (imported as a sibling module by pytest)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Environment variable naming the folder of the real coded capture (README, "Real coded
#: capture"): it is not redistributed with the repository.
REAL_CODED_VARIABLE = "CODEDAP_REAL_CODED"


def real_coded_file(name: str) -> Path:
    """A file of the real coded capture; skips, saying why, when it is not available."""
    folder = os.environ.get(REAL_CODED_VARIABLE)
    if not folder:
        pytest.skip(f"real coded capture not available: set {REAL_CODED_VARIABLE} to its folder")
    path = Path(folder) / name
    if not path.is_file():
        pytest.skip(f"real coded capture file {path} not found ({REAL_CODED_VARIABLE}={folder})")
    return path


CHANNEL = {"r": 0, "g": 1, "b": 2}


def mosaic(rgb, pattern: str):
    """Sample an [H, W, 3] image through a ``pattern`` Bayer filter (what the sensor sees)."""
    import numpy as np

    height, width = rgb.shape[:2]
    out = np.empty((height, width), rgb.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, CHANNEL[pattern[2 * dy + dx]]]
    return out


def to_yuv422(rgb, encoding: str):
    """[H, W, 3] uint8 RGB (W even) -> [H, W, 2] ``yuv422`` (UYVY) or ``yuv422_yuy2`` (YUYV)
    pixels, BT.601 limited range with each pixel pair's chroma averaged."""
    import numpy as np

    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = (u[:, 0::2] + u[:, 1::2]) / 2
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    chroma = np.empty_like(y)
    chroma[:, 0::2], chroma[:, 1::2] = u, v
    planes = (chroma, y) if encoding == "yuv422" else (y, chroma)
    return np.clip(np.rint(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
