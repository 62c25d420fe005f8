# SPDX-License-Identifier: Apache-2.0
"""U-Net regressor baseline (``--method unet``): coded image -> depth, its std, AIF.

Modules, one job each: ``model`` (the network and the inverse-depth normalisation),
``loading`` (weights files, checked) and ``inference`` (a frame in, metres out). Shipped weights:
``codedap_depth/regressor/weights/``. Training and its simulated pairs are dev tools:
``codedap_depth.tools.regressor_train`` and ``codedap_depth.tools.regressor_data``.
"""

from codedap_depth.regressor.inference import DepthRegressor, Regression, load_regressor
from codedap_depth.regressor.model import DepthUNet, UNetConfig

__all__ = ["DepthRegressor", "DepthUNet", "Regression", "UNetConfig", "load_regressor"]
