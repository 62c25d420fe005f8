# SPDX-License-Identifier: Apache-2.0
"""Train the U-Net regressor on simulated captures of the training camera (``--method unet``).

Pairs are made on the device every step (``tools.regressor_data``): crops of the prior's training
photos on synthetic depth maps, rendered through the occlusion-aware model of the camera's
bank (default ``config/camera.yaml``) at one noise level (0.01), 16-bit quantised. Loss per
pixel: a Gaussian negative log-likelihood of the normalised inverse depth ``v`` under the
predicted mean and log-variance, weighted by the predicted variance to the power ``beta``
(beta-NLL, Seitzer et al. 2022: plain NLL (beta 0) lets hard pixels stop teaching the mean),
plus ``v_weight`` times the L1 error of ``v`` (so the mean learns while the variance is still
large) and ``aif_weight`` times the L1 error of the all-in-focus image. AdamW, linear warm-up then
cosine to 0.05x over the time budget, gradient clipping 1.0, EMA of the weights, bf16
autocast + channels_last on CUDA. Validation: the same loss (and its parts) of the EMA weights
on a fixed, seeded set made from the prior's ``val`` photos, logged every ``--val-every`` steps.

::

    python -m codedap_depth.tools.regressor_train --data .prior_data/photos.npz --out OUT \\
        --minutes 8
    python -m codedap_depth.tools.regressor_train --data .prior_data/photos.npz --out /tmp/r \\
        --device cpu --max-steps 3 --batch 2 --crop 64 --val-samples 4       # CPU smoke test

Writes into ``--out``: ``unet.safetensors`` (EMA weights, fp16), ``config.json``,
``training.json`` (command, steps, minutes, card, final and validation losses) and
``loss.jsonl``. Each file is checked to be < 16 MiB.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.regressor.loading import CONFIG_FILE, WEIGHTS_FILE, save_weights
from codedap_depth.regressor.model import DepthUNet, UNetConfig, UNetOutput
from codedap_depth.tools.prior_dataset import load_archive
from codedap_depth.tools.regressor_data import Batch, SimulatedPairs
from codedap_depth.tools.training import (
    RunConfig,
    StopFlag,
    add_run_arguments,
    optimiser_step,
    start_run,
)


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Training hyper-parameters: ``RunConfig``'s (other defaults for the budget and learning
    rate) and the regressor's own (``--help`` for each)."""

    minutes: float = 8.0
    lr: float = 5e-4
    camera: str = ""
    batch: int = 48
    crop: int = 128
    noise: float = 0.01
    beta: float = 0.5
    v_weight: float = 1.0
    aif_weight: float = 1.0
    channels: tuple[int, ...] = UNetConfig.channels
    blocks: int = UNetConfig.blocks
    groups: int = UNetConfig.groups
    val_every: int = 500
    val_samples: int = 96


