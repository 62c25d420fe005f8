# SPDX-License-Identifier: Apache-2.0
"""Speed and quality benchmark of the reconstruction (``codedap-depth bench``).

Measures, on one device, in one run (each part optional):

* ``speed``: ms per frame and frames per second over frame sizes x steps x posterior samples x
  CG iterations, on the path the node takes (CUDA graph on CUDA), plus the eager path for
  comparison; the network's FLOP floor against the card's measured bf16 matrix rate.
* ``stages``: ms per frame in each stage (network, image step, depth evidence, warm start, host
  work), each stage timed on its own (graph-replayed on CUDA).
* ``layers``: scaling with the number of depth layers.
* ``quality``: depth AbsRel and AIF PSNR against steps and CG iterations, over seeds, relative
  to the same sampler at ``reference_steps`` (1000); writes ``quality_vs_steps.png``.

Prints tables and writes ``bench.json`` (with the device name).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from codedap_depth.baselines import ClassicalSolver
from codedap_depth.consistency import depth_from_image, solve_image
from codedap_depth.evaluation import device_name
from codedap_depth.forward import LayeredBlur
from codedap_depth.graphed import CapturedCall
from codedap_depth.metrics import depth_metrics, psnr
from codedap_depth.optics import Camera, PSFBank, synthesize_bank
from codedap_depth.pipeline import ReconstructionConfig, Reconstructor
from codedap_depth.prior import Prior, to_prior_range
from codedap_depth.sampler import SamplerConfig, depth_refit_start
from codedap_depth.scenes import load_scene
from codedap_depth.simulate import simulate_capture

PARTS = ("speed", "stages", "layers", "quality")
QUALITY_SCENES = ("motorcycle", "layered", "aloe")


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


def stage_ms(fn: Callable[..., object], *args: torch.Tensor, repeat: int = 5) -> float:
    """Median ms of ``fn(*args)``: replayed from a CUDA graph on CUDA, eager on the CPU."""
    device = args[0].device
    call = CapturedCall(fn, *args) if device.type == "cuda" else fn
    return timed(lambda: call(*args), device, repeat)


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

    x = torch.randn(samples, 3, height, width, device=prior.device)
    t = torch.full((samples,), 500, device=prior.device, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        prior.eps(x, t)
    return float(counter.get_total_flops())


def run_bench(
    camera: Camera,
    prior: Prior,
    device: str,
    sizes: list[tuple[int, int]],
    steps_list: list[int],
    samples_list: list[int],
    cg_list: list[int],
    quality_steps: list[int],
    out: Path,
    parts: tuple[str, ...] = PARTS,
    seeds: int = 3,
    reference_steps: int = 1000,
    quality_scenes: tuple[str, ...] = QUALITY_SCENES,
) -> dict:
    """Run the chosen ``parts`` and write ``bench.json`` (and the quality PNG) to ``out``."""
    dev = torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": device_name(device), "torch": torch.__version__,
                    "bf16_matmul_tflops": matmul_tflops(dev)}
    if "speed" in parts:
        result["speed"] = speed_table(camera, prior, device, sizes, steps_list, samples_list,
                                      cg_list, result["bf16_matmul_tflops"])
    if "stages" in parts:
        result["stages"] = stage_breakdown(camera, prior, sizes[0])
        print(json.dumps(result["stages"], indent=1), flush=True)
    if "layers" in parts:
        result["layers"] = layer_scaling(camera, prior, sizes[0])
        print(json.dumps(result["layers"]), flush=True)
    if "quality" in parts:
        result["quality"] = quality_vs_steps(camera, prior, device, quality_steps, cg_list,
                                             seeds, reference_steps, quality_scenes, out)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def reconstructor(bank: PSFBank, prior: Prior, device: str, steps: int, samples: int = 1,
                  cg: int | None = None, graph: bool = True) -> Reconstructor:
    """A dfd-dps Reconstructor with ``cg`` CG iterations (default: the shipped one)."""
    sampler = SamplerConfig() if cg is None else SamplerConfig(cg_iterations=cg)
    return Reconstructor(bank, ReconstructionConfig(steps=steps, samples=samples, device=device,
                                                    cuda_graph=graph, sampler=sampler), prior)


def speed_table(
    camera: Camera, prior: Prior, device: str, sizes: list[tuple[int, int]],
    steps_list: list[int], samples_list: list[int], cg_list: list[int], rate: float | None,
) -> list[dict]:
    """ms per frame over sizes x samples x CG iterations x steps; the reference step count
    runs eagerly at the smallest size only, and each size also runs eagerly at 20 steps."""
    dev = torch.device(device)
    rows = []
    for width, height in sizes:
        bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height))
        scene = load_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])),
                           (width, height))
        coded = simulate_capture(scene, bank, 0.01)
        for samples in samples_list:
            flops = network_flops(prior, height, width, samples)
            runs = [(steps, cg, steps < 1000) for cg in cg_list for steps in steps_list]
            if dev.type == "cuda":
                runs.append((20, cg_list[0], False))  # the eager path, for comparison
            for steps, cg, graph in runs:
                if steps >= 1000 and (width * height > 256 * 256 or samples > 1):
                    continue
                run = reconstructor(bank, prior, device, steps, samples, cg, graph)
                slow = steps >= 1000  # same kernels as the shorter runs: no warm-up
                ms = timed(lambda r=run, c=coded: r(c), dev, repeat=1 if slow else 5,
                           warmup=not slow)
                floor_ms = None if rate is None else flops * steps / (rate * 1e12) * 1000
                row = {"size": f"{width}x{height}", "steps": steps, "samples": samples,
                       "cg_iterations": cg, "path": "graph" if run.graphed else "eager",
                       "ms_per_frame": ms, "fps": 1000 / ms,
                       "network_gflop_per_step": flops / 1e9, "network_floor_ms": floor_ms,
                       "ratio_to_floor": None if floor_ms is None else ms / floor_ms}
                rows.append(row)
                print(_format_row(row), flush=True)
    return rows


def stage_breakdown(camera: Camera, prior: Prior, size: tuple[int, int]) -> dict[str, float]:
    """ms per frame in each stage of the shipped configuration (default steps and CG
    iterations, one sample), each stage timed alone; ``device_ms`` is the frame's device work
    (``Reconstructor.device_call``), ``host_ms`` the frame time left over by it (noise estimate
    and draws, padding, copies, numpy conversion). The stages run on their own forward model
    and classical solver, built as the pipeline builds them."""
    device = prior.device
    width, height = size
    bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height))
    config = ReconstructionConfig(device=str(device))
    run = Reconstructor(bank, config, prior)
    coded = simulate_capture(load_scene("layered", (float(bank.depths[0]),
                                                    float(bank.depths[-1])), size), bank, 0.01)
    frame = timed(lambda: run(coded), device)
    steps, sampler = config.steps, config.sampler
    model = LayeredBlur(bank, height, width, occlusion=sampler.occlusion).to(device)
    solver = ClassicalSolver(bank, height, width, device=device)
    y = torch.from_numpy(coded.transpose(2, 0, 1).copy())[None].to(device)
    x = torch.rand(1, 3, height, width, device=device)
    inv = torch.full((1, 1, height, width), 1.0, device=device)
    valid, sigma = torch.ones_like(y[:, :1]), torch.tensor(0.01, device=device)
    t = torch.full((1,), 500, device=device, dtype=torch.long)
    refits = steps - depth_refit_start(steps, sampler)
    with torch.no_grad():
        stages = {
            "frame_ms": frame,
            "device_ms": timed(run.device_call(coded), device),
            "network_ms": stage_ms(lambda a, b: prior.eps(to_prior_range(a), b), x, t) * steps,
            "image_step_ms": stage_ms(lambda a, b: solve_image(
                model.at(b), y, valid, a, 1.0, 0.0, sampler.cg_iterations, a
            ).image, x, inv) * steps,
            "depth_step_ms": stage_ms(lambda a: depth_from_image(
                model, y, a, sampler.depth_radius, sampler.depth_eps), x) * refits,
            "warm_start_ms": stage_ms(lambda a, s: solver(a[0], s), y, sigma),
        }
    stages["host_ms"] = stages["frame_ms"] - stages["device_ms"]
    return {"size": f"{width}x{height}", "steps": steps,
            "cg_iterations": sampler.cg_iterations, **stages}


def layer_scaling(camera: Camera, prior: Prior, size: tuple[int, int]) -> list[dict]:
    """ms per frame (shipped steps and CG iterations) for 8, 16 and 32 layers."""
    rows = []
    width, height = size
    for layers in (8, 16, 32):
        bank = synthesize_bank(dataclasses.replace(camera, width=width, height=height,
                                                   num_depths=layers))
        coded = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
        run = Reconstructor(bank, ReconstructionConfig(device=str(prior.device)), prior)
        rows.append({"size": f"{width}x{height}", "layers": layers,
                     "ms_per_frame": timed(lambda r=run, c=coded: r(c), prior.device)})
    return rows


def quality_vs_steps(
    camera: Camera, prior: Prior, device: str, steps_list: list[int], cg_list: list[int],
    seeds: int, reference_steps: int, scenes: tuple[str, ...], out: Path,
) -> list[dict]:
    """Depth AbsRel, AIF PSNR and ms per frame against steps and CG iterations on
    ``scenes`` (noise 0.01, camera size, mean over seeds), each relative to the
    sampler at ``reference_steps`` (default CG, eager, same seeds); writes
    quality_vs_steps.png."""
    bank = synthesize_bank(camera)
    rows = []
    for name in scenes:
        scene = load_scene(name, (float(bank.depths[0]), float(bank.depths[-1])),
                           (camera.width, camera.height))
        coded = simulate_capture(scene, bank, 0.01)
        runs = [(reference_steps, None, False)] + [(s, cg, True) for cg in cg_list
                                                   for s in steps_list]
        reference = None
        for steps, cg, graph in runs:
            run = reconstructor(bank, prior, device, steps, 1, cg, graph)
            recs = [run(coded, seed=seed) for seed in range(seeds)]
            ms = (timed(lambda r=run, c=coded: r(c), torch.device(device), 3, warmup=False)
                  if graph else 1000 * float(np.mean([r.seconds for r in recs])))
            row = {"scene": name, "steps": steps, "cg_iterations": run.config.sampler.
                   cg_iterations, "path": "graph" if run.graphed else "eager",
                   "ms_per_frame": ms,
                   "depth_absrel": float(np.mean([depth_metrics(r.depth, scene.depth).absrel
                                                  for r in recs])),
                   "aif_psnr_db": float(np.mean([psnr(r.aif, scene.rgb) for r in recs]))}
            reference = reference or row
            row["absrel_vs_reference"] = row["depth_absrel"] / reference["depth_absrel"]
            rows.append(row)
            print(f"{name:>10} steps {steps:>4} cg {row['cg_iterations']:>2} "
                  f"{row['ms_per_frame']:8.1f} ms  AbsRel {row['depth_absrel']:.3f} "
                  f"(x{row['absrel_vs_reference']:.2f})  AIF {row['aif_psnr_db']:.2f} dB",
                  flush=True)
    title = (f"DFD-DPS quality vs steps ({device_name(device)}, noise 0.01, "
             f"{camera.width}x{camera.height}, mean of {seeds} seeds)")
    plot_quality(rows, scenes, reference_steps, title, out / "quality_vs_steps.png")
    return rows


def plot_quality(rows: list[dict], scenes: tuple[str, ...], reference_steps: int, title: str,
                 path: Path) -> None:
    """AbsRel (relative to the reference) and AIF PSNR against steps, one line per scene and
    CG iteration count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in scenes:
        for cg in sorted({r["cg_iterations"] for r in rows if r["steps"] != reference_steps}):
            sel = [r for r in rows if r["scene"] == name and r["cg_iterations"] == cg
                   and r["steps"] != reference_steps]
            if not sel:
                continue
            label = f"{name}, CG {cg}"
            axes[0].plot([r["steps"] for r in sel], [r["absrel_vs_reference"] for r in sel],
                         "o-", label=label)
            axes[1].plot([r["steps"] for r in sel], [r["aif_psnr_db"] for r in sel], "o-",
                         label=label)
    axes[0].axhline(1.1, color="k", ls="--", lw=0.8, label="reference x 1.1")
    steps = sorted({r["steps"] for r in rows if r["steps"] != reference_steps})
    for ax, label in zip(axes, (f"AbsRel / AbsRel at {reference_steps} steps",
                                "AIF PSNR, dB"), strict=True):
        ax.set_xscale("log")
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("DDIM steps")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _format_row(row: dict) -> str:
    floor = "" if row["network_floor_ms"] is None else (
        f"  floor {row['network_floor_ms']:.2f} ms (x{row['ratio_to_floor']:.0f})")
    return (f"{row['size']:>8} {row['path']:>5} steps {row['steps']:>4} cg "
            f"{row['cg_iterations']:>2} samples {row['samples']}: "
            f"{row['ms_per_frame']:9.1f} ms  {row['fps']:7.2f} fps{floor}")
