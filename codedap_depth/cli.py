# SPDX-License-Identifier: Apache-2.0
"""The ``codedap-depth`` command. Units: metres for depth, pixels for sizes, [0, 1] intensities."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from codedap_depth.arguments import float_list, int_list, parse_size
from codedap_depth.paths import share_file

UNITS = (
    "Units: depths in metres; sizes in pixels (WxH) of the working resolution; noise sigma is "
    "the standard deviation of additive Gaussian noise on [0, 1] intensities."
)


def cmd_psf(args: argparse.Namespace) -> int:
    from codedap_depth.figures import bank_figure
    from codedap_depth.optics import load_camera, save_bank, synthesize_bank

    camera = load_camera(args.camera)
    bank = synthesize_bank(camera)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_bank(bank, args.out)
    blur = camera.blur_diameter_px(bank.depths.astype(np.float64))
    near, far = bank.depths[0], bank.depths[-1]
    print(f"wrote {args.out}: {bank.num_depths} layers {near:.2f}-{far:.2f} m, "
          f"PSF {bank.size} px, blur {blur[0]:.1f}-{blur[-1]:.1f} px")
    if args.figure:
        bank_figure(bank, args.figure, blur)
        print(f"wrote {args.figure}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from codedap_depth.figures import panel_figure
    from codedap_depth.imageio import write_png8, write_png16
    from codedap_depth.optics import load_bank
    from codedap_depth.scenes import load_scene, scene_from_files
    from codedap_depth.simulate import simulate_capture

    bank = load_bank(args.psf)
    if args.scene:
        depth_range = (float(bank.depths[0]), float(bank.depths[-1]))
        scene = load_scene(args.scene, depth_range, args.size)
    else:
        scene = scene_from_files(args.rgb, args.depth, args.size)
    coded = simulate_capture(scene, bank, args.noise, args.seed, args.photons)
    args.out.mkdir(parents=True, exist_ok=True)
    write_png16(args.out / "coded.png", coded)
    np.save(args.out / "depth_gt.npy", scene.depth)
    write_png8(args.out / "aif_gt.png", scene.rgb)
    limits = (float(bank.depths[0]), float(bank.depths[-1]))
    panel_figure(
        [
            ("all-in-focus (GT)", scene.rgb, None),
            (f"coded capture, sigma={args.noise}", coded, None),
            ("depth GT", scene.depth, "m"),
        ],
        args.out / "figure.png",
        depth_limits=limits,
    )
    meta = {"scene": scene.name, "psf": str(args.psf), "noise_sigma": args.noise,
            "photons": args.photons, "seed": args.seed, "size": list(args.size)}
    (args.out / "capture.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote coded.png, depth_gt.npy, aif_gt.png, figure.png to {args.out}")
    return 0


def intrinsics(args: argparse.Namespace, fx_bank: float | None, width: int, height: int):
    """3x3 K from --fx/--fy/--cx/--cy, else the bank's focal length with a centred principal
    point; None when neither gives a focal length."""
    fx = args.fx if args.fx is not None else fx_bank
    if fx is None:
        return None
    fy = args.fy if args.fy is not None else fx
    cx = args.cx if args.cx is not None else (width - 1) / 2
    cy = args.cy if args.cy is not None else (height - 1) / 2
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from codedap_depth.evaluation import device_name, metrics_row, write_reconstruction
    from codedap_depth.imageio import read_image
    from codedap_depth.optics import load_bank
    from codedap_depth.pipeline import STEPLESS_METHODS, ReconstructionConfig, Reconstructor

    bank = load_bank(args.psf)
    coded = read_image(args.image)
    config = ReconstructionConfig(method=args.method, steps=args.steps, samples=args.samples,
                                  device=args.device, seed=args.seed, noise_sigma=args.noise_sigma)
    known = None if args.known_depth is None else load_depth_map(args.known_depth)
    try:
        rec = Reconstructor(bank, config)(coded, known_depth=known)
    except ValueError as err:
        if known is None:
            raise
        raise ValueError(f"{args.known_depth}: {err}") from err
    gt_depth = None if args.gt_depth is None else np.load(args.gt_depth, allow_pickle=False)
    gt_aif = None if args.gt_aif is None else read_image(args.gt_aif)
    height, width = coded.shape[:2]
    K = intrinsics(args, bank.fx, width, height)
    limits = (float(bank.depths[0]), float(bank.depths[-1]))
    written = write_reconstruction(args.out, coded, rec, K, limits, gt_depth)
    if K is None:
        print("points.ply not written: the bank has no focal_length/pixel_pitch; pass --fx",
              file=sys.stderr)
    summary = {"image": str(args.image), "method": args.method, "noise_sigma": rec.noise_sigma,
               "steps": 0 if args.method in STEPLESS_METHODS else args.steps,
               "samples": 1 if args.method in STEPLESS_METHODS else args.samples,
               **metrics_row(rec, gt_depth, gt_aif), "seconds": rec.seconds,
               "device": device_name(args.device)}
    if gt_depth is not None or gt_aif is not None:
        (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        written.append("metrics.json")
    finite = rec.depth[np.isfinite(rec.depth)]
    print(f"{args.method}: {width}x{height} px in {rec.seconds:.2f} s on {summary['device']}, "
          f"depth {finite.min():.2f}-{finite.max():.2f} m")
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


def load_depth_map(path: Path) -> np.ndarray:
    """A ``.npy`` depth map in metres (no pickle); ValueError names the file."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npy depth map ({err})") from err


