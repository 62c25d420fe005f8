# SPDX-License-Identifier: Apache-2.0
"""The regressor's weights files: writing them after training and loading them, checked.

A weights folder holds ``unet.safetensors`` (the ``DepthUNet`` state dict, fp16) and
``config.json`` (the ``UNetConfig`` fields, plus ``_``-prefixed notes such as the camera and
noise level it was trained for). The shipped folder is ``codedap_depth/regressor/weights/``.
Only safetensors and JSON are read: no pickle anywhere. Every failure names the file and what
is wrong with it (missing, not JSON, unreadable or truncated, wrong names or shapes,
non-finite values).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from codedap_depth.prior.model import check_state_matches
from codedap_depth.regressor.model import DepthUNet, UNetConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "unet.safetensors"
CONFIG_FILE = "config.json"


def save_weights(out: Path, model: torch.nn.Module, config: UNetConfig,
                 notes: dict[str, Any] | None = None) -> None:
    """Write ``model``'s state dict as fp16 safetensors and ``config`` (+ ``notes`` under
    ``_trained_for``) as JSON into ``out``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "weights": "EMA fp16"})
    os.chmod(out / WEIGHTS_FILE, 0o644)
    body = {"_class_name": "DepthUNet", "_trained_for": notes or {}, **config.to_json()}
    (out / CONFIG_FILE).write_text(json.dumps(body, indent=1) + "\n")


def read_config(path: Path) -> UNetConfig:
    """``config.json`` -> ``UNetConfig``; FileNotFoundError / ValueError name ``path``."""
    if not path.is_file():
        raise FileNotFoundError(f"regressor config missing: {path}")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return UNetConfig.from_json(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"regressor config {path} is not a valid UNetConfig: {err}") from err


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (CPU); FileNotFoundError / ValueError name ``path``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"regressor weights missing: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"regressor weights {path} are unreadable (truncated or not "
                         f"safetensors, {path.stat().st_size} bytes): {err}") from err


def load_network(device: str | torch.device = "cpu", weights_dir: Path | None = None
                 ) -> DepthUNet:
    """The trained ``DepthUNet`` (float32, eval mode, no grad) on ``device``.

    Args:
        device: torch device.
        weights_dir: folder with ``unet.safetensors`` and ``config.json`` (default: the
            shipped ``codedap_depth/regressor/weights``).
    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: a file is unreadable, or config and weights disagree (names, shapes), or a
            weight is not finite; the message names the file.
    """
    wdir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    weights = wdir / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"regressor weights missing: {weights}")
    config = read_config(wdir / CONFIG_FILE)
    state = read_state(weights)
    net = DepthUNet(config)
    check_state_matches(net.state_dict(), state, str(weights))
    bad = sorted(k for k, v in state.items() if not torch.isfinite(v).all())
    if bad:
        raise ValueError(f"regressor weights {weights}: {len(bad)} tensors hold NaN or Inf, "
                         f"e.g. {bad[:3]}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(torch.device(device)).eval().requires_grad_(False)
