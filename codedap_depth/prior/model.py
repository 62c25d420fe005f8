# SPDX-License-Identifier: Apache-2.0
"""The diffusion prior: a pixel-space ``UNet2DModel`` epsilon predictor and its noise schedule.

Images are RGB in the prior's range [-1, 1]. :func:`to_prior_range` and
:func:`from_prior_range` are the only place in the project that converts between [0, 1]
intensities and that range.

Weights ship in ``codedap_depth/weights/``: ``unet.safetensors`` (fp16 EMA weights),
``config.json`` (the ``UNet2DModel`` config) and ``scheduler.json`` (the ``DDPMScheduler``
config). They load offline; nothing here ever contacts a model hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import UNet2DModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the hub, even by accident

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
UNET_FILE = "unet.safetensors"
CONFIG_FILE = "config.json"
SCHEDULER_FILE = "scheduler.json"

#: The training noise schedule: 1000-step linear-beta DDPM (Ho et al. 2020), epsilon prediction.
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "variance_type": "fixed_small",
}


def unet_config(channels: tuple[int, ...] = (64, 96, 128, 128), layers_per_block: int = 2,
                norm_groups: int = 32) -> dict[str, Any]:
    """``UNet2DModel`` config of the prior: fully convolutional (no attention anywhere).

    The default is the shipped model (about 7.5M parameters). Input height and width must be
    multiples of ``2 ** (len(channels) - 1)`` (8 for the default).

    Args:
        channels: feature channels per resolution level (each divisible by ``norm_groups``).
        layers_per_block: ResNet blocks per level on the way down.
        norm_groups: GroupNorm groups.
    """
    n = len(channels)
    return {
        "sample_size": 64,  # nominal training crop; the model runs at any multiple of 8
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": list(channels),
        "layers_per_block": layers_per_block,
        "down_block_types": ["DownBlock2D"] * n,
        "up_block_types": ["UpBlock2D"] * n,
        "add_attention": False,
        "norm_num_groups": norm_groups,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "center_input_sample": False,
        "downsample_padding": 1,
        "resnet_time_scale_shift": "default",
        "dropout": 0.0,
    }


def build_unet(config: dict[str, Any]) -> UNet2DModel:
    """Instantiate a ``UNet2DModel`` from a config dict (keys starting with ``_`` ignored)."""
    from diffusers import UNet2DModel

    return UNet2DModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def alphas_cumprod(scheduler_config: dict[str, Any] | None = None) -> torch.Tensor:
    """Cumulative products of alphas, float32 ``[T]``, of a (linear-beta) DDPM config."""
    cfg = {**SCHEDULER_CONFIG, **(scheduler_config or {})}
    if cfg["beta_schedule"] != "linear" or cfg["prediction_type"] != "epsilon":
        raise ValueError(f"only linear-beta epsilon schedules are supported, got {cfg}")
    betas = torch.linspace(cfg["beta_start"], cfg["beta_end"], cfg["num_train_timesteps"],
                           dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


def size_multiple_of(config: dict[str, Any]) -> int:
    """Multiple that input H and W must be, for a UNet config: 2 ** (number of downsamples)."""
    return 2 ** (len(config["block_out_channels"]) - 1)


@dataclass(frozen=True)
class Prior:
    """A loaded diffusion prior.

    Attributes:
        unet: ``UNet2DModel`` in eval mode, on the device.
        alphas_cumprod: float32 ``[1000]`` cumulative alpha products, on the CPU (schedule
            constants: samplers read them as Python floats, never from the device).
        size_multiple: H and W fed to :meth:`eps` must be multiples of this (pixels).
    """

    unet: UNet2DModel
    alphas_cumprod: torch.Tensor
    size_multiple: int

    @property
    def device(self) -> torch.device:
        """The device the network runs on."""
        return next(self.unet.parameters()).device

    @cached_property
    def device_alphas_cumprod(self) -> torch.Tensor:
        """``alphas_cumprod`` on the network's device, copied once (a copy from the host is
        not allowed inside a CUDA-graph capture; the first eager call caches it)."""
        return self.alphas_cumprod.to(self.device)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise.

        Args:
            x_t: noisy images ``[B, 3, H, W]`` in the prior range, any float dtype.
            t: timesteps ``[B]`` (long, 0..999).
        Returns:
            float32 ``[B, 3, H, W]``.

        Differentiable with respect to ``x_t`` (the weights never require grad); wrap the call
        in ``torch.no_grad()`` when no gradient is needed. Runs in the network's dtype: float16
        on CUDA (the shipped weights' own precision; 1.55x faster than bf16 autocast with
        channels_last at 256x256 on an H100, and 8x closer to float32: benchmarks/NOTES.md),
        float32 on the CPU.
        """
        if x_t.ndim != 4 or x_t.shape[1] != 3:
            raise ValueError(f"x_t must be [B, 3, H, W], got {tuple(x_t.shape)}")
        h, w = x_t.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"H, W = {h}, {w} must be multiples of {self.size_multiple}")
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"t must be [B] = [{x_t.shape[0]}], got {tuple(t.shape)}")
        dev = self.device
        x = x_t.to(dev, self.unet.dtype)
        return self.unet(x, t.to(dev, torch.long)).sample.float()


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"prior file missing: {path}")
    return json.loads(path.read_text())


