# SPDX-License-Identifier: Apache-2.0
"""What the two training scripts (``tools.prior_train``, ``tools.regressor_train``) share: the
run's set-up, a stop flag raised by SIGTERM/SIGINT, and one optimiser step with the EMA update."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import torch


def start_run(device: str, seed: int, out: str) -> tuple[torch.device, bool, Path]:
    """Seed torch, switch on TF32 and cuDNN autotuning on CUDA, create ``out``.

    Returns:
        the device, whether it is CUDA, and the output folder.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    torch.manual_seed(seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return dev, cuda, folder


class StopFlag:
    """Inside its ``with`` block SIGTERM and SIGINT only set ``signal`` (the signal number),
    so a training loop stops at a step boundary and still saves; the previous handlers come
    back on exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _raise(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum

    def __enter__(self) -> StopFlag:
        self._previous = {s: signal.signal(s, self._raise)
                          for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def optimiser_step(opt: torch.optim.Optimizer, model: torch.nn.Module, loss: torch.Tensor,
                   ema_params: list[torch.Tensor], params: list[torch.Tensor], ema: float,
                   step: int) -> None:
    """Backward, gradient norm clipped to 1, the optimiser's step, then the EMA weights move
    towards the model's with decay ``min(ema, (1 + step) / (10 + step))``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    decay = min(ema, (1 + step) / (10 + step))
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
