# SPDX-License-Identifier: Apache-2.0
"""Every docstring example in the package runs and holds (doctest over every module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import codedap_depth

MODULES = sorted(m.name for m in pkgutil.walk_packages(codedap_depth.__path__, "codedap_depth."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    if name.startswith("codedap_depth.ros"):
        pytest.importorskip("rclpy")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    """The modules known to carry examples are collected (a rename would skip them)."""
    for name in ("baselines", "forward", "image_codec", "prior.model", "sampler"):
        module = importlib.import_module(f"codedap_depth.{name}")
        assert doctest.DocTestFinder().find(module), name
        assert f"codedap_depth.{name}" in MODULES