def cmd_eval(args: argparse.Namespace) -> int:
    from codedap_depth.evaluation import SUITES, parse_methods, run_eval
    from codedap_depth.optics import load_bank, load_camera, synthesize_bank

    scenes, size = SUITES[args.suite]
    size = args.size or size
    bank = load_bank(args.psf) if args.psf else synthesize_bank(load_camera(args.camera))
    rows = run_eval(bank, scenes, size, parse_methods(args.methods, args.steps), args.noise,
                    list(range(args.seeds)), args.samples, args.device, args.out,
                    figures=not args.no_figures)
    print((args.out / "results.md").read_text())
    print(f"{len(rows)} rows -> {args.out / 'results.json'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from codedap_depth.optics import load_camera
    from codedap_depth.prior import load_prior
    from codedap_depth.tools.bench import run_bench

    result = run_bench(load_camera(args.camera), load_prior(args.device), args.device,
                       args.sizes, args.steps, args.samples, args.cg, args.quality_steps,
                       args.out, tuple(args.parts), args.seeds, args.reference_steps,
                       tuple(args.quality_scenes))
    print(f"{result['device']}: wrote {args.out / 'bench.json'}")
    return 0


#: Subcommands that parse their own arguments: name -> (module, function, help).
FORWARDED = {
    "node": ("codedap_depth.ros.node", "main", "run the ROS 2 node (--params FILE)"),
    "bag": ("codedap_depth.bags.cli", "cli_main", "rosbag2 tools: make | play | eval"),
    "demo": ("codedap_depth.demo", "main", "bag -> node -> recorded outputs, in demo_out/"),
}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _add_psf(psf: argparse.ArgumentParser) -> None:
    psf.description = "Synthesise a PSF bank (format v1 .npz). " + UNITS
    psf.add_argument("--camera", type=Path, default=None,
                     help="camera YAML (default: the package's config/camera.yaml)")
    psf.add_argument("--out", type=Path, required=True, help="output bank .npz")
    psf.add_argument("--figure", type=Path, help="also write a PNG of the bank")
    psf.set_defaults(handler=cmd_psf)


def _add_simulate(sim: argparse.ArgumentParser) -> None:
    sim.description = (
        "Render a scene through a PSF bank (occlusion-aware), add noise, quantise to "
        "16 bits. Writes coded.png (16-bit), depth_gt.npy (float32 metres, NaN unknown), "
        "aif_gt.png, figure.png, capture.json. " + UNITS)
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--scene", choices=["motorcycle", "aloe", "layered", "slanted"])
    source.add_argument("--rgb", type=Path, help="all-in-focus image (with --depth)")
    sim.add_argument("--depth", type=Path, help=".npy depth map in metres (with --rgb)")
    sim.add_argument("--psf", type=Path, required=True, help="PSF bank .npz")
    sim.add_argument("--noise", type=float, required=True,
                     help="Gaussian noise sigma on [0,1] intensities (e.g. 0.01)")
    sim.add_argument("--photons", type=float, default=None,
                     help="add Poisson shot noise for this full-well photon count")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--size", type=parse_size, default=(320, 240), help="WxH pixels")
    sim.add_argument("--out", type=Path, required=True)
    sim.set_defaults(handler=cmd_simulate)


def _add_reconstruct(rec: argparse.ArgumentParser) -> None:
    from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

    rec.description = (
        "Reconstruct one coded photo. Writes depth.npy (float32 metres, NaN "
        "invalid), uncertainty.npy (metres), aif.png, points.ply (metric, coloured), figure.png "
        "and, with ground truth, metrics.json. " + UNITS)
    rec.add_argument("image", type=Path, help="coded photo (8/16-bit PNG, grey or RGB)")
    rec.add_argument("--psf", type=Path, required=True, help="PSF bank .npz (format v1)")
    rec.add_argument("--method", choices=METHODS, default="dfd-dps",
                     help="unet: the U-Net regressor, trained for config/camera.yaml only")
    rec.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler DDIM steps")
    rec.add_argument("--samples", type=int, default=1,
                     help="posterior samples (their spread adds to the uncertainty)")
    rec.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--noise-sigma", type=float, default=None,
                     help="noise std on [0,1] intensities (default: estimated from the photo)")
    rec.add_argument("--known-depth", type=Path, default=None,
                     help="depth map .npy (float metres, NaN = unknown) from another sensor, "
                     "same size as the photo: non-blind deconvolution, only the AIF is "
                     "estimated (dfd-dps)")
    rec.add_argument("--gt-depth", type=Path, help="ground-truth depth .npy (metres)")
    rec.add_argument("--gt-aif", type=Path, help="ground-truth all-in-focus image")
    for axis in ("fx", "fy", "cx", "cy"):
        rec.add_argument(f"--{axis}", type=float, default=None,
                         help=f"intrinsic {axis} in pixels (default: from the bank / centred)")
    rec.add_argument("--out", type=Path, required=True)
    rec.set_defaults(handler=cmd_reconstruct)


