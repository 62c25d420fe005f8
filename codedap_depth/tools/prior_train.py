# SPDX-License-Identifier: Apache-2.0
"""Train the pixel-space diffusion prior on random crops of the offline photos.

Epsilon-prediction DDPM (1000-step linear betas) with a fully convolutional ``UNet2DModel``,
so the trained model runs at any frame size that is a multiple of 8 pixels. Each step uses one
crop size (``--crop-min``..``--crop-max``, default 64..128 px, multiples of 16) with a batch
chosen to keep pixels per batch constant. ``--init DIR`` continues from earlier weights (same
architecture) instead of a random start. ``--t-focus T`` draws a share ``--t-focus-share`` of
each batch's timesteps from ``[0, T)`` instead of all 1000: the reconstruction samplers only
denoise at levels up to 1.6 on [0, 1] intensities, t < 490, so the rest of the range is needed
only for unconditional samples.
Augmentation runs on the device: random scale (0.5..1 downscale, mip-mapped bilinear), flips,
90-degree rotations, mild colour jitter, and optionally procedural dead-leaves images.

Runs with torch, numpy, pillow, safetensors, tqdm and diffusers only (no scipy / skimage)::

    python -m codedap_depth.tools.prior_train --data .prior_data/photos.npz --out OUT --minutes 12
    python -m codedap_depth.tools.prior_train --data .prior_data/photos.npz --out /tmp/p \\
        --device cpu --max-steps 3 --batch 4                                  # CPU smoke test

Writes into ``--out``: ``unet.safetensors`` (EMA weights, fp16), ``config.json``,
``scheduler.json``, ``training.json`` and ``loss.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import functools
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
import torch.nn.functional as F

from codedap_depth.prior.model import (
    CONFIG_FILE,
    SCHEDULER_CONFIG,
    SCHEDULER_FILE,
    UNET_FILE,
    alphas_cumprod,
    build_unet,
    check_state_matches,
    size_multiple_of,
    to_prior_range,
    unet_config,
)
from codedap_depth.tools.prior_dataset import load_archive
from codedap_depth.tools.training import (
    RunConfig,
    StopFlag,
    add_run_arguments,
    optimiser_step,
    start_run,
)

CROP_SIZES = tuple(range(64, 257, 16))  # pixels, 64..256; one per step


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Training hyper-parameters: ``RunConfig``'s and the prior's own (``--help`` for each)."""

    batch: int = 256  # at 64x64; other crop sizes keep batch * size^2 constant
    crop_min: int = 64
    crop_max: int = 128
    dead_leaves: float = 0.0
    channels: tuple[int, ...] = (64, 96, 128, 128)
    layers_per_block: int = 2
    norm_groups: int = 32
    compile: bool = False
    init: str = ""  # folder of earlier weights to start from ("": random start)
    t_focus: int = 0  # timesteps [0, t_focus) get t_focus_share of each batch (0: uniform)
    t_focus_share: float = 0.8


# ----------------------------------------------------------------------------------- data


class PhotoBank:
    """All training photos as one zero-padded uint8 tensor ``[N, 3, Hmax + 2c, Wmax + 2c]``."""

    def __init__(self, photos: list[np.ndarray], device: torch.device, pad: int) -> None:
        hs = [p.shape[0] for p in photos]
        ws = [p.shape[1] for p in photos]
        stack = torch.zeros(len(photos), max(hs) + pad, max(ws) + pad, 3, dtype=torch.uint8)
        for i, p in enumerate(photos):
            stack[i, : p.shape[0], : p.shape[1]] = torch.from_numpy(np.array(p))
        self.stack = stack.to(device)  # [N, Hp, Wp, 3] (HWC so a gather yields [B, h, w, 3])
        self.h = torch.tensor(hs, device=device)
        self.w = torch.tensor(ws, device=device)
        self.n = len(photos)


@functools.lru_cache(maxsize=4)
def _consts(dev: torch.device) -> dict[str, torch.Tensor]:
    """Small constant tensors, made once per device (a per-step host-to-device copy would
    synchronise the CUDA stream and starve the GPU)."""
    rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]], dtype=torch.float64)
    c = {
        "cos": torch.tensor([1.0, 0.0, -1.0, 0.0]),
        "sin": torch.tensor([0.0, 1.0, 0.0, -1.0]),
        "grey": torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1),
        "rgb2yiq": rgb2yiq.float(),
        "yiq2rgb": torch.linalg.inv(rgb2yiq).float(),
    }
    return {k: v.to(dev) for k, v in c.items()}