def load_prior(device: str | torch.device = "cpu", weights_dir: Path | None = None) -> Prior:
    """Load the shipped prior offline.

    Args:
        device: torch device to put it on.
        weights_dir: folder with ``unet.safetensors``, ``config.json``, ``scheduler.json``
            (default: ``codedap_depth/weights``).
    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: config and weights disagree (missing/unexpected names or shapes).
    """
    from safetensors.torch import load_file

    wdir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    weights = wdir / UNET_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"prior weights missing: {weights}")
    config = _load_json(wdir / CONFIG_FILE)
    sched = _load_json(wdir / SCHEDULER_FILE)
    unet = build_unet(config)
    state = load_file(str(weights))
    check_state_matches(unet.state_dict(), state, str(weights))
    unet.load_state_dict({k: v.float() for k, v in state.items()})
    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    # nn.Module.to, not diffusers' override: it warns on every dtype cast, and this model has no
    # module that must stay float32 (no attention, GroupNorm runs in the input's dtype)
    unet = torch.nn.Module.to(unet, dev, dtype).eval().requires_grad_(False)
    return Prior(unet, alphas_cumprod(sched), size_multiple_of(config))


def check_state_matches(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor],
                        what: str) -> None:
    """Raise ``ValueError`` unless two state dicts have the same names and shapes."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if expected[k].shape != got[k].shape)
    if missing or extra or shapes:
        raise ValueError(
            f"{what} does not match config.json: {len(missing)} missing {missing[:3]}, "
            f"{len(extra)} unexpected {extra[:3]}, {len(shapes)} with other shapes "
            + ", ".join(f"{k} {tuple(got[k].shape)} != {tuple(expected[k].shape)}"
                        for k in shapes[:3]))


def random_prior(device: str | torch.device = "cpu", seed: int = 0) -> Prior:
    """A tiny randomly initialised prior with the same interface (tests, development).

    The global torch RNG is left untouched.
    """
    config = unet_config(channels=(32, 32), layers_per_block=1, norm_groups=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet(config)
    dev = torch.device(device)
    unet = unet.to(dev).eval().requires_grad_(False)
    return Prior(unet, alphas_cumprod(), size_multiple_of(config))


def to_prior_range(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] intensities ``[B, C, H, W]`` (C = 1 or 3) -> prior range [-1, 1], 3 channels.

    Greyscale is replicated to 3 channels. No clamping.

    >>> to_prior_range(torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3))[0, :, 0]
    tensor([[-1.,  0.,  1.],
            [-1.,  0.,  1.],
            [-1.,  0.,  1.]])
    """
    if x01.ndim != 4 or x01.shape[1] not in (1, 3):
        raise ValueError(f"expected [B, 1 or 3, H, W], got {tuple(x01.shape)}")
    x = x01 * 2.0 - 1.0
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def from_prior_range(x: torch.Tensor) -> torch.Tensor:
    """Prior range [-1, 1] -> [0, 1] intensities (no clamping); shape unchanged."""
    return (x + 1.0) * 0.5
