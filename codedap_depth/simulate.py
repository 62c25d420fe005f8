# SPDX-License-Identifier: Apache-2.0
"""Simulated coded captures: occlusion-aware rendering + sensor noise + 16-bit quantisation."""

from __future__ import annotations

import numpy as np
import torch

from codedap_depth.forward import LayeredBlur, add_sensor_noise
from codedap_depth.optics import PSFBank
from codedap_depth.scenes import Scene, fill_unknown


def quantise_16bit(image: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] intensities to the nearest of 65536 levels (a 16-bit PNG's values)."""
    return torch.round(image * 65535.0) / 65535.0


def render_capture(
    model: LayeredBlur,
    image: torch.Tensor,
    inv_depth: torch.Tensor,
    noise_sigma: float,
    generator: torch.Generator,
    photons: float | None = None,
) -> torch.Tensor:
    """Coded captures of a batch: render, add sensor noise, quantise to 16 bits (no grad).

    Args:
        model: the bank's renderer (occlusion-aware for simulated captures), on the device.
        image: [B, C, H, W] all-in-focus images, [0, 1] intensities.
        inv_depth: [B, 1, H, W] inverse depth, 1/m.
        noise_sigma: Gaussian noise std on [0, 1] intensities.
        generator: seeded generator on the device.
        photons: full-well photon count for shot noise (None: none).

    Returns:
        [B, C, H, W] float32 captures in [0, 1].
    """
    with torch.no_grad():
        clean = model(image, inv_depth)
        return quantise_16bit(add_sensor_noise(clean, noise_sigma, generator, photons))


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
    coded = render_capture(model, image, inv_depth, noise_sigma,
                           torch.Generator().manual_seed(seed), photons)
    return coded[0].permute(1, 2, 0).numpy().astype(np.float32)
