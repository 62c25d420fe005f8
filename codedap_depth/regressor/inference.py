# SPDX-License-Identifier: Apache-2.0
"""One coded frame through the trained U-Net: depth and its std in metres, and the AIF.

The network was trained for one camera (``config.json``'s ``_trained_for``; the shipped one:
``config/camera.yaml``, noise 0.01) and never sees a PSF bank: it maps the image alone to
inverse depth over that camera's range (``UNetConfig.near`` .. ``far`` metres), so a frame
from another camera gets depths as the training camera would have produced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from codedap_depth.regressor.loading import load_network
from codedap_depth.regressor.model import DepthUNet, depth_std_from_v, inverse_depth_from_v


class Regression(NamedTuple):
    """The regressor's answer for one frame (numpy, float32).

    Attributes:
        depth: [H, W] metres, within the training range (``near`` .. ``far``).
        uncertainty: [H, W] metres: the predicted std of the normalised inverse depth, mapped
            to depth to first order (``sigma_d = sigma_u / u^2``).
        aif: [H, W, C] all-in-focus image in [0, 1], C as the input (mono: the mean of the
            network's three channels).
    """

    depth: np.ndarray
    uncertainty: np.ndarray
    aif: np.ndarray


class DepthRegressor:
    """The trained U-Net, ready to run on frames of any size.

    Args:
        network: the trained network (``loading.load_network``), on its device.
    """

    def __init__(self, network: DepthUNet) -> None:
        self.network = network
        self.config = network.config

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return next(self.network.parameters()).device

    @torch.no_grad()
    def __call__(self, coded: torch.Tensor) -> Regression:
        """``coded`` [1, C, H, W] (C = 1 or 3), [0, 1] intensities, any H and W.

        The frame is padded by edge replication to the network's size multiple (16 px for the
        shipped one) and the outputs cropped back; mono frames are replicated to RGB.
        """
        if coded.ndim != 4 or coded.shape[0] != 1 or coded.shape[1] not in (1, 3):
            raise ValueError(f"coded must be [1, 1 or 3, H, W], got {tuple(coded.shape)}")
        channels, (height, width) = coded.shape[1], coded.shape[-2:]
        m = self.config.size_multiple
        y = coded.to(self.device, torch.float32).expand(-1, 3, -1, -1)
        y = F.pad(y, (0, -width % m, 0, -height % m), mode="replicate")
        out = self.network(y)
        v = out.v[..., :height, :width].clamp(0.0, 1.0)
        log_var = out.log_var[..., :height, :width]
        depth = 1.0 / inverse_depth_from_v(v, self.config)
        std = depth_std_from_v(v, log_var, self.config)
        aif = out.aif[0, :, :height, :width].clamp(0.0, 1.0)
        if channels == 1:
            aif = aif.mean(dim=0, keepdim=True)
        return Regression(depth[0, 0].cpu().numpy().astype(np.float32),
                          std[0, 0].cpu().numpy().astype(np.float32),
                          aif.permute(1, 2, 0).cpu().numpy().astype(np.float32))


def load_regressor(device: str | torch.device = "cpu", weights_dir: Path | None = None
                   ) -> DepthRegressor:
    """The shipped (or ``weights_dir``'s) regressor on ``device``, offline; errors name the
    file (``loading.load_network``)."""
    return DepthRegressor(load_network(device, weights_dir))
