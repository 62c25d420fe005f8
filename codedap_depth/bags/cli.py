# SPDX-License-Identifier: Apache-2.0
"""``codedap-depth bag make|play|eval``: the bag tools' command line.

``make`` writes a demo bag (``bags.demo_bag``); ``play`` publishes a bag's image topic (and its
camera_info) into ROS 2 at the recorded rate, scaled, or at a fixed frame rate (rclpy lives in
``ros/player.py``); ``eval`` reconstructs every frame offline (``bags.evaluate``). ``play`` and
``--help`` import no torch (a test checks it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rosbags.rosbag2 import ReaderError, WriterError

from codedap_depth.arguments import parse_size
from codedap_depth.bags import demo_bag
from codedap_depth.bags.rosbag import STORAGES
from codedap_depth.optics import load_camera


def build_parser(action: str | None = None) -> argparse.ArgumentParser:
    """``codedap-depth bag make|play|eval``. The eval options (the method list and the node's
    output parameters come from modules that import torch) are added only when ``action`` is
    ``eval``, so ``bag play`` and ``bag --help`` import no torch."""
    parser = argparse.ArgumentParser(
        prog="codedap-depth bag",
        description="rosbag2 tools (sqlite3 and MCAP). Depths in metres, sizes WxH pixels, "
        "noise as the std of Gaussian noise on [0, 1] intensities.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("make", help="write a demo bag of coded frames with ground truth",
                          description=demo_bag.__doc__.split("\n\n")[0])
    make.add_argument("--out", type=Path, required=True, help="bag directory to create")
    make.add_argument("--storage", choices=sorted(STORAGES), default="sqlite3")
    make.add_argument("--frames", type=int, default=8)
    make.add_argument("--size", type=parse_size, default=(320, 240), help="WxH pixels")
    make.add_argument("--noise", type=float, default=0.01, help="sensor noise sigma")
    make.add_argument("--hz", type=float, default=5.0, help="frame rate of the stamps")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--camera", type=Path, help="camera YAML (default config/camera.yaml)")
    make.add_argument("--compressed", action="store_true",
                      help="frames as CompressedImage (PNG) on /camera/image_raw/compressed")

    play = sub.add_parser("play", help="publish a bag's image topic into ROS 2")
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", type=float, default=1.0,
                      help="playback speed factor on the recorded timing (as ros2 bag play -r)")
    play.add_argument("--hz", type=float, default=None,
                      help="publish at this fixed frame rate instead of the recorded timing")
    play.add_argument("--topic", default=None, help="image topic (default /camera/image_raw)")
    play.add_argument("--publish-as", default=None,
                      help="publish the images (and camera_info beside them) under this topic")
    play.add_argument("--wait", type=float, default=5.0,
                      help="seconds to wait for a subscriber before starting")
    play.add_argument("--loop", action="store_true", help="repeat until interrupted")

    ev = sub.add_parser("eval", help="reconstruct every frame offline; metrics + output bag")
    if action == "eval":
        _add_eval_arguments(ev)
    return parser


def _add_eval_arguments(ev: argparse.ArgumentParser) -> None:
    from codedap_depth.parameters import OUTPUT_PARAMETERS, spec
    from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

    ev.add_argument("bag", type=Path)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--method", choices=METHODS, default="dfd-dps")
    ev.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ev.add_argument("--samples", type=int, default=1)
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--binning", type=int, default=1)
    ev.add_argument("--psf", type=Path, help="PSF bank .npz (default: synthesised)")
    ev.add_argument("--camera", type=Path, help="camera YAML at the bag's resolution")
    ev.add_argument("--topic", default=None)
    ev.add_argument("--storage", choices=sorted(STORAGES), default=None)
    ev.add_argument("--max-frames", type=int, default=None)
    for parameter in spec():  # the node's output parameters, with its defaults
        if parameter.name in OUTPUT_PARAMETERS:
            unit = f" ({parameter.unit})" if parameter.unit else ""
            ev.add_argument(f"--{parameter.name.replace('_', '-')}", type=type(parameter.default),
                            default=parameter.default,
                            help=f"{parameter.description}{unit}; default {parameter.default}")


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``codedap-depth bag``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        if args.action == "make":
            camera = load_camera(args.camera) if args.camera else None
            made = demo_bag.make_demo_bag(
                args.out, storage=args.storage, frames=args.frames, size=args.size,
                noise=args.noise, hz=args.hz, seed=args.seed, camera=camera,
                compressed=args.compressed)
            print(f"wrote {made.path}: {made.frames} frames {made.size[0]}x{made.size[1]} "
                  f"({', '.join(sorted(set(made.scenes)))}), {args.storage}")
            return 0
        if args.action == "play":
            from codedap_depth.ros.player import play_bag

            result = play_bag(args.bag, rate=args.rate, hz=args.hz, topic=args.topic,
                              publish_as=args.publish_as, wait_s=args.wait, loop=args.loop)
            print(f"published {result.frames} frames in {result.seconds:.1f} s")
            return 0
        from codedap_depth.bags.evaluate import evaluate_bag
        from codedap_depth.outputs import OutputSettings
        from codedap_depth.pipeline import ReconstructionConfig

        config = ReconstructionConfig(method=args.method, steps=args.steps, samples=args.samples,
                                      device=args.device, seed=args.seed)
        start = time.perf_counter()
        outputs = OutputSettings(
            min_depth=args.min_depth, max_depth=args.max_depth,
            max_relative_uncertainty=args.max_relative_uncertainty,
            cloud_stride=args.cloud_stride, cloud=True)
        result = evaluate_bag(args.bag, args.out, config, binning=args.binning,
                              psf_file=args.psf, camera_file=args.camera, topic=args.topic,
                              storage=args.storage, max_frames=args.max_frames, outputs=outputs)
        means = ", ".join(f"{k} {v:.3f}" for k, v in result.mean.items())
        print(f"evaluated {result.frames} frames in {time.perf_counter() - start:.1f} s: "
              f"{means}\nwrote {result.output_bag}, {result.metrics_path}, {result.figure_path}")
        return 0
    except (OSError, ValueError, ReaderError, WriterError) as err:
        print(f"codedap-depth bag {args.action}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli_main())
