# SPDX-License-Identifier: Apache-2.0
"""One coded photo in, depth + all-in-focus image + uncertainty out (numpy in and out).

``Reconstructor`` holds what is prepared once per bank and frame size (prior, PSF spectra) and
runs the chosen method on each frame: ``dfd-dps`` (default), ``dps`` or ``classical``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from codedap_depth.forward import LayeredBlur, check_coded_image, estimate_noise_sigma
from codedap_depth.optics import PSFBank, validate_bank
from codedap_depth.sampler import SamplerConfig, dfd_dps, dps, inv_to_v

METHODS = ("dfd-dps", "dps", "classical")
#: Sampler steps used when none are given (chosen from the quality-vs-steps curve).
DEFAULT_STEPS = 20
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
        init: sampler warm start, ``classical`` (the baseline's depth) or ``mid`` (mid-range).
        sampler: sampler tuning.
    """

    method: str = "dfd-dps"
    steps: int = DEFAULT_STEPS
    samples: int = 1
    device: str = "cpu"
    seed: int = 0
    noise_sigma: float | None = None
    init: str = "classical"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in 1..1000, got {self.steps}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.init not in ("classical", "mid"):
            raise ValueError(f"init must be 'classical' or 'mid', got {self.init!r}")
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
        if config.method != "classical" and prior is None:
            from codedap_depth.prior import load_prior

            prior = load_prior(self.device)
        self.prior = prior
        self._models: dict[tuple[int, int], LayeredBlur] = {}

    def __call__(self, coded: np.ndarray, seed: int | None = None) -> Reconstruction:
        """Reconstruct one coded frame: [H, W] or [H, W, C] float in [0, 1].

        ``seed`` overrides ``config.seed`` for this call.
        """
        image = self.validate(coded)
        start = time.perf_counter()
        y = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        sigma = self.config.noise_sigma or max(estimate_noise_sigma(y), _MIN_NOISE_SIGMA)
        classical = None
        if self.config.method == "classical" or self.config.init == "classical":
            from codedap_depth.baselines import classical_reconstruct

            classical = classical_reconstruct(image, self.bank, sigma, device=self.config.device)
        if self.config.method == "classical":
            depth, aif = classical.depth, classical.aif
            uncertainty, residuals = np.zeros_like(depth), []
        else:
            init = None if classical is None else classical.depth
            seed = self.config.seed if seed is None else seed
            depth, aif, uncertainty, residuals = self._sample(y, sigma, init, seed)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
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

    def _model(self, height: int, width: int) -> LayeredBlur:
        key = (height, width)
        if key not in self._models:
            self._models = {key: LayeredBlur(
                self.bank, height, width, occlusion=self.config.sampler.occlusion
            ).to(self.device)}
        return self._models[key]

    def _sample(
        self, y: torch.Tensor, sigma: float, init_depth: np.ndarray | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        height, width = y.shape[-2:]
        multiple = self.prior.size_multiple
        pad_h, pad_w = -height % multiple, -width % multiple
        pad = (0, pad_w, 0, pad_h)
        y = torch.nn.functional.pad(y.to(self.device), pad, mode="replicate")
        valid = torch.nn.functional.pad(torch.ones_like(y[:, :1, :height, :width]), pad)
        model = self._model(*y.shape[-2:])
        if init_depth is None:
            init_v = torch.full_like(valid, 0.5)
        else:
            inv = torch.from_numpy(1.0 / init_depth)[None, None].to(self.device)
            init_v = inv_to_v(model, torch.nn.functional.pad(inv, pad, mode="replicate"))
        generator = torch.Generator(self.device).manual_seed(seed)
        sampler = dfd_dps if self.config.method == "dfd-dps" else dps
        result = sampler(
            y, model, self.prior, self.config.sampler, steps=self.config.steps,
            samples=self.config.samples, init_v=init_v, noise_sigma=sigma, generator=generator,
            valid=valid,
        )
        depths = (1.0 / result.inv_depth[:, 0, :height, :width]).float().cpu().numpy()
        aif = result.aif[:, :, :height, :width].mean(dim=0).permute(1, 2, 0).float().cpu().numpy()
        uncertainty = depths.std(axis=0) if depths.shape[0] > 1 else np.zeros(depths.shape[1:])
        return np.median(depths, axis=0), aif, uncertainty, result.residuals
