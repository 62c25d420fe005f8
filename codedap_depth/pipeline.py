# SPDX-License-Identifier: Apache-2.0
"""One coded photo in, depth + all-in-focus image + uncertainty out (numpy in and out).

``Reconstructor`` holds what is prepared once per bank and frame size (prior, PSF spectra, the
classical solver, the CUDA graph) and runs the chosen method on each frame: ``dfd-dps``
(default), ``dps``, ``classical`` or ``unet`` (the U-Net regressor of ``codedap_depth.regressor``,
which takes the image alone). The one call is ``Reconstructor(frame)``. A frame's device work
(warm start, then the sampler of ``sampler.SAMPLERS``) is one private function; on CUDA, a
capturable sampler's frames replay it from a CUDA graph (``_replay``, the one place a graph is
captured). ``Reconstructor.device_call`` exposes that work alone, for timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from codedap_depth.baselines import ClassicalSolver, classical_reconstruct, layer_spread
from codedap_depth.consistency import LayerEvidence, solve_image
from codedap_depth.forward import LayeredBlur, check_coded_image, estimate_noise_sigma
from codedap_depth.graphed import CapturedCall
from codedap_depth.names import MAX_STEPS
from codedap_depth.optics import PSFBank, validate_bank
from codedap_depth.sampler import (
    SAMPLERS,
    NoiseSource,
    Problem,
    SamplerConfig,
    SamplerResult,
    evidence_start,
    inv_to_v,
    known_depth_path,
    seeded_noise,
    v_to_inv,
)
from codedap_depth.scenes import fill_unknown

METHODS = (*SAMPLERS, "classical", "unet")
#: Methods without sampler steps or posterior samples (``steps`` / ``samples`` are ignored).
STEPLESS_METHODS = ("classical", "unet")
INITS = ("classical", "evidence", "mid")
#: Sampler steps of the real-time preset (the default), and of the quality preset: at 4 steps
#: and 10 CG iterations a 256x256 frame took 60.8 ms and a 512x512 frame 185.9 ms on an H200
#: (16.4 and 5.4 Hz; README); with the depth known, 20 steps gained 0.35-3.2 dB of AIF over 4
#: at noise <= 0.02 and lost 0.1-0.7 dB at 0.05 (set means, default camera).
DEFAULT_STEPS = 4
QUALITY_STEPS = 20
_MIN_NOISE_SIGMA = 0.002


@dataclass(frozen=True)
class ReconstructionConfig:
    """What to run.

    Attributes:
        method: ``dfd-dps`` | ``dps`` | ``classical`` | ``unet``.
        steps: DDIM steps of the samplers (1 ... ``names.MAX_STEPS``); a known-depth frame runs
            the path ``sampler.known_depth_path`` makes of them (at high noise fewer, started
            higher).
        samples: posterior samples M (depth = their median; their std adds to the uncertainty).
        device: ``cpu`` or ``cuda[:N]``.
        seed: random seed; same seed, input and device give the same output.
        noise_sigma: measurement noise std on [0, 1] intensities; None estimates it per frame.
        init: sampler warm start: ``classical`` (the baseline's depth), ``evidence`` (the
            measurement's own per-layer evidence, no smoothing) or ``mid`` (mid-range).
        cuda_graph: on CUDA, run dfd-dps frames (warm start and sampler) as one CUDA-graph
            replay, captured on the first frame of each size (``dps`` always runs eagerly).
        sampler: sampler tuning.
    """

    method: str = "dfd-dps"
    steps: int = DEFAULT_STEPS
    samples: int = 1
    device: str = "cpu"
    seed: int = 0
    noise_sigma: float | None = None
    init: str = "classical"
    cuda_graph: bool = True
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {self.steps}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.noise_sigma is not None and not self.noise_sigma > 0:
            raise ValueError(f"noise_sigma must be positive, got {self.noise_sigma}")


@dataclass(frozen=True)
class Reconstruction:
    """Result for one frame.

    Attributes:
        depth: [H, W] float32 metres along the optical axis, NaN = invalid.
        aif: [H, W, C] float32 all-in-focus image in [0, 1] (C as the input: 1 or 3).
        uncertainty: [H, W] float32 metres: the layer posterior's spread around the depth
            (``baselines.layer_spread`` of the classical cost volume; 0 with a known depth),
            combined with the std over posterior samples when there are several.
        seconds: wall time of the reconstruction.
        noise_sigma: the noise std used ([0, 1] intensities).
        residuals: RMS data residual after each sampler iteration (empty for classical).
    """

    depth: np.ndarray
    aif: np.ndarray
    uncertainty: np.ndarray
    seconds: float
    noise_sigma: float
    residuals: list[float]


class FramePosterior(NamedTuple):
    """The device result of one padded frame (``Reconstructor._posterior``).

    Attributes:
        sample: the sampler's output.
        spread: [M, 1, H, W] depth uncertainty of each sample, metres (``layer_spread``);
            None when the depth was given.
    """

    sample: SamplerResult
    spread: torch.Tensor | None


class Reconstructor:
    """Reconstructs frames for one PSF bank.

    Args:
        bank: the camera's PSF bank.
        config: what to run.
        prior: diffusion prior (default: the shipped one, loaded on ``config.device``).

    Frames are reconstructed by calling the object; ``graphed`` says which path they take and
    ``device_call`` times their device work. What is built per frame size (forward model,
    classical solver, CUDA graph) is private and rebuilt when the size changes.
    """

    def __init__(self, bank: PSFBank, config: ReconstructionConfig, prior=None) -> None:
        validate_bank(bank, "PSF bank")
        self.bank, self.config = bank, config
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {config.device!r} requested but CUDA is not available")
        self.regressor = None
        if config.method == "unet":  # the trained U-Net; no prior, no PSFs
            from codedap_depth.regressor import load_regressor

            self.regressor = load_regressor(self.device)
        elif config.method != "classical" and prior is None:
            from codedap_depth.prior import load_prior

            prior = load_prior(self.device)
        self.prior = prior
        self._sampler = SAMPLERS.get(config.method)  # None for classical and unet
        self._size: tuple[int, int, int] | None = None  # (H, W, C) of what is prepared

    @property
    def graphed(self) -> bool:
        """True when frames replay a CUDA graph."""
        return (self.config.cuda_graph and self.device.type == "cuda"
                and self._sampler is not None and self._sampler.capturable)

    def __call__(self, coded: np.ndarray, seed: int | None = None,
                 known_depth: np.ndarray | None = None) -> Reconstruction:
        """Reconstruct one coded frame: [H, W] or [H, W, C] float in [0, 1].

        ``seed`` overrides ``config.seed`` for this call. ``known_depth`` ([H, W] metres from
        another sensor, NaN = unknown) turns the call into non-blind deconvolution: depth is
        kept (clamped to the bank's range; unknown pixels take the nearest known depth) and
        only the all-in-focus image is estimated (``dfd-dps`` only; runs eagerly).
        """
        image = self._validate(coded)
        known_inv = None if known_depth is None else self._known_inverse_depth(known_depth, image)
        start = time.perf_counter()
        y, sigma = self._upload(image)
        if self.config.method == "classical":
            classical = classical_reconstruct(image, self.bank, sigma, device=self.config.device)
            depth, aif, uncertainty = classical.depth, classical.aif, classical.uncertainty
            residuals = []
        elif self.regressor is not None:
            depth, aif, uncertainty = self._regress(y)
            residuals = []
        else:
            seed = self.config.seed if seed is None else seed
            depth, aif, uncertainty, residuals = self._sample(y, sigma, seed, known_inv)
        return Reconstruction(
            depth=depth.astype(np.float32),
            aif=np.clip(aif, 0, 1).astype(np.float32),
            uncertainty=uncertainty.astype(np.float32),
            seconds=time.perf_counter() - start,
            noise_sigma=float(sigma),
            residuals=residuals,
        )

    def _regress(self, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``unet``: depth (m), AIF [H, W, C] and depth std (m) of [1, C, H, W] ``y`` from the
        regressor, which ignores the bank (it was trained for ``config/camera.yaml``)."""
        out = self.regressor(y)
        return out.depth, out.aif, out.uncertainty

    def device_call(self, coded: np.ndarray, seed: int | None = None) -> Callable[[], None]:
        """For timing: a function that runs ``coded``'s device work alone, as every call of
        the object does it (warm start, sampler and depth uncertainty; a CUDA-graph replay
        where ``graphed``), without the upload, noise estimate and draws, or the download.
        Those are done once here (all steps' noise is drawn up front). Sampler methods only;
        the function returns nothing, and nothing waits for the device."""
        if self._sampler is None:
            raise ValueError(f"device_call needs a sampler method {tuple(SAMPLERS)}, not "
                             f"{self.config.method!r}")
        seed = self.config.seed if seed is None else seed
        y, sigma = self._upload(self._validate(coded))
        y, valid, _ = self._padded(y)
        sigma_t, noise = self._graph_inputs(sigma, self._noise(y, seed))
        if self.graphed:
            return lambda: (self._replay(y, valid, sigma_t, noise), None)[1]
        return lambda: (self._posterior(y, valid, sigma, noise.__getitem__), None)[1]

    def _upload(self, image: np.ndarray) -> tuple[torch.Tensor, float]:
        """[1, C, H, W] ``image`` on the device, and the noise std to use (``config``'s, or
        estimated there: tens of ms on a host CPU)."""
        y = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        y = y.to(self.device)
        return y, self.config.noise_sigma or max(estimate_noise_sigma(y), _MIN_NOISE_SIGMA)

    def _known_inverse_depth(self, depth: np.ndarray, image: np.ndarray) -> torch.Tensor:
        """[1, 1, H, W] inverse depth (1/m) on the device from a known depth map; ValueError
        says what is wrong with it."""
        if self._sampler is None or not self._sampler.known_depth:
            known = [name for name, sampler in SAMPLERS.items() if sampler.known_depth]
            raise ValueError(f"a known depth map needs method {' or '.join(known)}, not "
                             f"{self.config.method!r}")
        depth = np.asarray(depth)
        if depth.dtype.kind != "f" or depth.shape != image.shape[:2]:
            raise ValueError(f"known depth must be a float [H, W] map of the frame's size "
                             f"{image.shape[:2]}, got {depth.dtype} {depth.shape}")
        finite = np.isfinite(depth)
        if not finite.any():
            raise ValueError("known depth has no finite pixel (NaN = unknown)")
        if np.any(depth[finite] <= 0):
            raise ValueError(f"known depth must be positive metres (NaN = unknown), found "
                             f"{int((depth[finite] <= 0).sum())} pixels <= 0")
        filled = fill_unknown(depth.astype(np.float32))
        return torch.from_numpy(1.0 / filled)[None, None].to(self.device)

    def _validate(self, coded: np.ndarray) -> np.ndarray:
        """Check a frame and return it as float32 [H, W, C]; ValueError says what is wrong."""
        if not isinstance(coded, np.ndarray) or coded.dtype.kind != "f":
            raise ValueError("coded image must be a float numpy array of [0, 1] intensities")
        return check_coded_image(coded[..., None] if coded.ndim == 2 else coded, self.bank)

    def _posterior(
        self, y: torch.Tensor, valid: torch.Tensor, sigma: torch.Tensor | float,
        noise: NoiseSource, known_inv: torch.Tensor | None = None,
    ) -> FramePosterior:
        """All device work of one frame: warm start, the sampler, the depth uncertainty.
        ``y`` [1, C, H, W], ``valid`` [1, 1, H, W] and ``known_inv`` (a known inverse depth,
        1/m) are padded to the prior's size multiple (``_prepare`` first). The classical
        solver runs for every blind frame: its cost volume gives the uncertainty. A
        known-depth frame (always eager, ``sigma`` a number) runs the path
        ``sampler.known_depth_path`` makes of the steps."""
        sampler = self.config.sampler
        steps = self.config.steps
        aif = y[0]  # without a warm-start image the first image step deconvolves from y
        cost = None
        if known_inv is not None:
            inv_depth = known_inv
            path = known_depth_path(steps, float(sigma), sampler)
            steps, sampler = path.steps, replace(sampler, sigma_max=path.sigma_start)
        else:
            classical_inv, classical_aif, _, cost = self._classical_solver(y[0], sigma)
            if self.config.init == "classical":
                inv_depth, aif = classical_inv.float()[None, None], classical_aif
            elif self.config.init == "evidence":
                evidence = LayerEvidence(self._model, y, sigma, sampler.gradient_sigma,
                                         sampler.window)
                inv_depth = evidence_start(self._model, evidence, y)
            else:  # "mid": halfway through the bank in inverse depth
                inv_depth = v_to_inv(self._model, torch.full_like(valid, 0.5))
        if self._sampler.starts_from_image and sampler.init_cg_iterations:
            lambda_g = (sigma / sampler.gradient_sigma) ** 2
            aif = solve_image(self._model.at(inv_depth), y, valid, aif[None], 0.0, lambda_g,
                              sampler.init_cg_iterations).image[0]
        problem = Problem(y, self._model, valid, inv_to_v(self._model, inv_depth), aif[None],
                          sigma, fit_depth=known_inv is None)
        result = self._sampler.run(problem, self.prior, sampler, steps, self.config.samples,
                                   noise)
        spread = None if cost is None else layer_spread(
            cost, self._classical_solver.layer_depths, 1.0 / result.inv_depth)
        return FramePosterior(result, spread)

    def _prepare(self, height: int, width: int, channels: int) -> None:
        """Build the forward model and the classical solver (warm start) for padded frames of
        this size; kept until the size changes. The CUDA graph is captured on the next
        frame."""
        if self._size == (height, width, channels):
            return
        self._model = LayeredBlur(self.bank, height, width,
                                  occlusion=self.config.sampler.occlusion).to(self.device)
        self._classical_solver = ClassicalSolver(self.bank, height, width, device=self.device)
        self._graph: CapturedCall[FramePosterior] | None = None
        self._size = (height, width, channels)

    def _padded(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """``y`` padded to the prior's size multiple by edge replication, the [1, 1, H', W']
        mask of its own pixels, and the padding (``F.pad`` order); prepares that size."""
        height, width = y.shape[-2:]
        multiple = self.prior.size_multiple
        pad = (0, -width % multiple, 0, -height % multiple)
        padded = torch.nn.functional.pad(y, pad, mode="replicate")
        valid = torch.nn.functional.pad(torch.ones_like(y[:, :1]), pad)
        self._prepare(*padded.shape[-2:], padded.shape[1])
        return padded, valid, pad

    def _noise(self, y: torch.Tensor, seed: int) -> NoiseSource:
        """The frame's standard normal draws, [M, 3, H', W'] each, from ``seed``."""
        generator = torch.Generator(self.device).manual_seed(seed)
        return seeded_noise(generator, (self.config.samples, 3, *y.shape[-2:]))

    def _graph_inputs(self, sigma: float, draw: NoiseSource) -> tuple[torch.Tensor, torch.Tensor]:
        """``sigma`` as a 0-d float32 device tensor and every step's draws stacked
        ([steps + 1, M, 3, H', W']): what a frame gives its CUDA graph."""
        noise = torch.stack([draw(i) for i in range(self.config.steps + 1)])
        return torch.tensor(sigma, dtype=torch.float32).to(self.device), noise

    def _replay(self, y: torch.Tensor, valid: torch.Tensor, sigma: torch.Tensor,
                noise: torch.Tensor) -> FramePosterior:
        """``_posterior`` from this size's CUDA graph, captured on the first call; ``sigma``
        a 0-d device tensor and ``noise`` every step's draws stacked, so that nothing of a
        frame is baked into the graph. The output is the graph's buffers: read them before
        the next frame."""
        if self._graph is None:
            self._graph = CapturedCall(
                lambda y_, valid_, sigma_, noise_: self._posterior(
                    y_, valid_, sigma_, noise_.__getitem__),
                y, valid, sigma, noise)
        return self._graph(y, valid, sigma, noise)

    def _sample(
        self, y: torch.Tensor, sigma: float, seed: int, known_inv: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        height, width = y.shape[-2:]
        y, valid, pad = self._padded(y)
        draw = self._noise(y, seed)
        if known_inv is not None:
            known_inv = torch.nn.functional.pad(known_inv, pad, mode="replicate")
            result, spread = self._posterior(y, valid, sigma, draw, known_inv)
        elif self.graphed:
            result, spread = self._replay(y, valid, *self._graph_inputs(sigma, draw))
        else:
            result, spread = self._posterior(y, valid, sigma, draw)
        depths = (1.0 / result.inv_depth[:, 0, :height, :width]).float().cpu().numpy()
        aif = result.aif[:, :, :height, :width].mean(dim=0).permute(1, 2, 0).float().cpu().numpy()
        variance = depths.var(axis=0)  # between samples (0 for one)
        if spread is not None:
            variance = variance + spread[:, 0, :height, :width].square().mean(dim=0).cpu().numpy()
        return np.median(depths, axis=0), aif, np.sqrt(variance), result.residuals.tolist()
