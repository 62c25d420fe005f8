# SPDX-License-Identifier: Apache-2.0
"""Differentiable layered image formation for a coded-aperture camera (torch).

Images are [B, C, H, W] float tensors of [0, 1] intensities; inverse depth ``u`` is
[B, 1, H, W] in 1/metres. Layers follow the bank: index 0 is the nearest depth.

Each pixel's inverse depth is split linearly between the two nearest bank layers (soft weights
``w_k``, summing to 1). Two renderers:

* additive: ``y = sum_k h_k * (w_k x)``
* occlusion-aware: layers composited front to back with per-layer opacities
  ``a_k = w_k / sum_{i >= k} w_i`` (the share of what is left behind the nearer layers, so
  that without blur the composite reproduces ``w_k`` exactly),
  ``y = sum_k (h_k * (a_k x)) prod_{j < k} (1 - h_j * a_j)``, divided by the same expression
  with ``x = 1`` so a constant scene stays constant.

For a fixed depth map both renderers are linear in the image: ``LayeredBlur.at(u)`` returns
that linear operator (``FixedDepthBlur``) with its exact adjoint, which the sampler's image step
applies many times per depth map.

Convolutions run as FFT products on the frame padded by the PSF radius with edge replication
(``scipy.ndimage.convolve(mode="nearest")`` semantics); PSF spectra are computed once per bank
and frame size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from codedap_depth.optics import PSFBank

_EPS = 1e-6


def layer_weights(inv_depth: torch.Tensor, layer_inv_depths: torch.Tensor) -> torch.Tensor:
    """Linear split of each pixel's inverse depth between the two nearest layers.

    Args:
        inv_depth: [B, 1, H, W] inverse depth in 1/m; clamped to the layers' range.
        layer_inv_depths: [K] strictly decreasing inverse depths (nearest layer first).

    Returns:
        [B, K, H, W] non-negative weights summing to 1 over K.
    """
    u_k = layer_inv_depths.view(1, -1, 1, 1)
    u = inv_depth.clamp(min=layer_inv_depths[-1], max=layer_inv_depths[0])
    gap_far = torch.cat([u_k[:, :-1] - u_k[:, 1:], u_k[:, -1:]], dim=1)  # u_k - u_{k+1}
    gap_near = torch.cat([u_k[:, :1], u_k[:, :-1] - u_k[:, 1:]], dim=1)  # u_{k-1} - u_k
    rising = 1 - (u_k - u) / gap_far  # valid for u <= u_k
    falling = 1 - (u - u_k) / gap_near  # valid for u >= u_k
    return torch.where(u <= u_k, rising, falling).clamp(min=0)


class LayeredBlur(nn.Module):
    """Coded-aperture image formation ``y = A(x, u)`` for one PSF bank and frame size.

    Args:
        bank: PSF bank (C = 1 PSFs apply to every colour channel).
        height, width: frame size in pixels.
        occlusion: use the occlusion-aware compositor (else additive).
        dtype: float32 (default) or float64 (for gradient checks).
    """

    def __init__(
        self,
        bank: PSFBank,
        height: int,
        width: int,
        occlusion: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if height < bank.size or width < bank.size:
            raise ValueError(
                f"frame {width}x{height} px is smaller than the {bank.size}x{bank.size} px PSF"
            )
        self.height, self.width, self.occlusion = height, width, occlusion
        self.radius = bank.size // 2
        self.fft_shape = (
            fast_fft_length(height + 2 * self.radius),
            fast_fft_length(width + 2 * self.radius),
        )
        psfs = torch.as_tensor(bank.psfs, dtype=dtype)
        self.register_buffer("otf", psf_spectra(psfs, self.fft_shape))  # [K, C, Hf, Wf//2+1]
        inv = 1.0 / torch.as_tensor(bank.depths, dtype=dtype)
        self.register_buffer("layer_inv_depths", inv)

    @property
    def psf_channels(self) -> int:
        return int(self.otf.shape[1])

    def forward(self, image: torch.Tensor, inv_depth: torch.Tensor) -> torch.Tensor:
        """Render the coded measurement (differentiable in both arguments).

        Args:
            image: [B, C, H, W] all-in-focus image, [0, 1] intensities.
            inv_depth: [B, 1, H, W] inverse depth in 1/m.

        Returns:
            [B, C, H, W] blurred image.
        """
        self._check(image, inv_depth)
        return self.at(inv_depth)(image)

    def at(self, inv_depth: torch.Tensor) -> FixedDepthBlur:
        """The renderer for one [B, 1, H, W] inverse depth map (1/m), linear in the image."""
        return FixedDepthBlur(self, inv_depth)

    def blur(self, layers: torch.Tensor) -> torch.Tensor:
        """Convolve each layer with its PSF: [B, K, C, H, W] -> [B, K, C', H, W].

        ``C'`` is ``C`` when the bank is mono (C = 1 PSFs broadcast), or 3 for a colour bank.
        """
        r = self.radius
        b, k, c, h, w = layers.shape
        padded = replicate_pad(layers.reshape(b, k * c, h, w), r)
        # zero-padding up to the fast FFT size never wraps into the kept window
        spectrum = torch.fft.rfft2(padded.reshape(b, k, c, h + 2 * r, w + 2 * r), s=self.fft_shape)
        out = torch.fft.irfft2(spectrum * self.otf, s=self.fft_shape)
        return out[..., r : r + h, r : r + w]

    def blur_adjoint(self, layers: torch.Tensor) -> torch.Tensor:
        """Adjoint of ``blur`` (correlation with each PSF, then the padding folded back onto
        the frame's edge pixels): [B, K, C, H, W] -> [B, K, C', H, W]."""
        r, (h, w) = self.radius, layers.shape[-2:]
        hf, wf = self.fft_shape
        embedded = nn.functional.pad(layers, (r, wf - w - r, r, hf - h - r))
        out = torch.fft.irfft2(torch.fft.rfft2(embedded) * self.otf.conj(), s=self.fft_shape)
        return replicate_pad_adjoint(out[..., : h + 2 * r, : w + 2 * r], r)

    def _check(self, image: torch.Tensor, inv_depth: torch.Tensor) -> None:
        if image.ndim != 4 or image.shape[-2:] != (self.height, self.width):
            raise ValueError(
                f"image must be [B, C, {self.height}, {self.width}], got {tuple(image.shape)}"
            )
        if self.psf_channels == 3 and image.shape[1] != 3:
            raise ValueError(f"a colour PSF bank needs 3 image channels, got {image.shape[1]}")
        if inv_depth.shape != (image.shape[0], 1, self.height, self.width):
            raise ValueError(
                f"inverse depth must be [B, 1, H, W] = {(image.shape[0], 1, *image.shape[-2:])}, "
                f"got {tuple(inv_depth.shape)}"
            )


class FixedDepthBlur:
    """``x -> A(x, u)`` for one depth map ``u``: linear in the image, with its exact adjoint.

    Both renderers are ``A x = sum_k weight_k * h_k * (alpha_k x)``: additive with
    ``alpha_k = w_k`` and ``weight_k = 1``; occlusion-aware with the opacities ``alpha_k`` and
    ``weight_k = prod_{j<k} (1 - h_j * alpha_j) / coverage`` (module docstring). Everything that
    depends on depth only is computed once here.

    Args:
        model: the bank's renderer (PSF spectra, frame size, compositor).
        inv_depth: [B, 1, H, W] inverse depth in 1/m.
    """

    def __init__(self, model: LayeredBlur, inv_depth: torch.Tensor) -> None:
        self.model = model
        w = layer_weights(inv_depth, model.layer_inv_depths)  # [B, K, H, W]
        if not model.occlusion:
            self.alpha, self.weight = w.unsqueeze(2), None
            return
        remaining = w.flip(1).cumsum(1).flip(1)  # sum_{i >= k} w_i
        self.alpha = (w / remaining.clamp(min=_EPS)).unsqueeze(2)  # [B, K, 1, H, W]
        blurred_a = model.blur(self.alpha)  # [B, K, Cpsf, H, W]
        transmit = torch.cumprod(1 - blurred_a, dim=1)
        transmit = torch.cat([torch.ones_like(transmit[:, :1]), transmit[:, :-1]], dim=1)
        coverage = (blurred_a * transmit).sum(dim=1, keepdim=True)
        self.weight = transmit / coverage.clamp(min=_EPS)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] image ([0, 1]) -> [B, C, H, W] blurred image."""
        blurred = self.model.blur(self.alpha * image.unsqueeze(1))
        return (blurred if self.weight is None else blurred * self.weight).sum(dim=1)

    def adjoint(self, residual: torch.Tensor) -> torch.Tensor:
        """Adjoint: [B, C, H, W] in measurement space -> [B, C, H, W] in image space."""
        spread = residual.unsqueeze(1)
        if self.weight is not None:
            spread = spread * self.weight
        else:
            spread = spread.expand(-1, self.alpha.shape[1], -1, -1, -1)
        return (self.alpha * self.model.blur_adjoint(spread)).sum(dim=1)


def replicate_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Edge-replicate the last two dims by ``r`` pixels.

    Built from ``expand`` and ``cat``, whose gradients are plain sums and slices, so the adjoint
    is deterministic on CUDA (the built-in replicate padding accumulates its gradient with
    atomics, which made same-seed runs differ on an H100).
    """
    if r == 0:
        return x
    rows = torch.cat([x[..., :1, :].expand(*x.shape[:-2], r, x.shape[-1]), x,
                      x[..., -1:, :].expand(*x.shape[:-2], r, x.shape[-1])], dim=-2)
    return torch.cat([rows[..., :1].expand(*rows.shape[:-1], r), rows,
                      rows[..., -1:].expand(*rows.shape[:-1], r)], dim=-1)


def replicate_pad_adjoint(x: torch.Tensor, r: int) -> torch.Tensor:
    """Adjoint of ``replicate_pad``: each border strip of ``r`` pixels is summed onto the edge
    row or column it copies; [..., H + 2r, W + 2r] -> [..., H, W] (H, W >= 2)."""
    if r == 0:
        return x
    rows = torch.cat([x[..., : r + 1, :].sum(-2, keepdim=True), x[..., r + 1 : -r - 1, :],
                      x[..., -r - 1 :, :].sum(-2, keepdim=True)], dim=-2)
    return torch.cat([rows[..., : r + 1].sum(-1, keepdim=True), rows[..., r + 1 : -r - 1],
                      rows[..., -r - 1 :].sum(-1, keepdim=True)], dim=-1)


def fast_fft_length(n: int) -> int:
    """Smallest 5-smooth integer >= n (fast FFT sizes).

    >>> fast_fft_length(92), fast_fft_length(116)
    (96, 120)
    """
    length = n
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def psf_spectra(psfs: torch.Tensor, fft_shape: tuple[int, int]) -> torch.Tensor:
    """Real FFTs of [K, C, S, S] PSFs zero-padded to ``fft_shape`` with the centre at (0, 0)."""
    size = psfs.shape[-1]
    padded = psfs.new_zeros(*psfs.shape[:2], *fft_shape)
    padded[..., :size, :size] = psfs
    padded = torch.roll(padded, shifts=(-(size // 2), -(size // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)


def add_sensor_noise(
    clean: torch.Tensor,
    sigma: float,
    generator: torch.Generator,
    photons: float | None = None,
) -> torch.Tensor:
    """Noisy capture: optional Poisson shot noise, then additive Gaussian, clipped to [0, 1].

    Args:
        clean: [0, 1] intensities.
        sigma: Gaussian standard deviation on [0, 1] intensities.
        generator: seeded generator on ``clean``'s device.
        photons: full-well photon count for shot noise (None: no shot noise).
    """
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    noisy = clean.clamp(0, 1)
    if photons is not None:
        if photons <= 0:
            raise ValueError(f"photon count must be positive, got {photons}")
        noisy = torch.poisson(noisy * photons, generator=generator) / photons
    gauss = torch.randn(noisy.shape, generator=generator, device=noisy.device, dtype=noisy.dtype)
    return (noisy + sigma * gauss).clamp(0, 1)


def estimate_noise_sigma(image: torch.Tensor) -> float:
    """Gaussian noise std ([0, 1] intensities) from the finest diagonal Haar detail.

    Donoho's robust estimate ``median(|HH|) / 0.6745``; reliable on blurred captures, whose
    finest scale holds little signal. ``image`` is [B, C, H, W].
    """
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    x = image[..., :h, :w]
    diagonal = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2]
                + x[..., 1::2, 1::2]) / 2
    return float(diagonal.abs().median()) / 0.6745


def check_coded_image(coded: np.ndarray, bank: PSFBank, tolerance: float = 1e-3) -> np.ndarray:
    """Validate a coded frame against ``bank``; ValueError says what is wrong.

    Args:
        coded: [H, W, C] image of [0, 1] intensities, C = 1 or 3 (3 for a colour bank).
        bank: the PSF bank it will be reconstructed with.
        tolerance: how far outside [0, 1] values may stray (rounding) before it is an error.

    Returns:
        The image as contiguous float32 [H, W, C], clipped to [0, 1].
    """
    image = np.asarray(coded)
    if image.ndim != 3:
        raise ValueError(
            f"coded image must have rank 3 [H, W, C], got shape {image.shape} "
            "(use image[..., None] for a mono image)"
        )
    h, w, c = image.shape
    if c not in (1, 3):
        raise ValueError(f"coded image must have 1 or 3 channels ([H, W, 1|3]), got {c}")
    if bank.channels == 3 and c != 3:
        raise ValueError(
            f"a colour (C=3) PSF bank needs a 3-channel image, got {c} channel(s): "
            "the image must be RGB (or use a mono bank)"
        )
    if h < bank.size or w < bank.size:
        raise ValueError(
            f"coded image {w}x{h} px is smaller than the {bank.size} px PSF "
            f"({bank.size}x{bank.size} px support)"
        )
    if image.dtype.kind not in "fiub":
        raise ValueError(f"coded image must be numeric, got dtype {image.dtype}")
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
        bad = int((~np.isfinite(image)).sum())
        raise ValueError(f"coded image contains {bad} NaN or Inf pixels")
    low, high = float(image.min()), float(image.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"coded image values must be [0, 1] intensities, got [{low:.4g}, {high:.4g}] "
            "(divide 8-bit images by 255)"
        )
    return np.ascontiguousarray(np.clip(image, 0.0, 1.0))
