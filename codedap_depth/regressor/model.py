# SPDX-License-Identifier: Apache-2.0
"""The regressor network: a plain, fully convolutional torch U-Net from one coded image to
normalised inverse depth, its log-variance and an all-in-focus image.

Inputs are [B, 3, H, W] coded images of [0, 1] intensities (H, W multiples of
``UNetConfig.size_multiple``). Outputs (``DepthUNet.forward``), all [B, *, H, W] float32:

* ``v``: normalised inverse depth, ``v = (1/d - 1/far) / (1/near - 1/far)``: 0 at ``far``,
  1 at ``near`` metres (the training camera's range); not clamped here.
* ``log_var``: the log-variance of ``v`` (a Gaussian per pixel), clamped to
  ``[LOG_VAR_MIN, LOG_VAR_MAX]``.
* ``aif``: all-in-focus image, [0, 1] intensities (the input plus a predicted correction; not
  clamped).

:func:`inverse_depth_from_v` and :func:`depth_std_from_v` are the only conversions from ``v``
to metres in the project.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

#: Bounds of the predicted log-variance of ``v`` (std 0.0025 ... 2.7 in units of the range).
LOG_VAR_MIN, LOG_VAR_MAX = -12.0, 2.0


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and output normalisation of the regressor.

    Attributes:
        channels: feature channels per resolution level; ``len(channels) - 1`` downsamplings.
        blocks: residual blocks per level, on the way down and on the way up.
        groups: GroupNorm groups (every entry of ``channels`` is divisible by it).
        near, far: metres; the inverse-depth range that ``v`` in [0, 1] spans (the training
            camera's bank).
    """

    channels: tuple[int, ...] = (32, 64, 96, 128, 160)
    blocks: int = 2
    groups: int = 8
    near: float = 0.5
    far: float = 5.0

    def __post_init__(self) -> None:
        if len(self.channels) < 2 or any(c % self.groups for c in self.channels):
            raise ValueError(f"channels {self.channels} must be >= 2 levels, each divisible by "
                             f"groups = {self.groups}")
        if self.blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {self.blocks}")
        if not 0 < self.near < self.far:
            raise ValueError(f"need 0 < near < far metres, got {self.near}, {self.far}")

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (pixels)."""
        return 2 ** (len(self.channels) - 1)

    def to_json(self) -> dict[str, Any]:
        """The config as JSON-ready values (``config.json``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_json`; ``TypeError``/``ValueError`` on unknown or bad fields."""
        values = {k: v for k, v in data.items() if not k.startswith("_")}
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)


class UNetOutput(NamedTuple):
    """What the network predicts (module docstring): ``v`` [B, 1, H, W], ``log_var``
    [B, 1, H, W], ``aif`` [B, 3, H, W]."""

    v: torch.Tensor
    log_var: torch.Tensor
    aif: torch.Tensor


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, twice, plus a (1x1 when the width changes) skip."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(groups, cin), cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(groups, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class DepthUNet(nn.Module):
    """U-Net: stem conv, ``blocks`` residual blocks per level, stride-2 conv down,
    nearest-neighbour up + conv, skip connections by concatenation, 1x1 head (5 channels).

    Args:
        config: architecture and range.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        ch, g = config.channels, config.groups
        self.stem = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i, c in enumerate(ch):
            cin = ch[i - 1] if i else ch[0]
            self.down.append(nn.Sequential(*[ResBlock(cin if j == 0 else c, c, g)
                                             for j in range(config.blocks)]))
            if i < len(ch) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for i in reversed(range(len(ch) - 1)):
            self.unpool.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(ch[i + 1], ch[i], 3, padding=1)))
            self.up.append(nn.Sequential(*[ResBlock(2 * ch[i] if j == 0 else ch[i], ch[i], g)
                                           for j in range(config.blocks)]))
        self.head = nn.Sequential(nn.GroupNorm(g, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], 5, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, coded: torch.Tensor) -> UNetOutput:
        """[B, 3, H, W] coded images in [0, 1] (H, W multiples of ``size_multiple``)."""
        m = self.config.size_multiple
        if coded.ndim != 4 or coded.shape[1] != 3 or coded.shape[-2] % m or coded.shape[-1] % m:
            raise ValueError(f"input must be [B, 3, H, W] with H, W multiples of {m}, got "
                             f"{tuple(coded.shape)}")
        x = self.stem(coded * 2.0 - 1.0)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.pool):
                skips.append(x)
                x = self.pool[i](x)
        for unpool, block in zip(self.unpool, self.up, strict=True):
            x = block(torch.cat([unpool(x), skips.pop()], dim=1))
        out = self.head(x).float()
        v = out[:, :1] + 0.5
        log_var = out[:, 1:2].clamp(LOG_VAR_MIN, LOG_VAR_MAX)
        aif = coded.float() + out[:, 2:5]
        return UNetOutput(v, log_var, aif)


def inverse_depth_from_v(v: torch.Tensor, config: UNetConfig) -> torch.Tensor:
    """Normalised inverse depth (0 = far, 1 = near) -> inverse depth in 1/m."""
    return 1.0 / config.far + v * (1.0 / config.near - 1.0 / config.far)


def depth_std_from_v(v: torch.Tensor, log_var: torch.Tensor, config: UNetConfig
                     ) -> torch.Tensor:
    """Depth std in metres from the std of ``v`` (first order: ``sigma_d = sigma_u / u^2``)."""
    u = inverse_depth_from_v(v, config)
    sigma_u = torch.exp(0.5 * log_var) * (1.0 / config.near - 1.0 / config.far)
    return sigma_u / u.square()
