# SPDX-License-Identifier: Apache-2.0
"""DFD-DPS: joint all-in-focus image and depth by diffusion posterior sampling.

Tensors: the coded measurement ``y`` is [1, C, H, W] in [0, 1] (C = 1 mono, 3 RGB); the
diffusion state lives in the prior's range [-1, 1] with 3 channels; depth is carried as a
normalised inverse depth ``v`` in [0, 1] (0 = farthest bank layer, 1 = nearest), so step
sizes do not depend on the camera's range. H and W must be multiples of the prior's
``size_multiple`` (the pipeline pads).

``dfd_dps`` follows the loop of design.md section 4; ``dps`` is the original DPS update
(Chung et al. 2023: gradient of ``||y - A(x0_hat)||`` with respect to ``x_t``, through the
network), kept for comparison. Both return the same ``SamplerResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from codedap_depth.consistency import (
    LayerEvidence,
    best_inverse_depth,
    smooth_depth,
    solve_image,
)
from codedap_depth.forward import LayeredBlur
from codedap_depth.prior import Prior, from_prior_range, to_prior_range

#: Called after every outer iteration with (iteration, total, x0 [M,3,H,W] prior range, v).
Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class SamplerConfig:
    """Tuning of both samplers (defaults chosen by ``benchmarks/tune_sampler.py``). The step
    count and the number of posterior samples are arguments of the samplers themselves.

    Attributes:
        prior_scale: the std of the prior's x0 error is taken as ``prior_scale *
            sqrt((1 - abar_t) / abar_t)`` (prior range); larger trusts the data more.
        gradient_sigma: std of the weak gradient prior of the per-layer deconvolution
            ([0, 1] intensities per pixel).
        cg_iterations: conjugate-gradient iterations of the image step (4: AbsRel within
            0.1 and AIF within 0.45 dB of 10 iterations at 4-50 steps on the quality
            benchmark, at half the image step's cost; README).
        window: odd side of the window pooling the depth evidence, pixels.
        depth_start: fraction of the schedule after which depth is re-fitted from the prior's
            x0 (before it, the warm start is only polished while the image forms).
        depth_mu: precision of x0 (relative to the noise) in the depth evidence.
        tv_weight: weight of the edge-weighted total variation smoothing the fitted depth.
        edge_scale: grey-level step ([0, 1]) at which the TV weight falls by 1/e.
        tv_iterations: Adam iterations of that smoothing (0 = none; 20 iterations changed
            AbsRel by < 0.005 on motorcycle and layered, so it is off by default; the CUDA
            graph path needs 0).
        renoise: share of fresh noise when re-noising (0 = deterministic DDIM).
        dps_step: step size zeta of the ``dps`` variant.
        occlusion: occlusion-aware renderer (else additive) inside the sampler.
    """

    prior_scale: float = 1.0
    gradient_sigma: float = 0.1
    cg_iterations: int = 4
    window: int = 15
    depth_start: float = 0.75
    depth_mu: float = 1.0
    tv_weight: float = 0.02
    edge_scale: float = 0.05
    tv_iterations: int = 0
    renoise: float = 0.3
    dps_step: float = 1.0
    occlusion: bool = True

    def __post_init__(self) -> None:
        if self.cg_iterations < 0:
            raise ValueError(f"cg_iterations must be >= 0, got {self.cg_iterations}")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and positive, got {self.window}")
        if not 0.0 <= self.renoise <= 1.0:
            raise ValueError(f"renoise must be in [0, 1], got {self.renoise}")


@dataclass(frozen=True)
class SamplerResult:
    """Posterior samples.

    Attributes:
        aif: [M, C, H, W] all-in-focus images, [0, 1] intensities (C as the measurement).
        inv_depth: [M, 1, H, W] inverse depth, 1/m, within the bank range.
        residuals: [steps] RMS data residual ([0, 1] intensities) at each outer iteration: of
            the prior's x0 estimate before the data step (``dfd_dps``; it falls as the sample
            converges) or of x0_hat (``dps``). A device tensor: reading it waits for the device.
    """

    aif: torch.Tensor
    inv_depth: torch.Tensor
    residuals: torch.Tensor


#: Standard normal draws [M, 3, H, W] by index: 0 is the initial state x_T, i >= 1 the fresh
#: noise of the re-noising after step i - 1. Called once per index, in increasing order.
NoiseSource = Callable[[int], torch.Tensor]


def seeded_noise(generator: torch.Generator, shape: tuple[int, ...]) -> NoiseSource:
    """Draws from ``generator`` on demand (on the generator's device), one tensor per call."""
    return lambda _: torch.randn(shape, generator=generator, device=generator.device)


def ddim_timesteps(steps: int, train_steps: int = 1000) -> list[int]:
    """``steps`` descending training timesteps, evenly spaced from ``train_steps - 1`` to 0.

    >>> ddim_timesteps(4)
    [999, 666, 333, 0]
    """
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be in 1..{train_steps}, got {steps}")
    return [round(t) for t in torch.linspace(train_steps - 1, 0, steps).tolist()]


def ddim_schedule(prior: Prior, steps: int) -> list[tuple[int, float, float]]:
    """(t, abar_t, abar_prev) per step as host numbers, so the loop never reads the device."""
    abar = prior.alphas_cumprod.tolist()
    times = ddim_timesteps(steps, len(abar))
    prev = [abar[t] for t in times[1:]] + [1.0]
    return [(t, abar[t], a_prev) for t, a_prev in zip(times, prev, strict=True)]


def dfd_dps(
    y: torch.Tensor,
    model: LayeredBlur,
    prior: Prior,
    config: SamplerConfig,
    steps: int,
    samples: int,
    init_v: torch.Tensor | None,
    noise_sigma: float | torch.Tensor,
    noise: NoiseSource,
    valid: torch.Tensor | None = None,
    callback: Callback | None = None,
) -> SamplerResult:
    """DFD-DPS: per step, Tweedie x0, fit (x0, depth) to the measurement, re-noise.

    Nothing in the loop waits for the device, so a fixed-size call can be captured in a CUDA
    graph (``pipeline.Reconstructor`` does, through ``graphed.CapturedCall``).

    Args:
        y: [1, C, H, W] coded measurement.
        model: forward model for this bank and frame size.
        prior: diffusion prior (epsilon prediction).
        config: sampler tuning.
        steps: DDIM steps T' (1 ... 1000).
        samples: posterior samples M, run as one batch.
        init_v: [1, 1, H, W] initial normalised inverse depth (warm start); None starts from
            the measurement's own depth evidence (``LayerEvidence`` without an image prior).
        noise_sigma: measurement noise std, [0, 1] intensities (a float, or a 0-d tensor on
            ``y``'s device).
        noise: standard normal draws (``seeded_noise``).
        valid: [1, 1, H, W] 1 where the data term applies (0 on padding); default all.
        callback: progress hook.
    """
    schedule = ddim_schedule(prior, steps)
    valid = torch.ones_like(y[:, :1]) if valid is None else valid
    count = valid.sum() * y.shape[1] * samples
    evidence = LayerEvidence(model, y, noise_sigma, config.gradient_sigma, config.window)
    if init_v is None:
        init_v = evidence_start(model, evidence, y)
    v = init_v.expand(samples, -1, -1, -1).clone()
    operator = model.at(v_to_inv(model, v))
    x_t = noise(0)
    residuals: list[torch.Tensor] = []
    for i, (t, a_t, a_prev) in enumerate(schedule):
        with torch.no_grad():
            eps = prior.eps(x_t, torch.full((samples,), t, device=y.device, dtype=torch.long))
            # (1) Tweedie / explicit x0 estimate
            x0_prior = ((x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
            # (2) data consistency: depth (late steps), then the image by CG with depth fixed
            prior_std01 = config.prior_scale * math.sqrt((1 - a_t) / a_t) / 2
            x_prior01 = measured(x0_prior, y.shape[1])
            if i >= config.depth_start * steps:
                cost = evidence.cost(x_prior01, config.depth_mu)
                v = inv_to_v(model, best_inverse_depth(cost, model.layer_inv_depths))
                if config.tv_iterations:
                    v = smooth_depth(v, x_prior01, config.tv_weight, config.edge_scale,
                                     config.tv_iterations)
                operator = model.at(v_to_inv(model, v))
            fit = solve_image(operator, y, valid, x_prior01,
                              (noise_sigma / prior_std01) ** 2, evidence.lambda_g,
                              config.cg_iterations)
            residuals.append((fit.prior_misfit.pow(2).sum() / count).sqrt())
            # mono cameras: the fitted grey correction applies to every colour channel
            x0 = to_prior_range(from_prior_range(x0_prior) + fit.image - x_prior01).clamp(-1, 1)
            # (3) re-noise to the next timestep with the noise implied by the refined x0
            eps_hat = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
            fresh = noise(i + 1)
            mixed = math.sqrt(1 - config.renoise) * eps_hat + math.sqrt(config.renoise) * fresh
            x_t = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * mixed
        if callback is not None:
            callback(i, steps, x0, v)
    aif, inv_depth = measured(x0, y.shape[1]), v_to_inv(model, v)
    return SamplerResult(aif, inv_depth, torch.stack(residuals))


def dps(
    y: torch.Tensor,
    model: LayeredBlur,
    prior: Prior,
    config: SamplerConfig,
    steps: int,
    samples: int,
    init_v: torch.Tensor | None,
    noise_sigma: float | torch.Tensor,
    noise: NoiseSource,
    valid: torch.Tensor | None = None,
    callback: Callback | None = None,
) -> SamplerResult:
    """Plain DPS (Chung et al. 2023) extended to depth: ``x_{t-1} = DDIM(x0_hat) - zeta *
    grad_{x_t} ||y - A(x0_hat, v)||`` and ``v <- v - zeta * grad_v ||.||``. Arguments as
    ``dfd_dps`` (``noise_sigma`` only serves the evidence warm start: DPS normalises by the
    residual norm)."""
    m = samples
    valid = torch.ones_like(y[:, :1]) if valid is None else valid
    if init_v is None:
        evidence = LayerEvidence(model, y, noise_sigma, config.gradient_sigma, config.window)
        init_v = evidence_start(model, evidence, y)
    v = init_v.expand(m, -1, -1, -1).clone()
    x_t = noise(0)
    residuals: list[torch.Tensor] = []
    for i, (t, a_t, a_prev) in enumerate(ddim_schedule(prior, steps)):
        x_t = x_t.detach().requires_grad_(True)
        v = v.detach().requires_grad_(True)
        eps = prior.eps(x_t, torch.full((m,), t, device=y.device, dtype=torch.long))
        x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        error = (render(model, x0.clamp(-1, 1), v, y.shape[1]) - y) * valid
        norm = error.flatten(1).norm(dim=1).sum()
        grad_x, grad_v = torch.autograd.grad(norm, [x_t, v])
        with torch.no_grad():
            x0 = x0.clamp(-1, 1)
            mixed = math.sqrt(1 - config.renoise) * eps + math.sqrt(config.renoise) * noise(i + 1)
            x_t = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * mixed - config.dps_step * grad_x
            v = (v - config.dps_step * grad_v).clamp(0, 1)
        residuals.append(rms_residual(model, x0, v, y, valid))
        if callback is not None:
            callback(i, steps, x0, v)
    aif, inv_depth = measured(x0.detach(), y.shape[1]), v_to_inv(model, v.detach())
    return SamplerResult(aif, inv_depth, torch.stack(residuals))


def evidence_start(model: LayeredBlur, evidence: LayerEvidence, y: torch.Tensor) -> torch.Tensor:
    """[1, 1, H, W] normalised inverse depth from ``y``'s own per-layer evidence (no image
    prior, no smoothing): the warm start when none is given."""
    return inv_to_v(model, best_inverse_depth(evidence.cost(y, 0.0), model.layer_inv_depths))


def render(model: LayeredBlur, x0: torch.Tensor, v: torch.Tensor, channels: int) -> torch.Tensor:
    """The measurement predicted from prior-range x0 and normalised inverse depth v."""
    return model(measured(x0, channels), v_to_inv(model, v))


def measured(x0: torch.Tensor, channels: int) -> torch.Tensor:
    """Prior-range RGB -> [0, 1] image with the camera's channel count (mono = mean)."""
    image = from_prior_range(x0)
    return image.mean(dim=1, keepdim=True) if channels == 1 else image


def v_to_inv(model: LayeredBlur, v: torch.Tensor) -> torch.Tensor:
    """Normalised inverse depth in [0, 1] -> inverse depth in 1/m over the bank range."""
    u_near, u_far = model.layer_inv_depths[0], model.layer_inv_depths[-1]
    return u_far + v * (u_near - u_far)


def inv_to_v(model: LayeredBlur, inv_depth: torch.Tensor) -> torch.Tensor:
    """Inverse depth in 1/m -> normalised [0, 1] (clamped to the bank range)."""
    u_near, u_far = model.layer_inv_depths[0], model.layer_inv_depths[-1]
    return ((inv_depth - u_far) / (u_near - u_far)).clamp(0, 1)


@torch.no_grad()
def rms_residual(
    model: LayeredBlur, x0: torch.Tensor, v: torch.Tensor, y: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """RMS of ``y - A(x0, v)`` over valid pixels and all samples ([0, 1] intensities; a 0-d
    tensor, so the loop never waits for the device)."""
    error = (render(model, x0, v, y.shape[1]) - y) * valid
    count = valid.sum() * y.shape[1] * x0.shape[0]
    return (error.pow(2).sum() / count).sqrt()
