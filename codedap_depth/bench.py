# SPDX-License-Identifier: Apache-2.0
"""Speed and quality benchmark of the reconstruction (``codedap-depth bench``).

Measures, on one device, in one run: ms per frame and frames per second for frame sizes x
step counts x posterior samples; a per-stage breakdown (network, image step, depth evidence,
classical warm start); the network's FLOP floor against the card's measured bf16 matrix rate;
scaling with the number of depth layers; and quality (depth AbsRel, AIF PSNR) against steps,
relative to the 1000-step reference. Prints tables and writes JSON (+ a PNG curve).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from codedap_depth.consistency import LayerEvidence, solve_image
from codedap_depth.evaluation import device_name
from codedap_depth.forward import LayeredBlur
from codedap_depth.metrics import depth_metrics, psnr
from codedap_depth.optics import Camera, synthesize_bank
from codedap_depth.pipeline import ReconstructionConfig, Reconstructor
from codedap_depth.prior import Prior, to_prior_range
from codedap_depth.scenes import load_scene
from codedap_depth.simulate import simulate_capture


def timed(
    fn: Callable[[], object], device: torch.device, repeat: int = 5, warmup: bool = True
) -> float:
    """Median wall time of ``fn`` in milliseconds (device-synced), after one warm-up call."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def matmul_tflops(device: torch.device) -> float | None:
    """Measured dense bf16 matrix-product rate (TFLOP/s) on random data; None on CPU."""
    if device.type != "cuda":
        return None
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    ms = timed(lambda: a @ b, device, repeat=10)
    return 2 * n**3 / (ms / 1000) / 1e12


