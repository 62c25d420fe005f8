# SPDX-License-Identifier: Apache-2.0
"""Simulated training pairs for the regressor: (coded image, inverse depth, all-in-focus image).

Textures are crops of the prior's *training* photos (``.prior_data/photos.npz``, split
``train``; validation uses split ``val``), augmented as for the prior
(``codedap_depth.tools.prior_train.photo_crops`` / ``colour_jitter``). Depth maps are synthetic, in
normalised inverse depth ``v`` in [0, 1] (0 = far, 1 = near; ``regressor.model``), every plane
value uniform in ``v`` so depths are uniform in inverse depth over the bank's range. Four kinds,
mixed per sample (``KIND_WEIGHTS``):

* ``layers``: a background plane (fronto-parallel or slanted) and 1-4 fronto-parallel shapes
  (rotated ellipses and rounded rectangles), each with its own depth and its own photo;
* ``slanted``: one photo on a plane with a random tilt;
* ``smooth``: one photo on a smooth random surface (bicubic upsampling of a 3x3 .. 6x6 grid);
* ``dead_leaves``: 24-96 disks with radius density ~ r^-3, each with its own depth, textured
  by one of ``TEXTURES`` photos.

Where depth jumps, the texture changes too (each region has its own photo), as at real
occlusion boundaries; the occlusion-aware renderer decides what covers what from the depth.
Captures are rendered through ``simulate.render_capture`` (the same occlusion-aware model,
noise and 16-bit quantisation as ``codedap-depth simulate``). Everything runs on one device
from one seeded ``torch.Generator``: same seed, device and inputs give the same batches.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from codedap_depth.forward import LayeredBlur
from codedap_depth.optics import PSFBank
from codedap_depth.simulate import render_capture
from codedap_depth.tools.prior_train import PhotoBank, colour_jitter, photo_crops

KINDS = ("layers", "slanted", "smooth", "dead_leaves")
KIND_WEIGHTS = (0.35, 0.2, 0.2, 0.25)
TEXTURES = 4  # photos per sample (regions take one each)
MAX_SHAPES = 4  # fronto-parallel shapes of a ``layers`` sample


class Batch(NamedTuple):
    """One simulated batch, all [B, *, S, S] float32 on the device.

    Attributes:
        coded: [B, 3, S, S] coded captures, [0, 1] intensities, 16-bit quantised.
        v: [B, 1, S, S] normalised inverse depth (0 = far, 1 = near).
        aif: [B, 3, S, S] the all-in-focus image that was rendered, [0, 1].
    """

    coded: torch.Tensor
    v: torch.Tensor
    aif: torch.Tensor


def _uniform(shape: tuple[int, ...], g: torch.Generator, lo: float = 0.0, hi: float = 1.0
             ) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, device=g.device, generator=g)


def _grid(b: int, s: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1], each [b, 1, s, s] (y, x)."""
    t = (torch.arange(s, device=device, dtype=torch.float32) + 0.5) / s * 2 - 1
    return t.view(1, 1, s, 1).expand(b, 1, s, s), t.view(1, 1, 1, s).expand(b, 1, s, s)


def _planes(b: int, s: int, g: torch.Generator, tilt: float) -> torch.Tensor:
    """[b, 1, s, s] planes in ``v`` through a uniform centre value with a random tilt of up to
    ``tilt`` (``v`` units across half the frame), clamped to [0, 1]."""
    yy, xx = _grid(b, s, g.device)
    centre = _uniform((b, 1, 1, 1), g)
    angle = _uniform((b, 1, 1, 1), g, 0.0, 2 * math.pi)
    slope = _uniform((b, 1, 1, 1), g, 0.0, tilt)
    return (centre + slope * (torch.cos(angle) * xx + torch.sin(angle) * yy)).clamp(0, 1)


