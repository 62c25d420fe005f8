# SPDX-License-Identifier: Apache-2.0
"""Simulated coded captures: occlusion-aware rendering + sensor noise + 16-bit quantisation."""

from __future__ import annotations

import numpy as np
import torch

from codedap_depth.forward import LayeredBlur, add_sensor_noise
from codedap_depth.optics import PSFBank
from codedap_depth.scenes import Scene, fill_unknown


def simulate_capture(
    scene: Scene,
    bank: PSFBank,
    noise_sigma: float,
    seed: int = 0,
    photons: float | None = None,
) -> np.ndarray:
    """Render ``scene`` through ``bank`` and add noise.

    Unknown ground-truth depth is filled with the nearest known depth for rendering.

    Returns:
        [H, W, 3] float32 coded capture in [0, 1], quantised to 16 bits.
    """
    height, width = scene.depth.shape
    model = LayeredBlur(bank, height, width, occlusion=True)
    image = torch.from_numpy(np.ascontiguousarray(scene.rgb.transpose(2, 0, 1)))[None]
    inv_depth = torch.from_numpy(1.0 / fill_unknown(scene.depth))[None, None]
    with torch.no_grad():
        clean = model(image, inv_depth)
        noisy = add_sensor_noise(clean, noise_sigma, torch.Generator().manual_seed(seed), photons)
    coded = noisy[0].permute(1, 2, 0).numpy()
    return (np.round(coded * 65535.0) / 65535.0).astype(np.float32)
