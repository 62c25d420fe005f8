# SPDX-License-Identifier: Apache-2.0
"""Locate the package's data files (config/, launch/) in a checkout, pip or colcon install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "codedap_depth"


def share_file(relative: str) -> Path:
    """Path of ``relative`` (e.g. ``config/camera.yaml``) in the source tree or install share/.

    Looks in the source checkout first, then ``<prefix>/share/codedap_depth`` for the Python
    prefix and every prefix in ``AMENT_PREFIX_PATH``.
    """
    candidates = [Path(__file__).resolve().parents[1] / relative]
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    candidates += [Path(p) / "share" / PACKAGE / relative for p in prefixes if p]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative} not found in {[str(c) for c in candidates]}")