def loss_terms(out: UNetOutput, batch: Batch, beta: float, v_weight: float, aif_weight: float
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training objective (module docstring) and its parts, each a scalar tensor:
    ``nll`` (plain Gaussian NLL of ``v`` per pixel, nats, with the 0.5 log 2 pi term),
    ``mae_v`` (mean |v error|, units of the range) and ``aif_l1``."""
    err2 = (out.v - batch.v).square()
    nll = 0.5 * (out.log_var + err2 * torch.exp(-out.log_var) + math.log(2 * math.pi))
    weighted = (nll * torch.exp(beta * out.log_var.detach())).mean()
    aif_l1 = (out.aif - batch.aif).abs().mean()
    mae_v = (out.v - batch.v).abs().mean()
    parts = {"nll": nll.mean(), "mae_v": mae_v, "aif_l1": aif_l1}
    return weighted + v_weight * mae_v + aif_weight * aif_l1, parts


def _parse_args(argv: list[str] | None) -> TrainConfig:
    d = TrainConfig(data="", out="")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(ap, d)
    ap.add_argument("--camera", default=d.camera,
                    help="camera YAML of the training bank (default: config/camera.yaml)")
    ap.add_argument("--batch", type=int, default=d.batch, help="pairs per step")
    ap.add_argument("--crop", type=int, default=d.crop, help="square crop, pixels")
    ap.add_argument("--noise", type=float, default=d.noise, help="capture noise std, [0, 1]")
    ap.add_argument("--beta", type=float, default=d.beta, help="beta of the beta-NLL")
    ap.add_argument("--v-weight", type=float, default=d.v_weight, help="weight of L1 on v")
    ap.add_argument("--aif-weight", type=float, default=d.aif_weight, help="weight of AIF L1")
    ap.add_argument("--channels", default=",".join(map(str, d.channels)),
                    help="U-Net channels per level, comma separated")
    ap.add_argument("--blocks", type=int, default=d.blocks, help="residual blocks per level")
    ap.add_argument("--groups", type=int, default=d.groups, help="GroupNorm groups")
    ap.add_argument("--val-every", type=int, default=d.val_every, help="steps per val record")
    ap.add_argument("--val-samples", type=int, default=d.val_samples,
                    help="validation pairs (made once from the val photos)")
    a = ap.parse_args(argv)
    values = {k.replace("-", "_"): v for k, v in vars(a).items()}
    values["channels"] = tuple(int(c) for c in a.channels.split(","))
    return TrainConfig(**values)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def _validate(model: torch.nn.Module, val: list[Batch], cfg: TrainConfig, amp: bool
              ) -> dict[str, float]:
    """Mean loss and parts of ``model`` over the fixed validation batches."""
    sums: dict[str, float] = {}
    for batch in val:
        with torch.autocast(batch.coded.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(batch.coded)
        loss, parts = loss_terms(UNetOutput(*(t.float() for t in out)), batch, cfg.beta,
                                 cfg.v_weight, cfg.aif_weight)
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * batch.coded.shape[0]
    n = sum(b.coded.shape[0] for b in val)
    return {f"val_{k}": v / n for k, v in sums.items()}


def train(cfg: TrainConfig, command: str) -> dict:
    """Run training per ``cfg``; saves the result into ``cfg.out`` and returns training info."""
    dev, cuda, out = start_run(cfg.device, cfg.seed, cfg.out)
    t_start = time.time()
    camera_file = Path(cfg.camera) if cfg.camera else share_file("config/camera.yaml")
    bank = synthesize_bank(load_camera(camera_file))  # the CLI's path: YAML -> bank
    train_photos = [a for _, a in load_archive(Path(cfg.data), "train")]
    val_photos = [a for _, a in load_archive(Path(cfg.data), "val")]
    sim = SimulatedPairs(bank, train_photos, cfg.crop, cfg.noise, dev)
    val_sim = SimulatedPairs(bank, val_photos, cfg.crop, cfg.noise, dev)
    g_val = torch.Generator(device=dev).manual_seed(1234)
    val = [val_sim.batch(min(32, cfg.val_samples - i), g_val)
           for i in range(0, cfg.val_samples, 32)]
    del val_sim
    g = torch.Generator(device=dev).manual_seed(cfg.seed)
    print(f"{len(train_photos)} train / {len(val_photos)} val photos, bank {bank.num_depths} "
          f"layers {bank.size} px, {cfg.val_samples} val pairs made in "
          f"{time.time() - t_start:.1f} s on {dev}", flush=True)

    net_config = UNetConfig(channels=cfg.channels, blocks=cfg.blocks, groups=cfg.groups,
                            near=float(bank.depths[0]), far=float(bank.depths[-1]))
    notes = {"noise_sigma": cfg.noise, "camera": camera_file.name}
    model = DepthUNet(net_config).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                            weight_decay=cfg.weight_decay, fused=cuda)
    budget = cfg.minutes * 60.0
    log = (out / "loss.jsonl").open("w")
    ema_p, mod_p = list(ema.parameters()), list(model.parameters())
    step, window, t_loop = 0, [], time.time()
    record: dict[str, float] = {}
    val_record: dict[str, float] = {}
    with StopFlag() as stop:
        while True:
            elapsed = time.time() - t_loop
            if stop.signal is not None or elapsed >= budget or (
                    cfg.max_steps and step >= cfg.max_steps):
                break
            batch = sim.batch(cfg.batch, g)
            coded = batch.coded.contiguous(memory_format=torch.channels_last) if cuda \
                else batch.coded
            progress = max(elapsed / budget, step / cfg.max_steps if cfg.max_steps else 0.0)
            lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (
                0.525 + 0.475 * math.cos(math.pi * min(progress, 1.0)))  # cosine to 0.05 lr
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                pred = model(coded)
            loss, parts = loss_terms(UNetOutput(*(t.float() for t in pred)), batch, cfg.beta,
                                     cfg.v_weight, cfg.aif_weight)
            optimiser_step(opt, model, loss, ema_p, mod_p, cfg.ema, step)
            window.append(torch.stack([loss.detach(), *(v.detach() for v in parts.values())]))
            step += 1
            if step % cfg.log_every == 0 or step == 1:
                mean = torch.stack(window).mean(0).tolist()
                window = []
                record = dict(zip(("loss", *parts), mean, strict=True))
                rec = {"step": step, "elapsed_s": round(time.time() - t_loop, 2), **record,
                       "lr": lr}
                if step % cfg.val_every == 0:
                    val_record = _validate(ema, val, cfg, cuda)
                    rec.update(val_record)
                    save_weights(out, ema, net_config, notes)  # a checkpoint, if cut short
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in rec.items()), flush=True)
    if window:
        record = dict(zip(("loss", *parts), torch.stack(window).mean(0).tolist(), strict=True))
    if cuda:
        torch.cuda.synchronize()
    train_s = time.time() - t_loop
    val_record = _validate(ema, val, cfg, cuda)
    log.write(json.dumps({"step": step, "elapsed_s": round(train_s, 2), **record,
                          **val_record, "final": True}) + "\n")
    log.close()
    info = {
        "command": command,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "model": net_config.to_json(),
        "steps": step,
        "minutes": round(train_s / 60.0, 3),
        "ms_per_step": round(1000.0 * train_s / max(step, 1), 1),
        "params": n_params,
        "size_multiple": net_config.size_multiple,
        "device": str(dev),
        "card": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": torch.__version__,
        "camera_file": str(camera_file),
        "camera_sha256": _sha256(camera_file),
        "bank": {"layers": bank.num_depths, "psf_size": bank.size,
                 "depths_m": [round(float(d), 4) for d in bank.depths]},
        "final_train": record,
        **{k + "_ema": v for k, v in val_record.items()},
        "stopped_by": ("signal" if stop.signal is not None else
                       "max_steps" if cfg.max_steps and step >= cfg.max_steps else "time"),
        "train_photos": len(train_photos),
        "val_photos": len(val_photos),
        "val_pairs": cfg.val_samples,
    }
    save_weights(out, ema, net_config, notes)
    (out / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    for f in (WEIGHTS_FILE, CONFIG_FILE, "training.json", "loss.jsonl"):
        size = (out / f).stat().st_size
        if size >= 16 * 2**20:
            raise RuntimeError(f"{out / f} is {size / 2**20:.1f} MiB, over the 16 MiB limit")
    print(json.dumps({k: info[k] for k in ("steps", "minutes", "ms_per_step", "params", "card",
                                           "val_loss_ema", "val_nll_ema", "val_mae_v_ema",
                                           "val_aif_l1_ema")}), flush=True)
    return info


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg = _parse_args(argv)
    args = sys.argv[1:] if argv is None else argv
    np.random.seed(cfg.seed)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    train(cfg, "python -m codedap_depth.tools.regressor_train " + shlex.join(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