def _affines(b: int, scale: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per-sample ``affine_grid`` thetas [B, 2, 3]: rot90 * flip, downscale by ``scale``.

    The window is ``2c`` pixels; the used footprint is its top-left ``c / scale`` square, so
    normalised grid = (M q + 1) / (2 scale) - 1 for output coordinates q in (-1, 1).
    """
    dev = scale.device
    k = torch.randint(0, 4, (b,), device=dev, generator=g)
    flip = torch.randint(0, 2, (b,), device=dev, generator=g) * 2 - 1
    cos = _consts(dev)["cos"][k]
    sin = _consts(dev)["sin"][k]
    m = torch.stack([torch.stack([cos * flip, -sin], -1), torch.stack([sin * flip, cos], -1)], 1)
    inv = 1.0 / (2.0 * scale)
    theta = torch.cat([m * inv[:, None, None], (inv - 1.0)[:, None, None].expand(b, 2, 1)], 2)
    return theta


def photo_crops(bank: PhotoBank, b: int, c: int, g: torch.Generator) -> torch.Tensor:
    """Random augmented crops ``[b, 3, c, c]`` float32 in [0, 1] from the photo bank."""
    dev = bank.stack.device
    idx = torch.randint(0, bank.n, (b,), device=dev, generator=g)
    h, w = bank.h[idx], bank.w[idx]
    smin = (c / torch.minimum(h, w).float()).clamp(max=1.0)
    u = torch.rand(b, device=dev, generator=g)
    scale = torch.maximum(0.5 + 0.5 * u, smin)  # output px per source px
    foot = torch.ceil(c / scale).long()  # source footprint, pixels
    y0 = (torch.rand(b, device=dev, generator=g) * (h - foot + 1).float()).long()
    x0 = (torch.rand(b, device=dev, generator=g) * (w - foot + 1).float()).long()
    ar = torch.arange(2 * c, device=dev)
    ys = (y0[:, None] + ar)[:, :, None]
    xs = (x0[:, None] + ar)[:, None, :]
    win = bank.stack[idx[:, None, None], ys, xs]  # [b, 2c, 2c, 3]
    win = win.permute(0, 3, 1, 2).float().div_(255.0)
    theta = _affines(b, scale, g)
    grid = F.affine_grid(theta, [b, 3, c, c], align_corners=False)
    full = F.grid_sample(win, grid, mode="bilinear", align_corners=False)
    half = F.grid_sample(F.avg_pool2d(win, 2), grid, mode="bilinear", align_corners=False)
    use_half = (scale < 0.7071)[:, None, None, None]  # mip level: avoid aliasing
    return torch.where(use_half, half, full)


def colour_jitter(x: torch.Tensor, g: torch.Generator, p: float = 0.8) -> torch.Tensor:
    """Mild per-sample brightness / contrast / saturation / hue jitter of [0, 1] RGB."""
    b = x.shape[0]
    dev = x.device

    def r(lo: float, hi: float) -> torch.Tensor:
        v = lo + (hi - lo) * torch.rand(b, 1, 1, 1, device=dev, generator=g)
        on = torch.rand(b, 1, 1, 1, device=dev, generator=g) < p
        return torch.where(on, v, torch.full_like(v, (lo + hi) / 2))

    grey_w = _consts(dev)["grey"]
    x = x * r(0.8, 1.2)  # brightness
    mean = (x * grey_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = (x - mean) * r(0.8, 1.2) + mean  # contrast
    grey = (x * grey_w).sum(1, keepdim=True)
    x = grey + (x - grey) * r(0.7, 1.3)  # saturation
    ang = r(-0.1, 0.1).view(b)  # hue: rotate chroma in YIQ by +-0.1 rad
    rot = torch.zeros(b, 3, 3, device=dev)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1] = torch.cos(ang)
    rot[:, 1, 2] = -torch.sin(ang)
    rot[:, 2, 1] = torch.sin(ang)
    rot[:, 2, 2] = torch.cos(ang)
    mat = _consts(dev)["yiq2rgb"] @ rot @ _consts(dev)["rgb2yiq"]  # [b, 3, 3]
    x = torch.einsum("bij,bjhw->bihw", mat, x)
    return x.clamp_(0.0, 1.0)


def dead_leaves(b: int, c: int, colours: torch.Tensor, g: torch.Generator,
                n_disks: int = 192, rmin: float = 1.5) -> torch.Tensor:
    """Procedural dead-leaves images ``[b, 3, c, c]`` in [0, 1] (2x supersampled edges).

    Disk radii follow p(r) ~ r^-3 on [rmin, c/2] pixels (scale invariant); colours are drawn
    from ``colours`` (float32 [M, 3] in [0, 1], e.g. random photo pixels).
    """
    dev = colours.device
    s = 2 * c  # supersampled grid
    u = torch.rand(b, n_disks, device=dev, generator=g)
    lo, hi = (2 * rmin) ** -2, (2 * c / 2) ** -2
    rad = (lo - u * (lo - hi)) ** -0.5  # inverse CDF of r^-3, supersampled pixels
    cy = torch.rand(b, n_disks, device=dev, generator=g) * s
    cx = torch.rand(b, n_disks, device=dev, generator=g) * s
    col = colours[torch.randint(0, colours.shape[0], (b, n_disks + 1), device=dev, generator=g)]
    yy = torch.arange(s, device=dev, dtype=torch.float32) + 0.5
    out = torch.empty(b, 3, s, s, device=dev)
    for i in range(b):  # [n_disks, s, s] masks, first (topmost) covering disk wins
        inside = ((yy[None, :, None] - cy[i, :, None, None]) ** 2
                  + (yy[None, None, :] - cx[i, :, None, None]) ** 2) < rad[i, :, None, None] ** 2
        inside = torch.cat([inside, torch.ones_like(inside[:1])], 0)  # background
        first = inside.to(torch.uint8).argmax(0)  # [s, s]
        out[i] = col[i][first].permute(2, 0, 1)
    return F.avg_pool2d(out, 2)


# ------------------------------------------------------------------------------- training


def sample_timesteps(b: int, train_steps: int, focus: int, share: float,
                     g: torch.Generator) -> torch.Tensor:
    """``b`` training timesteps (long, on ``g``'s device): uniform over ``[0, train_steps)``,
    except that with ``focus`` > 0 each is drawn from ``[0, focus)`` with probability ``share``.

    >>> g = torch.Generator().manual_seed(0)
    >>> t = sample_timesteps(10000, 1000, 500, 0.8, g)
    >>> bool(t.max() < 1000), round(float((t < 500).float().mean()), 1)
    (True, 0.9)
    """
    dev = g.device
    t = torch.randint(0, train_steps, (b,), device=dev, generator=g)
    if not focus:
        return t
    low = torch.randint(0, focus, (b,), device=dev, generator=g)
    return torch.where(torch.rand(b, device=dev, generator=g) < share, low, t)


def _batch_for(crop: int, batch64: int) -> int:
    return max(1, round(batch64 * (64 / crop) ** 2))


def _parse_args(argv: list[str] | None) -> TrainConfig:
    d = TrainConfig(data="", out="")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(ap, d)
    ap.add_argument("--batch", type=int, default=d.batch, help="batch size at 64x64 crops")
    ap.add_argument("--crop-min", type=int, default=d.crop_min, help="pixels")
    ap.add_argument("--crop-max", type=int, default=d.crop_max, help="pixels")
    ap.add_argument("--dead-leaves", type=float, default=d.dead_leaves,
                    help="fraction 0..1 of each batch that is procedural dead-leaves images")
    ap.add_argument("--channels", default=",".join(map(str, d.channels)),
                    help="UNet block_out_channels, comma separated")
    ap.add_argument("--layers-per-block", type=int, default=d.layers_per_block)
    ap.add_argument("--norm-groups", type=int, default=d.norm_groups)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (CUDA)")
    ap.add_argument("--init", default=d.init,
                    help="start from the weights in this folder (unet.safetensors + "
                         "config.json of the same architecture) instead of a random start")
    ap.add_argument("--t-focus", type=int, default=d.t_focus,
                    help="draw --t-focus-share of the timesteps from [0, T) (0: all uniform)")
    ap.add_argument("--t-focus-share", type=float, default=d.t_focus_share)
    a = ap.parse_args(argv)
    if not 0.0 <= a.dead_leaves <= 1.0:
        ap.error("--dead-leaves must be in [0, 1]")
    train_steps = SCHEDULER_CONFIG["num_train_timesteps"]
    if not 0 <= a.t_focus <= train_steps:
        ap.error(f"--t-focus must be in 0..{train_steps}")
    if not 0.0 <= a.t_focus_share <= 1.0:
        ap.error("--t-focus-share must be in [0, 1]")
    return TrainConfig(
        data=a.data, out=a.out, minutes=a.minutes, max_steps=a.max_steps, batch=a.batch,
        crop_min=a.crop_min, crop_max=a.crop_max, lr=a.lr, weight_decay=a.weight_decay,
        warmup=a.warmup, ema=a.ema, dead_leaves=a.dead_leaves,
        channels=tuple(int(v) for v in a.channels.split(",")),
        layers_per_block=a.layers_per_block, norm_groups=a.norm_groups, device=a.device,
        seed=a.seed, log_every=a.log_every, compile=a.compile, init=a.init,
        t_focus=a.t_focus, t_focus_share=a.t_focus_share)


def _save(out: Path, ema: torch.nn.Module, config: dict, info: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous()
             for k, v in ema.state_dict().items()}
    save_file(state, str(out / UNET_FILE), metadata={"format": "pt", "weights": "EMA fp16"})
    os.chmod(out / UNET_FILE, 0o644)
    (out / CONFIG_FILE).write_text(json.dumps({"_class_name": "UNet2DModel", **config},
                                              indent=1) + "\n")
    (out / SCHEDULER_FILE).write_text(json.dumps({"_class_name": "DDPMScheduler",
                                                  **SCHEDULER_CONFIG}, indent=1) + "\n")
    (out / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    for f in (UNET_FILE, CONFIG_FILE, SCHEDULER_FILE, "training.json"):
        size = (out / f).stat().st_size
        if size >= 16 * 2**20:
            raise RuntimeError(f"{out / f} is {size / 2**20:.1f} MiB, over the 16 MiB limit")


def _load_init(model: torch.nn.Module, config: dict, folder: Path) -> dict:
    """Load ``folder``'s ``unet.safetensors`` into ``model`` (float32) after checking that its
    ``config.json`` is ``config``; returns what the training record keeps of that start: the
    folder, the weights' sha256 and, from its ``training.json`` if present, steps and minutes."""
    from safetensors.torch import load_file

    weights, conf = folder / UNET_FILE, folder / CONFIG_FILE
    for f in (weights, conf):
        if not f.is_file():
            raise FileNotFoundError(f"--init: {f} is missing")
    theirs = {k: v for k, v in json.loads(conf.read_text()).items() if not k.startswith("_")}
    ours = {k: v for k, v in config.items() if not k.startswith("_")}
    if theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"--init: {conf} is another architecture (differs in {diff}); pass "
                         "the same --channels / --layers-per-block / --norm-groups")
    state = load_file(str(weights))
    check_state_matches(model.state_dict(), state, str(weights))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    record = {"folder": str(folder), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    earlier = folder / "training.json"
    if earlier.is_file():
        info = json.loads(earlier.read_text())
        record |= {"steps": info.get("steps"), "minutes": info.get("minutes"),
                   "card": info.get("card")}
    return record


@torch.no_grad()
def _val_loss(model: torch.nn.Module, val: list[np.ndarray], abar: torch.Tensor,
              dev: torch.device, amp: bool, crop: int = 64, per_photo: int = 8) -> float:
    """Epsilon MSE of ``model`` on fixed (seeded) centre-ish crops of the val photos."""
    if not val:
        return float("nan")
    g = torch.Generator().manual_seed(1234)
    xs = []
    for p in val:
        h, w = p.shape[:2]
        for _ in range(per_photo):
            y = int(torch.randint(0, h - crop + 1, (1,), generator=g))
            x = int(torch.randint(0, w - crop + 1, (1,), generator=g))
            xs.append(torch.from_numpy(p[y:y + crop, x:x + crop]).permute(2, 0, 1))
    x0 = to_prior_range(torch.stack(xs).float() / 255.0)
    t = torch.linspace(20, 980, x0.shape[0]).long()
    noise = torch.randn(x0.shape, generator=g)
    losses = []
    for i in range(0, x0.shape[0], 64):
        sl = slice(i, i + 64)
        a = abar[t[sl]].cpu().view(-1, 1, 1, 1)
        xt = (a.sqrt() * x0[sl] + (1 - a).sqrt() * noise[sl]).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(xt, t[sl].to(dev)).sample
        losses.append(F.mse_loss(pred.float().cpu(), noise[sl], reduction="sum").item())
    return sum(losses) / noise.numel()


def train(cfg: TrainConfig, command: str) -> dict:
    """Run training per ``cfg``; saves the result into ``cfg.out`` and returns training info."""
    from tqdm import tqdm

    dev, cuda, out = start_run(cfg.device, cfg.seed, cfg.out)
    t_start = time.time()
    train_photos = [a for _, a in load_archive(Path(cfg.data), "train")]
    val_photos = [a for _, a in load_archive(Path(cfg.data), "val")]
    crops = [c for c in CROP_SIZES if cfg.crop_min <= c <= cfg.crop_max] or [cfg.crop_min]
    bank = PhotoBank(train_photos, dev, pad=2 * max(crops))
    g = torch.Generator(device=dev).manual_seed(cfg.seed)
    pix = torch.cat([torch.from_numpy(p.reshape(-1, 3)[::97].copy()) for p in train_photos])
    colours = (pix.float() / 255.0).to(dev)
    print(f"{len(train_photos)} train / {len(val_photos)} val photos loaded in "
          f"{time.time() - t_start:.1f} s; bank {tuple(bank.stack.shape)} on {dev}", flush=True)

    config = unet_config(cfg.channels, cfg.layers_per_block, cfg.norm_groups)
    model = build_unet(config)
    started_from = _load_init(model, config, Path(cfg.init)) if cfg.init else None
    model = model.to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    step_model = torch.compile(model) if (cfg.compile and cuda) else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                            weight_decay=cfg.weight_decay, fused=cuda)
    abar = alphas_cumprod().to(dev)
    rng = np.random.default_rng(cfg.seed)
    budget = cfg.minutes * 60.0
    log = (out / "loss.jsonl").open("w")
    ema_p = [p for p in ema.parameters()]
    mod_p = [p for p in model.parameters()]
    step, window, t_loop = 0, [], time.time()
    bar = tqdm(total=cfg.max_steps or None, unit="step", mininterval=2.0, file=sys.stdout)
    loss_val = float("nan")
    with StopFlag() as stop:
        while True:
            elapsed = time.time() - t_loop
            if stop.signal is not None or elapsed >= budget or (
                    cfg.max_steps and step >= cfg.max_steps):
                break
            c = int(rng.choice(crops))
            b = _batch_for(c, cfg.batch)
            n_dl = int(round(cfg.dead_leaves * b))
            parts = []
            if b - n_dl:
                parts.append(colour_jitter(photo_crops(bank, b - n_dl, c, g), g))
            if n_dl:
                parts.append(dead_leaves(n_dl, c, colours, g))
            x0 = to_prior_range(torch.cat(parts))
            t = sample_timesteps(b, abar.shape[0], cfg.t_focus, cfg.t_focus_share, g)
            noise = torch.randn(x0.shape, device=dev, generator=g)
            a = abar[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise  # q(x_t | x_0), DDPM eq. 4
            if cuda:
                xt = xt.contiguous(memory_format=torch.channels_last)
            progress = max(elapsed / budget, step / cfg.max_steps if cfg.max_steps else 0.0)
            lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (
                0.55 + 0.45 * math.cos(math.pi * min(progress, 1.0)))  # cosine to 0.1 * lr
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                pred = step_model(xt, t).sample
            loss = F.mse_loss(pred.float(), noise)  # L_simple, DDPM eq. 14
            optimiser_step(opt, model, loss, ema_p, mod_p, cfg.ema, step)
            window.append(loss.detach())
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == 1:
                loss_val = torch.stack(window).mean().item()
                window = []
                rec = {"step": step, "elapsed_s": round(time.time() - t_loop, 2),
                       "loss": loss_val, "lr": lr, "crop": c, "batch": b}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss_val:.4f}", crop=c, batch=b)
    bar.close()
    if window:
        loss_val = torch.stack(window).mean().item()
    if cuda:
        torch.cuda.synchronize()
    train_s = time.time() - t_loop
    v_loss = _val_loss(ema, val_photos, abar, dev, cuda)
    log.write(json.dumps({"step": step, "elapsed_s": round(train_s, 2), "loss": loss_val,
                          "val_loss_ema": v_loss}) + "\n")
    log.close()
    info = {
        "command": command,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "steps": step,
        "minutes": round(train_s / 60.0, 3),
        "ms_per_step": round(1000.0 * train_s / max(step, 1), 1),
        "params": n_params,
        "size_multiple": size_multiple_of(config),
        "device": str(dev),
        "card": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": torch.__version__,
        "final_loss": loss_val,
        "val_loss_ema": v_loss,
        "stopped_by": ("signal" if stop.signal is not None else
                       "max_steps" if cfg.max_steps and step >= cfg.max_steps else "time"),
        "train_photos": len(train_photos),
        "val_photos": len(val_photos),
        "started_from": started_from,
    }
    _save(out, ema, config, info)
    print(json.dumps({k: info[k] for k in ("steps", "minutes", "ms_per_step", "params", "card",
                                           "final_loss", "val_loss_ema")}), flush=True)
    return info


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = _parse_args(argv)
    args = sys.argv[1:] if argv is None else argv
    train(cfg, "python -m codedap_depth.tools.prior_train " + shlex.join(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