def _layers(b: int, s: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``layers`` depth maps [b, 1, s, s] and region labels [b, 1, s, s] (long)."""
    dev = g.device
    slanted = _uniform((b, 1, 1, 1), g) < 0.3
    v = torch.where(slanted, _planes(b, s, g, 0.5), _uniform((b, 1, 1, 1), g).expand(b, 1, s, s))
    v = v.contiguous()
    label = torch.zeros(b, 1, s, s, dtype=torch.long, device=dev)
    yy, xx = _grid(b, s, dev)
    count = torch.randint(1, MAX_SHAPES + 1, (b, 1, 1, 1), device=dev, generator=g)
    for i in range(MAX_SHAPES):
        cy, cx = _uniform((b, 1, 1, 1), g, -0.8, 0.8), _uniform((b, 1, 1, 1), g, -0.8, 0.8)
        ry, rx = _uniform((b, 1, 1, 1), g, 0.1, 0.6), _uniform((b, 1, 1, 1), g, 0.1, 0.6)
        angle = _uniform((b, 1, 1, 1), g, 0.0, math.pi)
        power = torch.where(_uniform((b, 1, 1, 1), g) < 0.5, 2.0, 8.0)  # ellipse | rectangle
        dy, dx = yy - cy, xx - cx
        py = (torch.cos(angle) * dy - torch.sin(angle) * dx) / ry
        px = (torch.sin(angle) * dy + torch.cos(angle) * dx) / rx
        inside = (py.abs() ** power + px.abs() ** power < 1) & (i < count)
        depth = _uniform((b, 1, 1, 1), g).expand(b, 1, s, s)
        v = torch.where(inside, depth, v)
        label = torch.where(inside, torch.full_like(label, 1 + i % (TEXTURES - 1)), label)
    return v, label


def _smooth(b: int, s: int, g: torch.Generator) -> torch.Tensor:
    """``smooth`` depth maps [b, 1, s, s]: a bicubic surface spanning a random sub-range."""
    n = int(torch.randint(3, 7, (1,), device=g.device, generator=g))
    coarse = _uniform((b, 1, n, n), g)
    surface = F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=True)
    lo = surface.amin(dim=(2, 3), keepdim=True)
    hi = surface.amax(dim=(2, 3), keepdim=True)
    unit = (surface - lo) / (hi - lo).clamp(min=1e-6)
    a, c = _uniform((b, 1, 1, 1), g), _uniform((b, 1, 1, 1), g)
    return (torch.minimum(a, c) + unit * (a - c).abs()).clamp(0, 1)


def _dead_leaves(b: int, s: int, g: torch.Generator, rmin: float = 2.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``dead_leaves`` depth maps and labels, [b, 1, s, s]: the first disk (in drawing order)
    covering a pixel gives its depth and photo; radii ~ r^-3 on [rmin, s / 2] pixels."""
    dev = g.device
    n = int(torch.randint(24, 97, (1,), device=dev, generator=g))
    u = _uniform((b, n, 1, 1), g)
    lo, hi = rmin ** -2, (s / 2) ** -2
    radius = (lo - u * (lo - hi)) ** -0.5
    cy, cx = _uniform((b, n, 1, 1), g, 0, s), _uniform((b, n, 1, 1), g, 0, s)
    pix = torch.arange(s, device=dev, dtype=torch.float32) + 0.5
    inside = ((pix.view(1, 1, s, 1) - cy) ** 2 + (pix.view(1, 1, 1, s) - cx) ** 2
              < radius ** 2)  # [b, n, s, s]
    inside = torch.cat([inside, torch.ones_like(inside[:, :1])], dim=1)  # background last
    first = inside.to(torch.uint8).argmax(dim=1, keepdim=True)  # [b, 1, s, s]
    depths = _uniform((b, n + 1, 1, 1), g).expand(b, n + 1, s, s)
    v = torch.gather(depths, 1, first)
    photo = torch.randint(0, TEXTURES, (b, n + 1, 1, 1), device=dev, generator=g)
    label = torch.gather(photo.expand(b, n + 1, s, s), 1, first)
    return v, label


def depth_maps(b: int, s: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random depth maps ``v`` [b, 1, s, s] in [0, 1] and texture labels [b, 1, s, s] (long,
    0 .. ``TEXTURES`` - 1), one of ``KINDS`` per sample drawn by ``KIND_WEIGHTS``."""
    weights = torch.tensor(KIND_WEIGHTS, device=g.device)
    kind = torch.multinomial(weights, b, replacement=True, generator=g).view(b, 1, 1, 1)
    v_layers, l_layers = _layers(b, s, g)
    v_dl, l_dl = _dead_leaves(b, s, g)
    v = torch.where(kind == 0, v_layers, torch.where(kind == 1, _planes(b, s, g, 1.0),
                    torch.where(kind == 2, _smooth(b, s, g), v_dl)))
    label = torch.where(kind == 0, l_layers, torch.where(kind == 3, l_dl, 0))
    return v, label


class SimulatedPairs:
    """Batches of simulated (coded, v, aif) for one PSF bank, photo set and crop size.

    Args:
        bank: the camera's PSF bank (the training camera: ``config/camera.yaml``).
        photos: RGB uint8 [H, W, 3] photos (one split of ``photos.npz``).
        crop: square crop size in pixels (at least the PSF size).
        noise_sigma: Gaussian noise std on [0, 1] intensities of the captures.
        device: where everything is made.
    """

    def __init__(self, bank: PSFBank, photos: list, crop: int, noise_sigma: float,
                 device: torch.device) -> None:
        self.crop, self.noise_sigma = crop, noise_sigma
        self.photos = PhotoBank(photos, device, pad=2 * crop)
        self.model = LayeredBlur(bank, crop, crop, occlusion=True).to(device)
        self.near, self.far = float(bank.depths[0]), float(bank.depths[-1])

    def inverse_depth(self, v: torch.Tensor) -> torch.Tensor:
        """Normalised ``v`` -> inverse depth in 1/m over the bank's range."""
        return 1.0 / self.far + v * (1.0 / self.near - 1.0 / self.far)

    def batch(self, b: int, g: torch.Generator) -> Batch:
        """``b`` new pairs drawn from ``g`` (a generator on the device)."""
        s = self.crop
        textures = colour_jitter(photo_crops(self.photos, b * TEXTURES, s, g), g)
        textures = textures.view(b, TEXTURES, 3, s, s)
        v, label = depth_maps(b, s, g)
        aif = torch.gather(textures, 1, label[:, :, None].expand(b, 1, 3, s, s))[:, 0]
        coded = render_capture(self.model, aif, self.inverse_depth(v), self.noise_sigma, g)
        return Batch(coded, v, aif)
