# SPDX-License-Identifier: Apache-2.0
"""What the two training scripts (``tools.prior_train``, ``tools.regressor_train``) share: the
run's settings and their flags, its set-up, a stop flag raised by SIGTERM/SIGINT, and one
optimiser step with the EMA update."""

from __future__ import annotations

import argparse
import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import torch


@dataclass(frozen=True)
class RunConfig:
    """The settings both training scripts take (``add_run_arguments``' flags); each script's
    config adds its own fields and may give these other defaults."""

    data: str
    out: str
    minutes: float = 12.0  # wall-clock budget
    max_steps: int = 0  # 0: no step limit
    lr: float = 3e-4  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup: int = 200  # linear learning-rate warm-up, steps
    ema: float = 0.999  # EMA decay of the weights
    device: str = "cuda"
    seed: int = 0
    log_every: int = 25  # steps per loss record


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


def add_run_arguments(parser: argparse.ArgumentParser, defaults: RunConfig) -> None:
    """The flags of ``RunConfig``'s fields (data, output, budget, optimiser, EMA, device, seed,
    logging), with ``defaults``' values (a script's config)."""
    d = defaults
    parser.add_argument("--data", required=True,
                        help="photos.npz from codedap_depth.tools.prior_dataset")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--minutes", type=float, default=d.minutes, help="wall-clock budget")
    parser.add_argument("--max-steps", type=int, default=d.max_steps, help="0: no step limit")
    parser.add_argument("--lr", type=float, default=d.lr, help="AdamW peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup", type=int, default=d.warmup, help="linear LR warm-up steps")
    parser.add_argument("--ema", type=float, default=d.ema, help="EMA decay of the weights")
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--log-every", type=int, default=d.log_every,
                        help="steps per loss record")