def network_flops(prior: Prior, height: int, width: int, samples: int) -> float:
    """FLOPs of one epsilon evaluation (torch's flop counter, matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = prior.alphas_cumprod.device
    x = torch.randn(samples, 3, height, width, device=device)
    t = torch.full((samples,), 500, device=device, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        prior.eps(x, t)
    return float(counter.get_total_flops())


def stage_breakdown(
    camera: Camera, prior: Prior, size: tuple[int, int], samples: int, steps: int
) -> dict[str, float]:
    """ms per frame spent in each stage at ``steps`` sampler steps."""
    device = prior.alphas_cumprod.device
    width, height = size
    bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height))
    model = LayeredBlur(bank, height, width).to(device)
    y = torch.rand(1, 3, height, width, device=device)
    x = torch.rand(samples, 3, height, width, device=device)
    inv = torch.full((samples, 1, height, width), 1.0, device=device)
    valid = torch.ones_like(y[:, :1])
    config = ReconstructionConfig().sampler
    evidence = LayerEvidence(model, y, 0.01, config.gradient_sigma, config.window)
    t = torch.full((samples,), 500, device=device, dtype=torch.long)
    with torch.no_grad():
        network = timed(lambda: prior.eps(to_prior_range(x), t), device)
        image = timed(lambda: solve_image(model, y, valid, inv, x, 1.0, evidence.lambda_g,
                                          config.cg_iterations), device)
        depth = timed(lambda: evidence.cost(x, config.depth_mu), device)
    classical_run = Reconstructor(bank, ReconstructionConfig(method="classical",
                                                             device=str(device)))
    coded = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    classical = timed(lambda: classical_run(coded), device, repeat=3)
    refits = steps - int(np.ceil(config.depth_start * steps))
    return {
        "network_ms": network * steps,
        "image_step_ms": image * steps,
        "depth_evidence_ms": depth * refits,
        "classical_init_ms": classical,
    }


def run_bench(
    camera: Camera,
    prior: Prior,
    device: str,
    sizes: list[tuple[int, int]],
    steps_list: list[int],
    samples_list: list[int],
    quality_steps: list[int],
    out: Path,
) -> dict:
    """Run every measurement and write ``bench.json`` and ``quality_vs_steps.png`` to ``out``."""
    dev = torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": device_name(device), "torch": torch.__version__}
    rate = matmul_tflops(dev)
    result["bf16_matmul_tflops"] = rate
    speed = []
    for width, height in sizes:
        bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height))
        scene = load_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])),
                           (width, height))
        coded = simulate_capture(scene, bank, 0.01)
        for samples in samples_list:
            flops = network_flops(prior, height, width, samples)
            for steps in steps_list:
                if steps >= 1000 and (width * height > 256 * 256 or samples > 1):
                    continue  # the reference step count is timed at the smallest size only
                run = Reconstructor(bank, ReconstructionConfig(steps=steps, samples=samples,
                                                               device=device), prior)
                slow = steps >= 1000  # same kernels as the shorter runs: no warm-up
                ms = timed(lambda r=run, c=coded: r(c), dev, repeat=1 if slow else 2,
                           warmup=not slow)
                floor_ms = None if rate is None else flops * steps / (rate * 1e12) * 1000
                row = {"size": f"{width}x{height}", "steps": steps, "samples": samples,
                       "ms_per_frame": ms, "fps": 1000 / ms, "network_gflop_per_step":
                       flops / 1e9, "network_floor_ms": floor_ms,
                       "ratio_to_floor": None if floor_ms is None else ms / floor_ms}
                speed.append(row)
                print(_format_row(row), flush=True)
    result["speed"] = speed
    result["stages_256_20_steps"] = stage_breakdown(camera, prior, (256, 256), 1, 20)
    result["layers"] = layer_scaling(camera, prior, device)
    result["quality"] = quality_vs_steps(camera, prior, device, quality_steps, out)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def layer_scaling(camera: Camera, prior: Prior, device: str) -> list[dict]:
    """ms per frame at 256x256, 20 steps, for 8, 16 and 32 bank layers."""
    rows = []
    for layers in (8, 16, 32):
        cam = dataclasses.replace(camera, width=256, height=256, num_depths=layers)
        bank = synthesize_bank(cam)
        coded = np.random.default_rng(0).random((256, 256, 3)).astype(np.float32)
        run = Reconstructor(bank, ReconstructionConfig(steps=20, device=device), prior)
        ms = timed(lambda r=run, c=coded: r(c), torch.device(device), 3)
        rows.append({"layers": layers, "ms_per_frame": ms})
    return rows


def quality_vs_steps(
    camera: Camera, prior: Prior, device: str, steps_list: list[int], out: Path
) -> list[dict]:
    """Depth AbsRel and AIF PSNR against steps on motorcycle and layered (noise 0.01,
    camera size), with the 1000-step result as reference; writes quality_vs_steps.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bank = synthesize_bank(camera)
    rows = []
    for name in ("motorcycle", "layered"):
        scene = load_scene(name, (float(bank.depths[0]), float(bank.depths[-1])),
                           (camera.width, camera.height))
        coded = simulate_capture(scene, bank, 0.01)
        for steps in steps_list:
            rec = Reconstructor(bank, ReconstructionConfig(steps=steps, device=device),
                                prior)(coded)
            rows.append({"scene": name, "steps": steps, "seconds": rec.seconds,
                         "depth_absrel": depth_metrics(rec.depth, scene.depth).absrel,
                         "aif_psnr_db": psnr(rec.aif, scene.rgb)})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in ("motorcycle", "layered"):
        sel = [r for r in rows if r["scene"] == name]
        axes[0].plot([r["steps"] for r in sel], [r["depth_absrel"] for r in sel], "o-", label=name)
        axes[1].plot([r["steps"] for r in sel], [r["aif_psnr_db"] for r in sel], "o-", label=name)
    for ax, label in zip(axes, ("depth AbsRel (lower is better)", "AIF PSNR, dB"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("DDIM steps")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"DFD-DPS quality vs steps ({device_name(device)}, noise 0.01)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_steps.png", dpi=110)
    plt.close(fig)
    return rows


def _format_row(row: dict) -> str:
    floor = "" if row["network_floor_ms"] is None else (
        f"  floor {row['network_floor_ms']:.2f} ms (x{row['ratio_to_floor']:.0f})")
    return (f"{row['size']:>8} steps {row['steps']:>4} samples {row['samples']}: "
            f"{row['ms_per_frame']:9.1f} ms  {row['fps']:7.2f} fps{floor}")
