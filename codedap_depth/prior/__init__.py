# SPDX-License-Identifier: Apache-2.0
"""Diffusion prior: the shipped weights, loaded with their noise schedule. The photo dataset and
the training are dev tools (``codedap_depth.tools.prior_dataset``, ``tools.prior_train``)."""

from codedap_depth.prior.model import (
    Prior,
    from_prior_range,
    load_prior,
    random_prior,
    to_prior_range,
)

__all__ = ["Prior", "from_prior_range", "load_prior", "random_prior", "to_prior_range"]
