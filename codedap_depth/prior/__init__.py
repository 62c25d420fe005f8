# SPDX-License-Identifier: Apache-2.0
"""Diffusion prior: offline photo dataset, training, and loading the shipped weights."""

from codedap_depth.prior.model import (
    Prior,
    from_prior_range,
    load_prior,
    random_prior,
    to_prior_range,
)

__all__ = ["Prior", "from_prior_range", "load_prior", "random_prior", "to_prior_range"]
