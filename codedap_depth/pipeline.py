# SPDX-License-Identifier: Apache-2.0
"""One coded photo in, depth + all-in-focus image + uncertainty out (numpy in and out).

``Reconstructor`` holds what is prepared once per bank and frame size (prior, PSF spectra, the
classical solver, the CUDA graph) and runs the chosen method on each frame: ``dfd-dps``
(default), ``dps`` or ``classical``. A frame's device work (warm start, then the sampler) is one
function, ``Reconstructor.posterior``; on CUDA, dfd-dps replays it from a CUDA graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from codedap_depth.baselines import ClassicalSolver, classical_reconstruct
from codedap_depth.forward import LayeredBlur, check_coded_image, estimate_noise_sigma
from codedap_depth.graphed import CapturedCall
from codedap_depth.optics import PSFBank, validate_bank
from codedap_depth.sampler import (
    NoiseSource,
    SamplerConfig,
    SamplerResult,
    dfd_dps,
    dps,
    inv_to_v,
    seeded_noise,
)

METHODS = ("dfd-dps", "dps", "classical")
INITS = ("classical", "evidence", "mid")
#: Sampler steps used when none are given: chosen from the quality-vs-steps curve (README,
#: benchmarks/NOTES.md): at 4-6 steps depth AbsRel is 0.6-1.0x the 1000-step sampler's, and
#: 5 steps meet the real-time targets (256x256 at >= 15 Hz, 512x512 at >= 5 Hz) with margin.
DEFAULT_STEPS = 5
_MIN_NOISE_SIGMA = 0.002


@dataclass(frozen=True)
class ReconstructionConfig:
    """What to run.

    Attributes:
        method: ``dfd-dps`` | ``dps`` | ``classical``.
        steps: DDIM steps of the samplers (1 ... 1000).
        samples: posterior samples M (depth = median, uncertainty = std over them).
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
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in 1..1000, got {self.steps}")
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
        uncertainty: [H, W] float32 metres, std over posterior samples (0 with one sample).
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


