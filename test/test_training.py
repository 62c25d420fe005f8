# SPDX-License-Identifier: Apache-2.0
"""The training scripts' shared scaffolding: stop on a signal, one optimiser + EMA step, the
common flags."""

from __future__ import annotations

import importlib
import os
import signal

import pytest
import torch

from codedap_depth.tools.training import StopFlag, optimiser_step, start_run


def test_stop_flag_catches_sigterm_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert stop.signal is None
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test run without the flag
        assert stop.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_optimiser_step_moves_model_and_ema(tmp_path) -> None:
    dev, cuda, out = start_run("cpu", 0, str(tmp_path / "run"))
    assert (dev.type, cuda, out.is_dir()) == ("cpu", False, True)
    model = torch.nn.Linear(3, 1)
    ema = torch.nn.Linear(3, 1).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    start = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.ones(4, 3)).pow(2).mean() + 1.0
    optimiser_step(opt, model, loss, list(ema.parameters()), list(model.parameters()),
                   ema=0.99, step=0)
    moved = model.weight.detach() - start
    assert moved.abs().min() > 0
    # decay at step 0 is 1/10, so the EMA moves 90 % of the way to the new weights
    assert torch.allclose(ema.weight - start, 0.9 * moved, atol=1e-6)


@pytest.mark.parametrize("script", ["prior_train", "regressor_train"])
def test_both_scripts_take_the_shared_flags(script: str) -> None:
    module = importlib.import_module(f"codedap_depth.tools.{script}")
    config = module._parse_args(["--data", "p.npz", "--out", "o", "--lr", "0.5",
                                 "--max-steps", "3", "--seed", "7", "--device", "cpu"])
    defaults = module.TrainConfig(data="", out="")
    assert (config.data, config.out, config.lr, config.max_steps, config.seed) == (
        "p.npz", "o", 0.5, 3, 7)
    assert (config.minutes, config.ema, config.warmup) == (
        defaults.minutes, defaults.ema, defaults.warmup)
    with pytest.raises(SystemExit):
        module._parse_args(["--out", "o"])  # --data is required
