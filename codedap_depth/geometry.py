# SPDX-License-Identifier: Apache-2.0
"""Pinhole back-projection and PLY export of metric depth maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[H, W] depth (metres along z, NaN invalid) -> [H, W, 3] points in the optical frame
    (x right, y down, z forward), metres; invalid pixels give NaN points."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=-1).astype(np.float32)


def write_ply(path: str | Path, points: np.ndarray, rgb: np.ndarray) -> int:
    """Write the finite points of [H, W, 3] ``points`` with [H, W, 3] [0, 1] colours as a
    binary little-endian PLY; returns the number of points written."""
    keep = np.all(np.isfinite(points), axis=-1)
    xyz = points[keep].astype("<f4")
    colour = np.clip(np.round(rgb[keep] * 255), 0, 255).astype(np.uint8)
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, name in enumerate("xyz"):
        vertex[name] = xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertex[name] = colour[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertex)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex.tobytes())
    return int(len(vertex))