class Reconstructor:
    """Reconstructs frames for one PSF bank.

    Args:
        bank: the camera's PSF bank.
        config: what to run.
        prior: diffusion prior (default: the shipped one, loaded on ``config.device``).
    """

    def __init__(self, bank: PSFBank, config: ReconstructionConfig, prior=None) -> None:
        validate_bank(bank, "PSF bank")
        self.bank, self.config = bank, config
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {config.device!r} requested but CUDA is not available")
        if self.graphed and config.sampler.tv_iterations:
            raise ValueError("cuda_graph needs sampler.tv_iterations = 0 (the depth smoothing "
                             "runs Adam, whose step count lives on the host)")
        if config.method != "classical" and prior is None:
            from codedap_depth.prior import load_prior

            prior = load_prior(self.device)
        self.prior = prior
        self._size: tuple[int, int, int] | None = None  # (H, W, C) of what is prepared

    @property
    def graphed(self) -> bool:
        """True when frames replay a CUDA graph."""
        return (self.config.cuda_graph and self.device.type == "cuda"
                and self.config.method == "dfd-dps")

    def __call__(self, coded: np.ndarray, seed: int | None = None) -> Reconstruction:
        """Reconstruct one coded frame: [H, W] or [H, W, C] float in [0, 1].

        ``seed`` overrides ``config.seed`` for this call.
        """
        image = self.validate(coded)
        start = time.perf_counter()
        y = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        y = y.to(self.device)  # the noise estimate runs there too (tens of ms on a host CPU)
        sigma = self.config.noise_sigma or max(estimate_noise_sigma(y), _MIN_NOISE_SIGMA)
        if self.config.method == "classical":
            classical = classical_reconstruct(image, self.bank, sigma, device=self.config.device)
            depth, aif = classical.depth, classical.aif
            uncertainty, residuals = np.zeros_like(depth), []
        else:
            seed = self.config.seed if seed is None else seed
            depth, aif, uncertainty, residuals = self._sample(y, sigma, seed)
        return Reconstruction(
            depth=depth.astype(np.float32),
            aif=np.clip(aif, 0, 1).astype(np.float32),
            uncertainty=uncertainty.astype(np.float32),
            seconds=time.perf_counter() - start,
            noise_sigma=float(sigma),
            residuals=residuals,
        )

    def validate(self, coded: np.ndarray) -> np.ndarray:
        """Check a frame and return it as float32 [H, W, C]; ValueError says what is wrong."""
        if not isinstance(coded, np.ndarray) or coded.dtype.kind != "f":
            raise ValueError("coded image must be a float numpy array of [0, 1] intensities")
        return check_coded_image(coded[..., None] if coded.ndim == 2 else coded, self.bank)

    def posterior(
        self, y: torch.Tensor, valid: torch.Tensor, sigma: torch.Tensor | float,
        noise: NoiseSource,
    ) -> SamplerResult:
        """All device work of one frame: warm start, then the sampler. ``y`` [1, C, H, W] and
        ``valid`` [1, 1, H, W] are padded to the prior's size multiple (``prepare`` first)."""
        init_v = None  # "evidence": the sampler starts from the measurement's own evidence
        if self.config.init == "classical":
            inv_depth = self.classical_solver(y[0], sigma)[0]
            init_v = inv_to_v(self.model, inv_depth.float()[None, None])
        elif self.config.init == "mid":
            init_v = torch.full_like(valid, 0.5)
        sampler = dfd_dps if self.config.method == "dfd-dps" else dps
        return sampler(y, self.model, self.prior, self.config.sampler, steps=self.config.steps,
                       samples=self.config.samples, init_v=init_v, noise_sigma=sigma,
                       noise=noise, valid=valid)

    def prepare(self, height: int, width: int, channels: int) -> None:
        """Build ``model`` (forward model) and ``classical_solver`` (warm start) for padded
        frames of this size; kept until the size changes. The CUDA graph is captured on the
        next frame."""
        if self._size == (height, width, channels):
            return
        self.model = LayeredBlur(self.bank, height, width,
                                  occlusion=self.config.sampler.occlusion).to(self.device)
        self.classical_solver = ClassicalSolver(self.bank, height, width, device=self.device)
        self._graph: CapturedCall[SamplerResult] | None = None
        self._size = (height, width, channels)

    def _sample(
        self, y: torch.Tensor, sigma: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        height, width = y.shape[-2:]
        multiple = self.prior.size_multiple
        pad = (0, -width % multiple, 0, -height % multiple)
        y = torch.nn.functional.pad(y, pad, mode="replicate")
        valid = torch.nn.functional.pad(torch.ones_like(y[:, :1, :height, :width]), pad)
        self.prepare(*y.shape[-2:], y.shape[1])
        generator = torch.Generator(self.device).manual_seed(seed)
        draw = seeded_noise(generator, (self.config.samples, 3, *y.shape[-2:]))
        if self.graphed:
            noise = torch.stack([draw(i) for i in range(self.config.steps + 1)])
            sigma_t = torch.tensor(sigma, dtype=torch.float32).to(self.device)
            if self._graph is None:
                self._graph = CapturedCall(
                    lambda y_, valid_, sigma_, noise_: self.posterior(
                        y_, valid_, sigma_, noise_.__getitem__),
                    y, valid, sigma_t, noise)
            result = self._graph(y, valid, sigma_t, noise)
        else:
            result = self.posterior(y, valid, sigma, draw)
        depths = (1.0 / result.inv_depth[:, 0, :height, :width]).float().cpu().numpy()
        aif = result.aif[:, :, :height, :width].mean(dim=0).permute(1, 2, 0).float().cpu().numpy()
        uncertainty = depths.std(axis=0) if depths.shape[0] > 1 else np.zeros(depths.shape[1:])
        return np.median(depths, axis=0), aif, uncertainty, result.residuals.tolist()
