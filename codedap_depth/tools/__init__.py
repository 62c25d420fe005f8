# SPDX-License-Identifier: Apache-2.0
"""Developer tools: nothing here is needed to reconstruct a frame or to run the node.

* ``bench``: speed and quality of the presets on one device (``codedap-depth bench``).
* ``prior_dataset``: the prior's offline photo archive and its manifest
  (``python -m codedap_depth.tools.prior_dataset --out .prior_data [--check]``).
* ``prior_train``: training the diffusion prior (``python -m codedap_depth.tools.prior_train``).
* ``regressor_data``: simulated (coded image, depth, AIF) pairs for the U-Net regressor.
* ``regressor_train``: training the regressor (``python -m codedap_depth.tools.regressor_train``).
* ``training``: what both training scripts share (run set-up, stop flag, optimiser + EMA step).

The core modules never import this package (a test checks it).
"""
