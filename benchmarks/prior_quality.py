# SPDX-License-Identifier: Apache-2.0
"""How good is the diffusion prior? One-step Tweedie denoising on held-out photos + samples.

For each noise level sigma (on [0, 1] intensities; it doubles in the prior's [-1, 1] range) the
noisy image y = x + sigma * n is mapped to the prior range, the timestep t whose noise-to-signal
ratio sqrt((1 - abar_t) / abar_t) is nearest to 2 sigma is chosen, the input is scaled by
sqrt(abar_t) and the Tweedie estimate x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) is
compared (PSNR, dB, on [0, 1], clipped) with BM3D and with a Gaussian filter whose width is
tuned per noise level on the same val crops (an upper bound for that baseline). Also saves a
4x4 grid of unconditional 50-step DDIM samples.

    python benchmarks/prior_quality.py --weights codedap_depth/weights --device cuda
    python benchmarks/prior_quality.py --random --out /tmp/pq   # smoke test, untrained prior
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codedap_depth.prior import (  # noqa: E402
    Prior,
    from_prior_range,
    load_prior,
    random_prior,
    to_prior_range,
)
from codedap_depth.sampler import ddim_step  # noqa: E402
from codedap_depth.tools.prior_dataset import load_archive  # noqa: E402

SIGMAS = (0.05, 0.1, 0.2)  # noise std on [0, 1] intensities
GAUSS_WIDTHS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)  # pixels


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of [0, 1] images ``[B, C, H, W]`` (x clipped to [0, 1])."""
    mse = ((x.clamp(0, 1) - ref) ** 2).mean((1, 2, 3))
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def center_crops(photos: list[np.ndarray], size: int) -> torch.Tensor:
    """Centre crops ``[N, 3, size, size]`` float32 in [0, 1] of uint8 HWC photos."""
    out = []
    for p in photos:
        h, w = p.shape[:2]
        s = min(size, h, w)
        y, x = (h - s) // 2, (w - s) // 2
        c = torch.from_numpy(np.ascontiguousarray(p[y:y + s, x:x + s])).permute(2, 0, 1)
        c = c.float()[None] / 255.0
        if s != size:
            c = F.interpolate(c, size=(size, size), mode="bicubic", align_corners=False)
        out.append(c.clamp(0, 1))
    return torch.cat(out)


def timestep_for_sigma(prior: Prior, sigma01: float) -> int:
    """t whose sqrt((1 - abar) / abar) is nearest to the prior-range noise std 2 * sigma01."""
    abar = prior.alphas_cumprod.double()
    ratio = ((1 - abar) / abar).sqrt()
    return int((ratio - 2.0 * sigma01).abs().argmin())


@torch.no_grad()
def tweedie_denoise(prior: Prior, y01: torch.Tensor, sigma01: float, batch: int = 16
                    ) -> torch.Tensor:
    """One-step Tweedie estimate of the clean [0, 1] image from y = x + sigma * n."""
    t = timestep_for_sigma(prior, sigma01)
    a = prior.alphas_cumprod[t].item()
    outs = []
    for i in range(0, y01.shape[0], batch):
        yp = to_prior_range(y01[i:i + batch].to(prior.device))
        x_t = math.sqrt(a) * yp  # (1) x_t = sqrt(abar) (x0 + 2 sigma n)
        tt = torch.full((yp.shape[0],), t, dtype=torch.long, device=yp.device)
        eps = prior.eps(x_t, tt)
        x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)  # (2) Tweedie / DDPM eq. 15
        outs.append(from_prior_range(x0).float().cpu())
    return torch.cat(outs)


def gaussian_blur(x: torch.Tensor, width: float) -> torch.Tensor:
    """Separable Gaussian filter (std ``width`` pixels, reflect padding) of ``[B, C, H, W]``."""
    r = max(1, int(math.ceil(3 * width)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / width) ** 2)
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _bm3d_one(z: np.ndarray, sigma01: float) -> np.ndarray:
    import bm3d

    return np.asarray(bm3d.bm3d_rgb(z, sigma_psd=sigma01), np.float32)