def _add_eval(ev: argparse.ArgumentParser) -> None:
    from codedap_depth.pipeline import DEFAULT_STEPS

    ev.description = (
        "Simulate captures of the evaluation scenes, reconstruct with every method "
        "at every noise level and seed, and write results.json, results.md and figures. " + UNITS)
    ev.add_argument("--suite", choices=["quick", "standard", "all", "heldout"],
                    default="standard", help="all: the development set; heldout: the real "
                    "sensor-depth scenes (tools/fetch_heldout.py fetches their data)")
    ev.add_argument("--methods", default=f"dfd-dps:{DEFAULT_STEPS},dps:{DEFAULT_STEPS},classical",
                    help="comma list of METHOD[:STEPS]")
    ev.add_argument("--noise", type=float_list, default=[0.005, 0.01, 0.02, 0.05],
                    help="comma list of noise sigmas")
    ev.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    ev.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps for bare names")
    ev.add_argument("--samples", type=int, default=1)
    ev.add_argument("--size", type=parse_size, default=None, help="WxH (default: the suite's)")
    ev.add_argument("--psf", type=Path, default=None, help="PSF bank (default: --camera's)")
    ev.add_argument("--camera", type=Path, default=None, help="camera YAML for the bank")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--no-figures", action="store_true",
                    help="write results.json / results.md only (the figures take much of a "
                         "GPU run's time)")
    ev.set_defaults(handler=cmd_eval)


def _add_bench(bench: argparse.ArgumentParser) -> None:
    from codedap_depth.tools.bench import PARTS, QUALITY_SCENES

    bench.description = (
        "Time the DFD-DPS reconstruction over frame sizes, steps and samples, "
        "break it into stages, compare with the network's FLOP floor, and plot quality "
        "against steps. " + UNITS)
    bench.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    bench.add_argument("--camera", type=Path, default=None, help="camera YAML")
    bench.add_argument("--sizes", type=lambda s: [parse_size(v) for v in s.split(",")],
                       default=[(256, 256), (512, 512), (320, 240)], help="WxH list")
    bench.add_argument("--steps", type=int_list, default=[10, 20, 50, 1000])
    bench.add_argument("--samples", type=int_list, default=[1, 4])
    bench.add_argument("--cg", type=int_list, default=[4, 10],
                       help="CG iterations of the image step to compare")
    bench.add_argument("--quality-steps", type=int_list, default=[5, 10, 20, 50])
    bench.add_argument("--reference-steps", type=int, default=1000,
                       help="the step count quality is compared with")
    bench.add_argument("--seeds", type=int, default=3, help="seeds per quality point")
    bench.add_argument("--quality-scenes", type=lambda s: s.split(","),
                       default=list(QUALITY_SCENES), help="comma list of evaluation scenes")
    bench.add_argument("--parts", type=lambda s: s.split(","), default=list(PARTS),
                       help=f"comma list of {','.join(PARTS)}")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results/bench"))
    bench.set_defaults(handler=cmd_bench)


#: Subcommands parsed here: name -> (help, adds its arguments). A command's arguments are added
#: only when it is the one run, so ``--help`` imports no torch (a test checks it).
COMMANDS = {
    "psf": ("synthesise a PSF bank from a camera YAML", _add_psf),
    "simulate": ("render a coded capture of an RGB-D scene", _add_simulate),
    "reconstruct": ("depth + all-in-focus image from one coded photo", _add_reconstruct),
    "eval": ("all methods x noise levels x seeds on simulated scenes", _add_eval),
    "bench": ("speed and quality benchmark (GPU); prints tables, writes JSON", _add_bench),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``codedap-depth`` parser; ``command``'s arguments are added (the others list only
    their help line)."""
    parser = argparse.ArgumentParser(
        prog="codedap-depth",
        description="Metric depth and an all-in-focus image from one coded-aperture photo. "
        + UNITS,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, add_arguments) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        if name == command:
            add_arguments(command_parser)
    for name, (_, _, text) in FORWARDED.items():
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; see main()
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:
        import importlib

        module, function, _ = FORWARDED[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if getattr(args, "camera", "unset") is None:
        args.camera = share_file("config/camera.yaml")
    if args.command == "simulate" and args.rgb is not None and args.depth is None:
        parser.error("--rgb needs --depth")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"codedap-depth {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
