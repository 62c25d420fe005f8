# SPDX-License-Identifier: Apache-2.0
"""Image files <-> [0, 1] float arrays (8/16-bit PNG, any format skimage reads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png
from skimage.io import imread, imsave


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 [H, W, C] in [0, 1] (C = 1 or 3; alpha dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        raw = _read_png(path) if path.suffix.lower() == ".png" else np.asarray(imread(path))
    except (OSError, ValueError, png.Error) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from err
    if raw.dtype == np.uint16:
        image = raw.astype(np.float32) / 65535.0
    elif raw.dtype == np.uint8:
        image = raw.astype(np.float32) / 255.0
    elif raw.dtype.kind == "f":
        image = raw.astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported pixel type {raw.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{path}: expected a grey, RGB or RGBA image, got shape {raw.shape}")
    return image[..., :3] if image.shape[-1] == 4 else image


def write_png16(path: str | Path, image: np.ndarray) -> None:
    """Quantise [0, 1] intensities like a 16-bit sensor and write a grey or RGB PNG."""
    data = np.clip(np.round(np.asarray(image) * 65535.0), 0, 65535).astype(np.uint16)
    if data.ndim == 2:
        data = data[..., None]
    height, width, channels = data.shape
    writer = png.Writer(width, height, greyscale=channels == 1, bitdepth=16)
    with open(path, "wb") as handle:
        writer.write(handle, data.reshape(height, width * channels))


def _read_png(path: Path) -> np.ndarray:
    """Decode a PNG at its native bit depth (8 or 16) as [H, W, C] (pypng; Pillow truncates
    16-bit colour)."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    return np.vstack([np.asarray(row, dtype=dtype) for row in rows]).reshape(height, width, planes)


def write_png8(path: str | Path, image: np.ndarray) -> None:
    """Write [0, 1] intensities as an 8-bit PNG."""
    data = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    imsave(path, data[..., 0] if data.ndim == 3 and data.shape[-1] == 1 else data,
           check_contrast=False)
