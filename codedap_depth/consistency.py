# SPDX-License-Identifier: Apache-2.0
"""Data consistency of DFD-DPS: fit image and depth to the measurement near the prior's x0.

* ``solve_image``: with depth fixed the occlusion-aware model is linear in the image, so the
  image step is a proximal least-squares problem (data + distance to the prior's x0 + a weak
  gradient prior) solved by a few conjugate-gradient iterations.
* ``depth_from_image``: depth re-fitted from the current data-consistent all-in-focus image:
  per-layer re-blur residual, pooled by a guided filter with the image as guide.
* ``LayerEvidence`` / ``best_inverse_depth``: the ``evidence`` warm start. For every
  bank layer k the image is deconvolved in closed form (Fourier domain) under a Gaussian prior
  centred on x0 (precision ``mu``) plus the gradient prior,
  ``X_k = (conj(H_k) Y + mu X0) / (|H_k|^2 + mu + lambda_g |G|^2)``; each pixel's evidence
  for layer k is that model's windowed marginal negative log-likelihood (Levin et al. 2007):
  re-blur residual, deviation from x0 and gradient energy of ``x_k``, plus the layer's
  log-determinant. The best layer, refined by a parabola, gives the inverse depth.

Units: images in [0, 1] intensities, inverse depth in 1/m.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from codedap_depth.forward import FixedDepthBlur, LayeredBlur, replicate_pad


class LayerEvidence:
    """Per-layer proximal deconvolution and depth evidence for one measurement.

    Args:
        model: forward model (its PSF spectra and FFT size are reused).
        y: [1, C, H, W] coded measurement.
        noise_sigma: measurement noise std ([0, 1] intensities; a float or a 0-d tensor).
        gradient_sigma: std of the weak Gaussian gradient prior ([0, 1] intensities / px).
        window: odd side of the box window that pools the evidence, pixels.
    """

    def __init__(
        self,
        model: LayeredBlur,
        y: torch.Tensor,
        noise_sigma: float | torch.Tensor,
        gradient_sigma: float,
        window: int,
    ) -> None:
        self.model, self.sigma2, self.window = model, noise_sigma**2, window
        self.lambda_g = (noise_sigma / gradient_sigma) ** 2
        self.spectrum_y = self.spectrum(y)  # [1, 1, C, Hf, Wr]
        fy = torch.fft.fftfreq(model.fft_shape[0], device=y.device)
        fx = torch.fft.rfftfreq(model.fft_shape[1], device=y.device)
        self.grad2 = (2 - 2 * torch.cos(2 * torch.pi * fy))[:, None] + (
            2 - 2 * torch.cos(2 * torch.pi * fx)
        )[None, :]
        self.power = model.otf.real**2 + model.otf.imag**2  # [K, C', Hf, Wr]

    def spectrum(self, image: torch.Tensor) -> torch.Tensor:
        """FFT of an edge-padded [B, C, H, W] image: [B, 1, C, Hf, Wr]."""
        r = self.model.radius
        padded = replicate_pad(image, r)
        return torch.fft.rfft2(padded, s=self.model.fft_shape).unsqueeze(1)

    def crop(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Inverse FFT cropped back to the frame."""
        r, (h, w) = self.model.radius, (self.model.height, self.model.width)
        return torch.fft.irfft2(spectrum, s=self.model.fft_shape)[..., r : r + h, r : r + w]

    def cost(self, x_prior: torch.Tensor, mu: float) -> torch.Tensor:
        """Windowed evidence against every layer.

        Args:
            x_prior: [M, C, H, W] prior estimate of the image (camera channels), [0, 1].
            mu: precision of the prior estimate relative to the noise (sigma^2 / s^2).

        Returns:
            [M, K, H, W] negative log-likelihood, nats per pixel, pooled over the window.
        """
        otf = self.model.otf
        precision = mu + self.lambda_g * self.grad2
        spectrum_x = (otf.conj() * self.spectrum_y + mu * self.spectrum(x_prior)) / (
            self.power + precision
        )
        images = self.crop(spectrum_x)  # [M, K, C, H, W]: x_k
        residual = self.crop(otf * spectrum_x - self.spectrum_y)
        gx = images[..., :, 1:] - images[..., :, :-1]
        gy = images[..., 1:, :] - images[..., :-1, :]
        gradient = nn.functional.pad(gx.pow(2), (0, 1)) + nn.functional.pad(
            gy.pow(2), (0, 0, 0, 1)
        )
        energy = residual.pow(2) + mu * (images - x_prior.unsqueeze(1)).pow(2)
        energy = (energy + self.lambda_g * gradient).sum(dim=2) / (2 * self.sigma2)
        channels = x_prior.shape[1] // otf.shape[1]
        log_det = torch.log(self.power + precision).mean(dim=(-2, -1)).sum(dim=1) * channels / 2
        pooled = box_mean(energy, self.window)
        return pooled + log_det.view(1, -1, 1, 1)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window`` x ``window`` box (shrunk at the borders) of [B, C, H, W]."""
    return nn.functional.avg_pool2d(
        x, window, stride=1, padding=window // 2, count_include_pad=False
    )


def best_inverse_depth(cost: torch.Tensor, layer_inv_depths: torch.Tensor) -> torch.Tensor:
    """Per-pixel minimum of a [M, K, H, W] cost, refined by a parabola through the
    neighbouring layers, as inverse depth [M, 1, H, W] (1/m)."""
    k = cost.shape[1]
    best = cost.argmin(dim=1, keepdim=True)
    lower, upper = (best - 1).clamp(0, k - 1), (best + 1).clamp(0, k - 1)
    c0, c_lo, c_hi = cost.gather(1, best), cost.gather(1, lower), cost.gather(1, upper)
    curvature = c_lo - 2 * c0 + c_hi
    offset = torch.where(curvature > 1e-12, 0.5 * (c_lo - c_hi) / curvature.clamp(min=1e-12), 0.0)
    position = (best + offset.clamp(-0.5, 0.5)).clamp(0, k - 1)
    index = position.floor().long().clamp(max=k - 2)
    frac = position - index
    u = layer_inv_depths[index] * (1 - frac) + layer_inv_depths[index + 1] * frac
    return u


class ImageFit(NamedTuple):
    """Result of ``solve_image``.

    Attributes:
        image: [M, C, H, W] fitted image, [0, 1] intensities.
        prior_misfit: [M, C, H, W] ``valid (A(x_prior, u) - y)``, the data residual of the
            starting point (free: CG computes it anyway).
    """

    image: torch.Tensor
    prior_misfit: torch.Tensor


def solve_image(
    operator: FixedDepthBlur,
    y: torch.Tensor,
    valid: torch.Tensor,
    x_prior: torch.Tensor,
    mu: float | torch.Tensor,
    lambda_g: float | torch.Tensor,
    iterations: int,
    x_start: torch.Tensor | None = None,
) -> ImageFit:
    """Image fit with depth fixed, by conjugate gradients on the normal equations of

        ||valid (A x - y)||^2 + mu ||x - x_prior||^2 + lambda_g ||grad x||^2

    (``operator`` is ``A = LayeredBlur.at(u)``, linear in ``x``, occlusions included),
    started at ``x_start`` (default ``x_prior``). ``x_prior`` and the image are
    [M, C, H, W] in [0, 1] (camera channels). Fixed iteration count, no host synchronisation.
    """

    def normal(x: torch.Tensor) -> torch.Tensor:
        return operator.adjoint(valid * operator(x)) + mu * x + lambda_g * gradient_normal(x)

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=(1, 2, 3), keepdim=True)

    misfit = valid * (operator(x_prior) - y)
    x = x_prior
    residual = -(operator.adjoint(misfit) + lambda_g * gradient_normal(x_prior))
    if x_start is not None:  # same problem, other starting point: r = b - N x_start
        x = x_start
        residual = residual - normal(x_start - x_prior)
    direction = residual
    rs = dot(residual, residual)
    for _ in range(iterations):
        curvature = normal(direction)
        alpha = rs / dot(direction, curvature).clamp(min=1e-20)
        x = x + alpha * direction
        residual = residual - alpha * curvature
        rs_new = dot(residual, residual)
        direction = residual + (rs_new / rs.clamp(min=1e-20)) * direction
        rs = rs_new
    return ImageFit(x, misfit)


def gradient_normal(x: torch.Tensor) -> torch.Tensor:
    """``G^T G x`` for forward differences with zero-flux borders: [..., H, W] -> same."""
    gx = nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (1, 1))
    gy = nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 1, 1))
    return -(gx[..., :, 1:] - gx[..., :, :-1]) - (gy[..., 1:, :] - gy[..., :-1, :])


def depth_from_image(
    model: LayeredBlur, y: torch.Tensor, image: torch.Tensor, radius: int, eps: float
) -> torch.Tensor:
    """Inverse depth [M, 1, H, W] (1/m) that best explains ``y`` given an all-in-focus image.

    Per layer k the image is re-blurred by the layer's PSF, ``r_k = y - h_k * x``; the cost
    ``sum_c r_k^2`` is pooled by a guided filter with the image as guide (``guided_mean``:
    windows follow the image's edges, so evidence does not bleed across depth edges the image
    shows), and the best layer is refined by a parabola (``best_inverse_depth``).

    Args:
        model: forward model (PSF spectra, frame size).
        y: [1, C, H, W] measurement, [0, 1].
        image: [M, C, H, W] all-in-focus estimate, [0, 1] (data-consistent, not a raw
            denoiser output).
        radius: guided-filter radius, pixels (0: per-pixel cost).
        eps: guided-filter regularisation (squared [0, 1] intensities).
    """
    blurred = model.blur(image.unsqueeze(1))  # [M, 1, C, H, W] -> [M, K, C, H, W] via OTF
    cost = (blurred - y.unsqueeze(1)).pow(2).sum(dim=2)  # [M, K, H, W]
    if radius:
        cost = guided_mean(cost, image.mean(dim=1, keepdim=True), radius, eps)
    return best_inverse_depth(cost, model.layer_inv_depths)


def guided_mean(
    values: torch.Tensor, guide: torch.Tensor, radius: int, eps: float
) -> torch.Tensor:
    """Guided filter (He et al. 2010) of each channel of [M, K, H, W] ``values`` with the
    [M, 1, H, W] ``guide``: per window a linear function of the guide, averaged over windows.

    With a flat guide it is a box mean of side ``2 radius + 1``; across a guide edge the two
    sides keep their own means.
    """
    window = 2 * radius + 1
    mean_i = box_mean(guide, window)
    var_i = box_mean(guide * guide, window) - mean_i * mean_i
    mean_p = box_mean(values, window)
    cov_ip = box_mean(guide * values, window) - mean_i * mean_p
    slope = cov_ip / (var_i + eps)
    offset = mean_p - slope * mean_i
    return box_mean(slope, window) * guide + box_mean(offset, window)
