# SPDX-License-Identifier: Apache-2.0
"""The ``codedap-depth`` command. Units: metres for depth, pixels for sizes, [0, 1] intensities."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from codedap_depth.paths import share_file

UNITS = (
    "Units: depths in metres; sizes in pixels (WxH) of the working resolution; noise sigma is "
    "the standard deviation of additive Gaussian noise on [0, 1] intensities."
)


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from err
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


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


def forward_to(module: str, function: str):
    """A handler that passes the remaining argv to ``module.function(argv) -> int``."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args.rest) or 0)

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codedap-depth",
        description="Metric depth and an all-in-focus image from one coded-aperture photo. "
        + UNITS,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    psf = sub.add_parser("psf", help="synthesise a PSF bank from a camera YAML",
                         description="Synthesise a PSF bank (format v1 .npz). " + UNITS)
    psf.add_argument("--camera", type=Path, default=None,
                     help="camera YAML (default: the package's config/camera.yaml)")
    psf.add_argument("--out", type=Path, required=True, help="output bank .npz")
    psf.add_argument("--figure", type=Path, help="also write a PNG of the bank")
    psf.set_defaults(handler=cmd_psf)

    sim = sub.add_parser(
        "simulate", help="render a coded capture of an RGB-D scene",
        description="Render a scene through a PSF bank (occlusion-aware), add noise, quantise to "
        "16 bits. Writes coded.png (16-bit), depth_gt.npy (float32 metres, NaN unknown), "
        "aif_gt.png, figure.png, capture.json. " + UNITS,
    )
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

    for name, module, function, text in (
        ("node", "codedap_depth.ros.node", "main", "run the ROS 2 node (--params FILE)"),
        ("bag", "codedap_depth.bags", "cli_main", "rosbag2 tools: make | play | eval"),
        ("demo", "codedap_depth.demo", "main", "bag -> node -> recorded outputs, in demo_out/"),
    ):
        forwarded = sub.add_parser(name, help=text, add_help=False)
        forwarded.add_argument("rest", nargs=argparse.REMAINDER)
        forwarded.set_defaults(handler=forward_to(module, function))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "camera", "unset") is None:
        args.camera = share_file("config/camera.yaml")
    if args.command == "simulate" and args.rgb is not None and args.depth is None:
        build_parser().error("--rgb needs --depth")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"codedap-depth {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
