# SPDX-License-Identifier: Apache-2.0
"""argparse value types the command lines share (sizes in pixels, comma lists)."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from err
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def int_list(text: str) -> list[int]:
    """``"10,20"`` -> [10, 20]."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from err


def float_list(text: str) -> list[float]:
    """``"0.005,0.01"`` -> [0.005, 0.01]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers: {text!r}") from err
