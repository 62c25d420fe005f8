# SPDX-License-Identifier: Apache-2.0
"""DFD-DPS: joint all-in-focus image and depth by diffusion posterior sampling.

Tensors: the coded measurement ``y`` is [1, C, H, W] in [0, 1] (C = 1 mono, 3 RGB); the
diffusion state lives in the prior's range [-1, 1] with 3 channels; depth is carried as a
normalised inverse depth ``v`` in [0, 1] (0 = farthest bank layer, 1 = nearest), so step
sizes do not depend on the camera's range. H and W must be multiples of the prior's
``size_multiple`` (the pipeline pads).

``dfd_dps`` anneals the prior's denoiser against the physical model (half-quadratic
splitting: a denoising step at a decreasing noise level, then an exact-model image step and a
depth re-fit); ``dps`` is the original DPS update (Chung et al. 2023: gradient of
``||y - A(x0_hat)||`` with respect to ``x_t``, through the network), kept for comparison.
Both take a ``Problem`` and return a ``SamplerResult``; ``SAMPLERS`` names them for the pipeline.
Both use the one DDIM update, ``ddim_step`` (``dfd_dps`` only its x0 estimate, ``predict_x0``).

Notation (DDIM, Song et al. 2021): ``abar`` = alpha-bar_t, the cumulative signal share of the
training schedule at timestep t; ``eps`` = the network's noise prediction epsilon_theta(x_t, t);
``x0`` = the predicted clean image x0_hat in the prior's range [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch

from codedap_depth.consistency import (
    LayerEvidence,
    best_inverse_depth,
    depth_from_image,
    solve_image,
)
from codedap_depth.forward import LayeredBlur
from codedap_depth.names import MAX_STEPS
from codedap_depth.prior import Prior, from_prior_range, to_prior_range

#: Called after every outer iteration with (iteration, total, x0 [M,3,H,W] prior range, v).
Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class SamplerConfig:
    """Tuning of both samplers. The step count and the number of posterior samples are
    arguments of the samplers themselves.

    Attributes:
        sigma_max: first noise level of the ``dfd_dps`` annealing, [0, 1] intensities: above
            the error of the warm-start image, so the first denoising can redraw it.
        path_steps: steps the annealing path is worth as full iterations. Up to this many
            steps every step moves the image all the way to its image step's solution; with
            more, each move is damped by ``(path_steps - 1) / (steps - 1)``, so extra steps
            resolve the same path more finely instead of denoising more often (undamped
            repetition over-smooths: quality fell beyond 20 steps).
        path_factor: with the depth known, the annealing path from ``sigma_max`` to the
            measurement noise sigma_n has ``L = ceil(path_factor * (sigma_max / sigma_n)^2)``
            levels (with 0.25 and sigma_max 0.2: 4 at noise 0.05, 25 at 0.02, 100 at 0.01, 400
            at 0.005), so extra steps cannot repeat denoisings that the data no longer undo.
            (sigma_max / sigma_n)^2 is the range of the image step's proximity weight along
            the path. Blind frames run every step: there the steps also re-fit depth.
        path_top: highest level a known-depth path may start at ([0, 1] intensities, >=
            ``sigma_max``). A frame asked for more than ``L`` steps extends its path upward
            at the path's own level ratio, up to this level; steps beyond that are not run
            (``known_depth_path``). 1.6 was chosen on the dev scenes (CPU, session 22,
            `benchmarks/NOTES.md`): at noise 0.05, 8 levels from 1.27 gained 0.6 dB over the
            4 from 0.2; at 0.02, 46 levels from 1.5 gained 0.4 dB over the 25 from 0.2.
        data_weight: lambda of the image step: the proximity weight to the denoised image is
            ``data_weight * (noise_sigma / level)^2`` (smaller trusts the prior more).
        renoise: share zeta of fresh noise in the denoiser's input and in the start image
            (0 = deterministic: all M posterior samples are equal).
        cg_iterations: conjugate-gradient iterations of each image step.
        step_gradient_sigma: std of a Gaussian gradient prior added to every image step
            when depth is estimated ([0, 1] intensities per pixel; 0 = none; a known depth
            is trusted and gets none). Where the estimated depth is wrong the data term asks
            for a deconvolution with the wrong PSF; this prior damps the ringing that the
            denoiser, at the measurement's noise level, would keep. 0.2 was chosen on the dev
            scenes (H200, both cameras, `benchmarks/NOTES.md`, session 20): blind AIF +0.1 to
            +1.3 dB at 4 steps; with the true depth it would cost 0.3-0.8 dB.
        depth_start: fraction of the steps after which depth is re-fitted from the
            data-consistent image (before it, the warm start's depth is kept).
        depth_refits: at most this many re-fits, in the last steps (``depth_refit_start``).
            Each re-fit reads depth from an image just made consistent with the previous
            depth, so re-fitting at every step of the second half made blind depth and AIF
            worse with every step added; with a fixed count more steps only refine the image
            first. 2 (as a 4-step frame has) was chosen on the dev scenes (CPU, 320x240,
            session 24, `benchmarks/NOTES.md`): at 20 steps each re-fit added beyond 2 raised
            AbsRel and lowered delta1 on motorcycle, aloe and layered at noise 0.01 and 0.05,
            and lowered the dev-mean AIF; slanted's textureless sky is the exception in
            AbsRel.
        depth_radius: radius (pixels) of the guided filter that pools the depth evidence.
        depth_eps: regularisation of that guided filter (squared [0, 1] intensities): larger
            is closer to a plain box mean, smaller follows the image's edges more.
        init_cg_iterations: CG iterations of the least-squares deconvolution (Gaussian
            gradient prior) that refines the warm start's image at its depth before the
            annealing (0: take the warm start's image as it is).
        gradient_sigma: std of that gradient prior and of the ``evidence`` warm start's
            ([0, 1] intensities per pixel).
        window: odd side of the box window of that evidence, pixels.
        dps_step: step size zeta of the ``dps`` variant.
        occlusion: occlusion-aware renderer (else additive) inside the sampler.
    """

    sigma_max: float = 0.2
    path_steps: int = 30
    path_factor: float = 0.25
    path_top: float = 1.6
    data_weight: float = 0.5
    renoise: float = 0.0
    cg_iterations: int = 10
    step_gradient_sigma: float = 0.2
    depth_start: float = 0.5
    depth_refits: int = 2
    depth_radius: int = 8
    depth_eps: float = 1e-2
    init_cg_iterations: int = 20
    gradient_sigma: float = 0.2
    window: int = 15
    dps_step: float = 1.0
    occlusion: bool = True

    def __post_init__(self) -> None:
        if not self.sigma_max > 0:
            raise ValueError(f"sigma_max must be positive, got {self.sigma_max}")
        if self.path_steps < 1:
            raise ValueError(f"path_steps must be >= 1, got {self.path_steps}")
        if not self.path_factor > 0:
            raise ValueError(f"path_factor must be positive, got {self.path_factor}")
        if not self.path_top >= self.sigma_max:
            raise ValueError(f"path_top must be >= sigma_max {self.sigma_max}, got "
                             f"{self.path_top}")
        if not self.data_weight > 0:
            raise ValueError(f"data_weight must be positive, got {self.data_weight}")
        if self.step_gradient_sigma < 0:
            raise ValueError(f"step_gradient_sigma must be >= 0, got {self.step_gradient_sigma}")
        if self.cg_iterations < 0 or self.init_cg_iterations < 0:
            raise ValueError("cg_iterations and init_cg_iterations must be >= 0")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and positive, got {self.window}")
        if self.depth_refits < 0:
            raise ValueError(f"depth_refits must be >= 0, got {self.depth_refits}")
        if self.depth_radius < 0 or not self.depth_eps > 0:
            raise ValueError("depth_radius must be >= 0 and depth_eps positive")
        if not 0.0 <= self.renoise <= 1.0:
            raise ValueError(f"renoise must be in [0, 1], got {self.renoise}")


@dataclass(frozen=True)
class SamplerResult:
    """Posterior samples.

    Attributes:
        aif: [M, C, H, W] all-in-focus images, [0, 1] intensities (C as the measurement).
        inv_depth: [M, 1, H, W] inverse depth, 1/m, within the bank range.
        residuals: [steps] RMS data residual ([0, 1] intensities) at each outer iteration: of
            the denoised image before the image step (``dfd_dps``) or of x0_hat (``dps``).
            A device tensor: reading it waits for the device.
    """

    aif: torch.Tensor
    inv_depth: torch.Tensor
    residuals: torch.Tensor


#: Standard normal draws [M, 3, H, W] by index: 0 is the initial state x_T, i >= 1 the fresh
#: noise of step i - 1. Called once per index, in increasing order.
NoiseSource = Callable[[int], torch.Tensor]


def seeded_noise(generator: torch.Generator, shape: tuple[int, ...]) -> NoiseSource:
    """Draws from ``generator`` on demand (on the generator's device), one tensor per call."""
    return lambda _: torch.randn(shape, generator=generator, device=generator.device)


@dataclass(frozen=True)
class Problem:
    """One padded frame as both samplers are given it.

    Attributes:
        y: [1, C, H, W] coded measurement, [0, 1] intensities.
        model: forward model for this bank and frame size.
        valid: [1, 1, H, W] 1 where the data term applies (0 on padding).
        init_v: [1, 1, H, W] initial normalised inverse depth (the warm start).
        init_image: [1, C, H, W] initial image in [0, 1] (the warm start's deconvolution);
            ``dps`` starts from pure noise and ignores it.
        noise_sigma: measurement noise std, [0, 1] intensities (a float, or a 0-d tensor on
            ``y``'s device); ``dps`` normalises by the residual norm and ignores it.
        fit_depth: False keeps ``init_v`` throughout (non-blind deconvolution: known depth);
            only samplers registered with ``known_depth`` accept it.
    """

    y: torch.Tensor
    model: LayeredBlur
    valid: torch.Tensor
    init_v: torch.Tensor
    init_image: torch.Tensor
    noise_sigma: float | torch.Tensor
    fit_depth: bool = True


class DDIMStep(NamedTuple):
    """One DDIM update: the previous sample and the x0 estimate it was made from."""

    prev_sample: torch.Tensor  # x_{t-1}
    x0: torch.Tensor  # x0_hat, clamped to the prior's range [-1, 1]


def _sqrt(value: float | torch.Tensor) -> float | torch.Tensor:
    """Square root of a host number (in float64) or of a tensor (in its dtype)."""
    return value.sqrt() if isinstance(value, torch.Tensor) else math.sqrt(value)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar: float | torch.Tensor) -> torch.Tensor:
    """Tweedie's estimate of the clean image, clamped to [-1, 1]:
    ``x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar)`` (DDIM eq. 9).

    >>> x0 = torch.tensor([0.5, -2.0])
    >>> predict_x0(0.8 * x0 + 0.6 * torch.ones(2), torch.ones(2), 0.64)
    tensor([ 0.5000, -1.0000])
    """
    return ((x_t - _sqrt(1 - abar) * eps) / _sqrt(abar)).clamp(-1, 1)


def ddim_step(
    x_t: torch.Tensor, eps: torch.Tensor, abar: float | torch.Tensor,
    abar_prev: float | torch.Tensor, direction: torch.Tensor | None = None,
) -> DDIMStep:
    """The deterministic DDIM update (eta = 0, DDIM eq. 12) from timestep t to the previous one:
    ``x_{t-1} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) d``, with ``x0_hat`` from
    ``predict_x0`` and the direction ``d`` = ``eps`` unless given (``dps`` mixes in fresh noise).
    ``abar`` and ``abar_prev`` are host numbers or 0-d tensors on ``x_t``'s device.

    >>> step = ddim_step(0.8 * torch.zeros(1) + 0.6 * torch.ones(1), torch.ones(1), 0.64, 1.0)
    >>> step.prev_sample, step.x0
    (tensor([0.]), tensor([0.]))
    """
    x0 = predict_x0(x_t, eps, abar)  # (1) predicted x0
    d = eps if direction is None else direction
    return DDIMStep(_sqrt(abar_prev) * x0 + _sqrt(1 - abar_prev) * d, x0)  # (2) eq. 12


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


def depth_refit_start(steps: int, config: SamplerConfig) -> int:
    """First step at which a blind ``dfd_dps`` frame of ``steps`` steps re-fits depth (``steps``
    if none): not before ``config.depth_start`` of the steps, nor before the last
    ``config.depth_refits``, nor at step 0 (the warm start's depth is fresh there).

    >>> [depth_refit_start(n, SamplerConfig()) for n in (1, 2, 4, 20, 100)]
    [1, 1, 2, 18, 98]
    """
    return max(1, math.ceil(config.depth_start * steps), steps - config.depth_refits)


def path_damping(steps: int, path_steps: int) -> float:
    """Share of the way each ``dfd_dps`` step moves towards its image step's solution: 1 up to
    ``path_steps`` steps, then ``(path_steps - 1) / (steps - 1)``, so that the total movement
    along the annealing path does not grow with the step count.

    >>> path_damping(20, 30), path_damping(59, 30)
    (1.0, 0.5)
    """
    return 1.0 if steps <= path_steps else (path_steps - 1) / (steps - 1)


class KnownDepthPath(NamedTuple):
    """The annealing path of a known-depth frame: how many levels it runs and where it starts."""

    steps: int  # levels (one network call each), at most the steps asked for
    sigma_start: float  # first level, [0, 1] intensities: sigma_max, or above it when extended


def known_depth_path(steps: int, noise_sigma: float, config: SamplerConfig) -> KnownDepthPath:
    """The path ``dfd_dps`` runs on a known-depth frame of measurement noise ``noise_sigma``
    ([0, 1] intensities, a host number) asked for ``steps`` steps.

    The full path from ``config.sigma_max`` down to the noise has ``L = ceil(config.path_factor
    * (sigma_max / noise_sigma)^2)`` levels, a ratio ``r = (sigma_max / noise_sigma)^(1 / (L -
    1))`` apart. Up to ``L`` steps the path starts at ``sigma_max`` (fewer steps: coarser
    levels, as for blind frames). Beyond ``L`` it is extended upward by levels at the same
    ratio, as many as the steps allow and ``config.path_top`` admits; further steps are not
    run, so they cannot repeat denoisings the data no longer undo.

    >>> paths = [known_depth_path(s, 0.05, SamplerConfig()) for s in (3, 4, 6, 20)]
    >>> [(path.steps, round(path.sigma_start, 3)) for path in paths]
    [(3, 0.2), (4, 0.2), (6, 0.504), (8, 1.27)]
    >>> [known_depth_path(100, sigma, SamplerConfig()).steps for sigma in (0.005, 0.01, 0.02, 0.5)]
    [100, 100, 46, 1]
    """
    sigma_max = config.sigma_max
    length = math.ceil(config.path_factor * (sigma_max / noise_sigma) ** 2 - 1e-9)  # 4 + 1e-10: 4
    if steps <= length or length < 2:
        return KnownDepthPath(max(1, min(steps, length)), sigma_max)
    ratio = (sigma_max / noise_sigma) ** (1 / (length - 1))
    above = math.floor(math.log(config.path_top / sigma_max) / math.log(ratio) + 1e-9)
    extra = min(steps - length, above)
    return KnownDepthPath(length + extra, min(sigma_max * ratio**extra, config.path_top))


class NoiseLevels(NamedTuple):
    """The annealing schedule of ``dfd_dps`` as device tensors (so it may depend on a noise
    estimate made on the device). ``level`` is the std of the denoiser's input error in [0, 1]
    intensities: ``sqrt((1 - abar) / abar) / 2`` (the prior's range is twice as wide)."""

    t: torch.Tensor  # [steps] long training timesteps
    abar: torch.Tensor  # [steps] float32
    level: torch.Tensor  # [steps] float32, decreasing


def noise_levels(prior: Prior, steps: int, sigma_max: float,
                 noise_sigma: float | torch.Tensor, device: torch.device) -> NoiseLevels:
    """``steps`` levels geometric from ``sigma_max`` down to the measurement noise
    ``noise_sigma``, each snapped to the nearest training timestep.

    >>> from codedap_depth.prior import random_prior
    >>> levels = noise_levels(random_prior(), 3, 0.2, 0.01, torch.device("cpu"))
    >>> [round(v, 3) for v in levels.level.tolist()], levels.t.tolist()
    ([0.201, 0.045, 0.009], [117, 23, 2])
    """
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
    abar_all = prior.device_alphas_cumprod.to(device)
    table = ((1 - abar_all) / abar_all).sqrt() / 2  # increasing in t
    low = torch.as_tensor(noise_sigma, dtype=torch.float32, device=device)
    high = torch.maximum(low, torch.full((), sigma_max, device=device))
    fraction = torch.linspace(0, 1, steps, device=device) if steps > 1 else torch.ones(
        1, device=device)
    target = high * (low / high) ** fraction
    above = torch.searchsorted(table, target).clamp(1, len(table) - 1)
    nearer_below = (target - table[above - 1]) < (table[above] - target)
    t = torch.where(nearer_below, above - 1, above)
    return NoiseLevels(t, abar_all[t], table[t])


def dfd_dps(
    problem: Problem,
    prior: Prior,
    config: SamplerConfig,
    steps: int,
    samples: int,
    noise: NoiseSource,
    callback: Callback | None = None,
) -> SamplerResult:
    """DFD-DPS: anneal the diffusion prior's denoiser against the measurement, refitting depth.

    Each step ``i`` at noise level ``s_i`` (``noise_levels``, geometric from
    ``config.sigma_max`` to the measurement noise):

    1. Denoise: the current image, scaled into the prior's state at the timestep of ``s_i``
       (plus ``renoise`` fresh noise), through the network; Tweedie's formula gives ``z``.
    2. Depth (in the last ``depth_refits`` steps, ``depth_refit_start``): re-fitted from the
       current data-consistent image
       (``depth_from_image``: per-layer re-blur residual, guided-filter pooling with that image
       as guide, parabola refinement).
    3. Image: ``x* = argmin ||valid (A_u x - y)||^2 + lambda (sigma_n / s_i)^2 ||x - z||^2
       (+ (sigma_n / step_gradient_sigma)^2 ||grad x||^2 when depth is estimated)`` by
       conjugate gradients from the previous ``x``, occlusions included (``solve_image``);
       ``x`` moves to ``x*``, or by the damping ``kappa`` of the way beyond
       ``config.path_steps`` steps (``path_damping``).

    Nothing in the loop waits for the device, so a fixed-size call can be captured in a CUDA
    graph (``pipeline.Reconstructor`` does, through ``graphed.CapturedCall``).

    Args:
        problem: the frame: measurement, forward model, warm start, noise level.
        prior: diffusion prior (epsilon prediction).
        config: sampler tuning.
        steps: annealing steps (1 ... ``names.MAX_STEPS``), one network call each.
        samples: posterior samples M, run as one batch.
        noise: standard normal draws (``seeded_noise``); index 0 perturbs the initial image by
            ``renoise``, index i >= 1 is step i - 1's fresh noise.
        callback: progress hook.
    """
    y, model, valid, noise_sigma = problem.y, problem.model, problem.valid, problem.noise_sigma
    levels = noise_levels(prior, steps, config.sigma_max, noise_sigma, y.device)
    kappa = path_damping(steps, config.path_steps)
    refit_from = depth_refit_start(steps, config) if problem.fit_depth else steps
    smooth = config.step_gradient_sigma if problem.fit_depth else 0.0
    lambda_g = (noise_sigma / smooth) ** 2 if smooth else 0.0
    count = valid.sum() * y.shape[1] * samples
    channels, zeta = y.shape[1], config.renoise
    v = problem.init_v.expand(samples, -1, -1, -1).clone()
    operator = model.at(v_to_inv(model, v))
    start = noise(0)[:, :channels]  # per-sample perturbation of the initial image
    x = problem.init_image.expand(samples, -1, -1, -1) + (zeta**0.5 * config.sigma_max) * start
    residuals: list[torch.Tensor] = []
    for i in range(steps):
        a, level = levels.abar[i], levels.level[i]
        with torch.no_grad():
            # (1) denoise: x as the prior's state at level s_i, Tweedie estimate z
            x_t = a.sqrt() * to_prior_range(x) + ((1 - a) * zeta).sqrt() * noise(i + 1)
            eps = prior.eps(x_t, levels.t[i].expand(samples))
            z = measured(predict_x0(x_t, eps, a), channels)
            # (2) depth from the data-consistent image of the previous step
            if i >= refit_from:
                v = inv_to_v(model, depth_from_image(model, y, x, config.depth_radius,
                                                     config.depth_eps))
                operator = model.at(v_to_inv(model, v))
            # (3) image: data + proximity to z, by CG started from the previous image (an
            # inexact solve then leans on the data, not on z: less over-smoothing at many steps)
            weight = config.data_weight * (noise_sigma / level) ** 2
            fit = solve_image(operator, y, valid, z, weight, lambda_g, config.cg_iterations, x)
            residuals.append((fit.prior_misfit.pow(2).sum() / count).sqrt())
            x = fit.image if kappa == 1.0 else x + kappa * (fit.image - x)
        if callback is not None:
            callback(i, steps, x, v)
    return SamplerResult(x.clamp(0, 1), v_to_inv(model, v), torch.stack(residuals))


def dps(
    problem: Problem,
    prior: Prior,
    config: SamplerConfig,
    steps: int,
    samples: int,
    noise: NoiseSource,
    callback: Callback | None = None,
) -> SamplerResult:
    """Plain DPS (Chung et al. 2023) extended to depth: ``x_{t-1} = DDIM(x0_hat) - zeta *
    grad_{x_t} ||y - A(x0_hat, v)||`` and ``v <- v - zeta * grad_v ||.||``, from pure noise
    over the DDIM schedule. Arguments as ``dfd_dps``; ``problem.init_image`` and
    ``problem.noise_sigma`` are not used (DPS normalises by the residual norm), nor is
    ``fit_depth`` (it always moves the depth)."""
    y, model, valid, m = problem.y, problem.model, problem.valid, samples
    v = problem.init_v.expand(m, -1, -1, -1).clone()
    x_t = noise(0)
    residuals: list[torch.Tensor] = []
    for i, (t, a_t, a_prev) in enumerate(ddim_schedule(prior, steps)):
        x_t = x_t.detach().requires_grad_(True)
        v = v.detach().requires_grad_(True)
        eps = prior.eps(x_t, torch.full((m,), t, device=y.device, dtype=torch.long))
        x0 = predict_x0(x_t, eps, a_t)
        error = (render(model, x0, v, y.shape[1]) - y) * valid
        norm = error.flatten(1).norm(dim=1).sum()
        grad_x, grad_v = torch.autograd.grad(norm, [x_t, v])
        with torch.no_grad():
            mixed = math.sqrt(1 - config.renoise) * eps + math.sqrt(config.renoise) * noise(i + 1)
            x_t = ddim_step(x_t, eps, a_t, a_prev, mixed).prev_sample - config.dps_step * grad_x
            v = (v - config.dps_step * grad_v).clamp(0, 1)
        residuals.append(rms_residual(model, x0, v, y, valid))
        if callback is not None:
            callback(i, steps, x0, v)
    aif, inv_depth = measured(x0.detach(), y.shape[1]), v_to_inv(model, v.detach())
    return SamplerResult(aif, inv_depth, torch.stack(residuals))


def evidence_start(model: LayeredBlur, evidence: LayerEvidence, y: torch.Tensor) -> torch.Tensor:
    """[1, 1, H, W] inverse depth (1/m) from ``y``'s own per-layer evidence (no image prior,
    no smoothing): the ``evidence`` warm start."""
    return best_inverse_depth(evidence.cost(y, 0.0), model.layer_inv_depths)


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


class SamplerFn(Protocol):
    """What every registered sampler is: ``dfd_dps`` and ``dps`` take these arguments."""

    def __call__(self, problem: Problem, prior: Prior, config: SamplerConfig, steps: int,
                 samples: int, noise: NoiseSource, callback: Callback | None = None
                 ) -> SamplerResult: ...


@dataclass(frozen=True)
class Sampler:
    """A registered sampler and what the pipeline may do with it.

    Attributes:
        run: the sampler.
        starts_from_image: it starts from ``problem.init_image`` (so the pipeline refines the
            warm start's image first); False: from pure noise.
        capturable: nothing in it waits for the device or needs autograd, so a fixed-size
            frame may be captured in a CUDA graph.
        known_depth: it accepts ``problem.fit_depth = False`` (a depth map from another
            sensor).
    """

    run: SamplerFn
    starts_from_image: bool
    capturable: bool
    known_depth: bool


#: The samplers by method name (``ReconstructionConfig.method``).
SAMPLERS: dict[str, Sampler] = {
    "dfd-dps": Sampler(dfd_dps, starts_from_image=True, capturable=True, known_depth=True),
    "dps": Sampler(dps, starts_from_image=False, capturable=False, known_depth=False),
}