def bm3d_denoise(y01: torch.Tensor, sigma01: float) -> torch.Tensor | None:
    """BM3D (``bm3d`` package, RGB) of each image, one process per image (up to the CPU
    count); ``None`` if the package is missing."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return None
    from concurrent.futures import ProcessPoolExecutor

    zs = [img.permute(1, 2, 0).double().numpy() for img in y01]
    with ProcessPoolExecutor(max_workers=max(1, min(len(zs), os.cpu_count() or 1))) as ex:
        out = list(ex.map(_bm3d_one, zs, [sigma01] * len(zs)))
    return torch.stack([torch.from_numpy(d).permute(2, 0, 1) for d in out])


@torch.no_grad()
def ddim_samples(prior: Prior, n: int, size: int, steps: int = 50, seed: int = 0
                 ) -> torch.Tensor:
    """Unconditional DDIM (eta = 0) samples, ``[n, 3, size, size]`` in [0, 1]."""
    dev = prior.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g).to(dev)
    abar = prior.alphas_cumprod
    ts = list(range(0, abar.shape[0], abar.shape[0] // steps))[::-1]  # 980, 960, ..., 0
    for i, t in enumerate(ts):
        a = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=dev)
        eps = prior.eps(x, torch.full((n,), t, dtype=torch.long, device=dev))
        x = ddim_step(x, eps, a, a_prev).prev_sample  # DDIM eq. 12, eta = 0
    return from_prior_range(x).clamp(0, 1).cpu()


def save_grid(imgs: torch.Tensor, path: Path, cols: int = 4) -> None:
    """Save ``[N, 3, H, W]`` [0, 1] images as one PNG grid (1 px white gutters)."""
    from PIL import Image

    n, _, h, w = imgs.shape
    rows = math.ceil(n / cols)
    grid = torch.ones(3, rows * (h + 1) - 1, cols * (w + 1) - 1)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[:, r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = imgs[i]
    arr = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=None,
                    help="weights folder (default: codedap_depth/weights)")
    ap.add_argument("--random", action="store_true", help="use random_prior (smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", type=Path, default=REPO / ".prior_data" / "photos.npz")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                    help="folder for prior_quality.json and prior_samples.png")
    ap.add_argument("--crop", type=int, default=128, help="centre crop size, pixels")
    ap.add_argument("--sample-size", type=int, default=64, help="DDIM sample size, pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow on CPU)")
    args = ap.parse_args(argv)

    prior = random_prior(args.device) if args.random else load_prior(args.device, args.weights)
    if args.crop % prior.size_multiple:
        ap.error(f"--crop must be a multiple of {prior.size_multiple}")
    val = load_archive(args.data, "val")
    names = [n for n, _ in val]
    x = center_crops([a for _, a in val], args.crop)
    g = torch.Generator().manual_seed(args.seed)
    rows = []
    for sigma in SIGMAS:
        y = x + sigma * torch.randn(x.shape, generator=g)
        t0 = time.time()
        den = tweedie_denoise(prior, y, sigma)
        t_prior = time.time() - t0
        gauss = {w: psnr(gaussian_blur(y, w), x).mean().item() for w in GAUSS_WIDTHS}
        best_w = max(gauss, key=gauss.get)
        t0 = time.time()
        bm = None if args.no_bm3d else bm3d_denoise(y, sigma)
        t_bm = time.time() - t0
        rows.append({
            "sigma": sigma,
            "t": timestep_for_sigma(prior, sigma),
            "noisy_psnr": psnr(y, x).mean().item(),
            "prior_tweedie_psnr": psnr(den, x).mean().item(),
            "prior_per_image_psnr": dict(zip(names, psnr(den, x).tolist(), strict=True)),
            "bm3d_psnr": None if bm is None else psnr(bm, x).mean().item(),
            "gaussian_psnr": gauss[best_w],
            "gaussian_best_width_px": best_w,
            "prior_s": round(t_prior, 3),
            "bm3d_s": round(t_bm, 3) if bm is not None else None,
        })
    samples = ddim_samples(prior, 16, args.sample_size, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_grid(samples, args.out / "prior_samples.png")
    dev = torch.device(args.device)
    wdir = args.weights or (REPO / "codedap_depth" / "weights")
    training = wdir / "training.json"
    result = {
        "benchmark": "prior_quality",
        "prior": "random_prior" if args.random else str(wdir),
        "training": (json.loads(training.read_text())
                     if training.is_file() and not args.random else None),
        "device": str(dev),
        "card": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "val_photos": names,
        "crop": args.crop,
        "seed": args.seed,
        "sigma_scale": "[0, 1] intensities (prior range noise std = 2 sigma)",
        "rows": rows,
        "samples_png": str(args.out / "prior_samples.png"),
        "samples": {"n": 16, "size": args.sample_size, "sampler": "DDIM eta=0", "steps": 50},
    }
    (args.out / "prior_quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"prior: {result['prior']}  device: {result['device']} ({result['card']})  "
          f"{len(names)} val crops of {args.crop}px")
    print(f"{'sigma':>6} {'t':>4} {'noisy':>7} {'prior':>7} {'BM3D':>7} {'gauss':>7} (dB)")
    for r in rows:
        bm = f"{r['bm3d_psnr']:7.2f}" if r["bm3d_psnr"] is not None else "    n/a"
        print(f"{r['sigma']:6.2f} {r['t']:4d} {r['noisy_psnr']:7.2f} "
              f"{r['prior_tweedie_psnr']:7.2f} {bm} {r['gaussian_psnr']:7.2f}"
              f"  (gauss width {r['gaussian_best_width_px']} px)")
    print(f"samples: {args.out / 'prior_samples.png'}; json: {args.out / 'prior_quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
