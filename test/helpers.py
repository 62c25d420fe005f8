# SPDX-License-Identifier: Apache-2.0
"""Shared test helpers for the core tests (imported as a sibling module by pytest)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_CODED = REPO.parent / "shared" / "data" / "real_coded"


def real_coded_file(name: str) -> Path:
    """A file of the real coded capture in ``../shared``; skips when the checkout lacks it."""
    path = REAL_CODED / name
    if not path.is_file():
        pytest.skip(f"real capture data not found at {path} (needs ../shared beside the repo)")
    return path
