# SPDX-License-Identifier: Apache-2.0
"""``codedap-depth demo``: demo bag -> the ROS 2 node -> recorded outputs, summarised.

1. builds a demo bag (``bags.demo_bag.make_demo_bag``: a camera sweep over the motorcycle and
   layered scenes, 320x240 coded frames with ground truth), MCAP;
2. starts the node as its own process (``python -m codedap_depth.ros.node --params ...``) with
   binning 2 (160x120 working resolution) and a camera model matching it;
3. replays the bag into it over DDS and records every output into an MCAP bag;
4. writes ``figure.png`` (input, AIF, depth, uncertainty, ground truth, error),
   ``points.ply`` (the node's point cloud of the last frame), ``summary.json`` and prints the
   summary (frames in/out, latency, depth error).

The ROS side (player, recorder, node process) is in ``codedap_depth.ros.session``; this module
stays ROS-free and imports it only when run. Units: metres, milliseconds, pixels.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from codedap_depth.bags.demo_bag import make_demo_bag
from codedap_depth.bags.rosbag import read_frames, read_messages, stamp_ns
from codedap_depth.image_codec import bin_image, image_to_float, unpack_cloud
from codedap_depth.names import OUTPUT_TOPICS
from codedap_depth.optics import camera_for_size, camera_to_yaml
from codedap_depth.outputs import OutputSettings, frame_outputs
from codedap_depth.parameters import output_settings, settings_of
from codedap_depth.paths import share_file
from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

NAMESPACE = "/camera"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codedap-depth demo",
        description="Build a demo bag, run the ROS 2 node on it, record and summarise its "
        "outputs (figure.png, points.ply, summary.json, input_bag/, output_bag/, node.log).",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--method", choices=("auto", *METHODS),
                        default="auto",
                        help="auto: dfd-dps when the prior weights exist, else classical")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--frames", type=int, default=None,
                        help="frames in the bag (default 8; 4 for dfd-dps on a CPU)")
    parser.add_argument("--size", default="320x240", help="WxH of the bag's frames")
    parser.add_argument("--binning", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.01, help="sensor noise sigma")
    parser.add_argument("--hz", type=float, default=None,
                        help="frame rate recorded in the bag (default 1; 0.1 for dfd-dps on a "
                        "CPU)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    return parser


def _choose(method: str, device: str) -> tuple[str, str]:
    """``auto`` picks the product, dfd-dps, on any device when the prior weights load (else
    classical, said on stdout), and CUDA when it is available."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if method == "auto":
        method = "dfd-dps"
        try:
            from codedap_depth.prior import load_prior

            load_prior("cpu")
        except (FileNotFoundError, OSError, ValueError) as err:
            print(f"demo: prior weights unavailable ({err}); using classical")
            method = "classical"
    return method, device


def _pace(args: argparse.Namespace, method: str, device: str) -> tuple[int, float]:
    """Frames and bag rate: unless given, DFD-DPS on a CPU gets 4 frames 10 s apart (a frame
    takes several seconds on 2 cores, so a faster bag would only be dropped while busy)."""
    slow = method != "classical" and device == "cpu"
    frames = args.frames if args.frames is not None else (4 if slow else 8)
    hz = args.hz if args.hz is not None else (0.1 if slow else 1.0)
    return frames, hz


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``codedap-depth demo``; returns the exit status."""
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    out: Path = args.out
    width, height = (int(v) for v in args.size.lower().split("x"))
    method, device = _choose(args.method, args.device)
    args.frames, args.hz = _pace(args, method, device)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("input_bag", "output_bag"):
        shutil.rmtree(out / stale, ignore_errors=True)

    made = make_demo_bag(out / "input_bag", storage="mcap", frames=args.frames,
                         size=(width, height), noise=args.noise, hz=args.hz)
    print(f"demo: wrote {made.path} ({made.frames} frames {width}x{height}, "
          f"{' + '.join(dict.fromkeys(made.scenes))}) in {time.monotonic() - started:.1f} s")
    working = camera_for_size(made.camera, width // args.binning, height // args.binning)
    camera_file = out / "camera_working.yaml"
    camera_file.write_text(camera_to_yaml(working))
    params = yaml.safe_load(share_file("config/params.yaml").read_text())
    values = next(iter(params.values()))["ros__parameters"]
    values.update(camera_file=str(camera_file.resolve()), method=method, steps=args.steps,
                  samples=args.samples, device=device, binning=args.binning,
                  cpu_threads=0, min_depth=working.near, max_depth=working.far)
    # The outputs are reliable keep-last 1 (README, ROS 2 node). Over UDP a 600 kB cloud can
    # overflow the receive buffer and a lost sample is then only resent after a heartbeat, when
    # keep-last 1 has already replaced it; a recorder wants every frame, so deepen the
    # publishers' history through the QoS-override parameters, as a user would.
    values["qos_overrides"] = {
        f"{NAMESPACE}/{topic}": {"publisher": {"depth": 10}} for topic in OUTPUT_TOPICS
    }
    params_file = out / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    print(f"demo: node runs {method} on {device}, binning {args.binning} -> "
          f"{working.width}x{working.height} px")

    from codedap_depth.ros.session import run_node_session

    command = [sys.executable, "-m", "codedap_depth.ros.node", "--params", str(params_file),
               "--ros-args", "-r", f"__ns:={NAMESPACE}"]
    session = run_node_session(out / "input_bag", out / "output_bag", command, out / "node.log",
                               namespace=NAMESPACE, rate=args.rate,
                               progress=lambda text: print(f"demo: {text}"))
    summary = summarise(out, session, args.binning, method, device, args, working,
                        output_settings(settings_of(values)))
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    return 0 if summary["frames_out"] > 0 and session.node_returncode == 0 else 1


def summarise(out: Path, session, binning: int, method: str, device: str, args,
              working, outputs: OutputSettings) -> dict:
    """Match outputs to inputs by stamp, score depth against the ground truth and against the
    classical baseline run offline on the same binned frames (``working`` camera; its depth
    through the output stage with the node's ``outputs`` settings, as the node's), write
    figure.png and points.ply."""
    from codedap_depth.figures import panel_figure
    from codedap_depth.geometry import write_ply
    from codedap_depth.metrics import depth_metrics
    from codedap_depth.optics import synthesize_bank
    from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

    classical = Reconstructor(synthesize_bank(working), ReconstructionConfig(method="classical"))

    inputs = {f.stamp_ns: f for f in read_frames(out / "input_bag")}
    output_bag = out / "output_bag"
    depths = {f.stamp_ns: f.pixels for f in read_frames(output_bag, f"{NAMESPACE}/depth/image")}
    published = dict(session.played.published)
    arrived = {stamp: t for stamp, t in session.arrivals[f"{NAMESPACE}/depth/image"]}
    rows = []
    for stamp, depth in sorted(depths.items()):
        frame = inputs[stamp]
        gt = bin_image(frame.depth_gt, binning, skip_nan=True)
        metrics = depth_metrics(depth, gt)
        baseline = depth_metrics(
            frame_outputs(classical(bin_image(image_to_float(frame.pixels, frame.encoding),
                                              binning)), None, outputs).depth, gt)
        rows.append({"stamp_ns": stamp, "latency_ms": (arrived[stamp] - published[stamp]) * 1e3,
                     "depth_absrel": metrics.absrel, "depth_rmse_m": metrics.rmse_m,
                     "depth_mae_m": metrics.mae_m, "delta1": metrics.delta1,
                     "coverage": metrics.coverage, "classical_depth_absrel": baseline.absrel,
                     "classical_delta1": baseline.delta1})
    counts = {topic.removeprefix(f"{NAMESPACE}/"): len(a) for topic, a in session.arrivals.items()}
    diag = session.diagnostics
    summary = {
        "method": method, "device": device, "steps": args.steps, "samples": args.samples,
        "bag_frames": len(inputs),
        "frame_size": list(next(iter(inputs.values())).pixels.shape[1::-1]), "binning": binning,
        "frames_in": session.played.frames, "frames_out": len(rows),
        "node_frames_in": int(diag.get("frames_in", 0)),
        "node_dropped": int(diag.get("dropped_frames", 0)),
        "node_lost": int(diag.get("lost_frames", 0)),
        "node_bad": int(diag.get("bad_frames", 0)),
        "outputs": counts,
        "node_compute_ms_last": float(diag.get("compute_ms", "nan")),
        "node_exit_code": session.node_returncode,
    }
    if rows:
        for key in ("latency_ms", "depth_absrel", "depth_rmse_m", "depth_mae_m", "delta1",
                    "coverage", "classical_depth_absrel", "classical_delta1"):
            summary[f"mean_{key}"] = float(np.nanmean([r[key] for r in rows]))
        summary["max_latency_ms"] = float(max(r["latency_ms"] for r in rows))
        # the newest frame whose every output was recorded (a sample can be lost under load)
        complete = _stamps(out, "aif/image") & _stamps(out, "depth/uncertainty") & _stamps(
            out, "points")
        last = max((r["stamp_ns"] for r in rows if r["stamp_ns"] in complete), default=None)
        if last is None:
            raise RuntimeError("no frame had all of its outputs recorded: see node.log")
        _figure(out, inputs[last], depths[last], binning, panel_figure, f"{method} on {device}")
        summary["ply_points"] = _ply(out / "points.ply", last, write_ply)
    summary["rows"] = rows
    return summary


def _stamps(out: Path, topic: str) -> set[int]:
    """Header stamps (ns) recorded on the node's ``topic`` in the output bag."""
    return {stamp_ns(m) for _, m in read_messages(out / "output_bag", f"{NAMESPACE}/{topic}")}


def _frame_at(bag: Path, topic: str, stamp: int) -> np.ndarray:
    return next(f.pixels for f in read_frames(bag, topic) if f.stamp_ns == stamp)


def _figure(out: Path, frame, depth: np.ndarray, binning: int, panel_figure, ran: str) -> None:
    stamp, bag = frame.stamp_ns, out / "output_bag"
    aif = image_to_float(_frame_at(bag, f"{NAMESPACE}/aif/image", stamp), "rgb8")
    sigma = _frame_at(bag, f"{NAMESPACE}/depth/uncertainty", stamp)
    coded = bin_image(image_to_float(frame.pixels, frame.encoding), binning)
    gt = bin_image(frame.depth_gt, binning, skip_nan=True)
    panel_figure(
        [("coded input (binned)", coded, None), (f"all-in-focus ({ran})", aif, None),
         (f"depth ({ran})", depth, "m"), ("uncertainty", sigma, "m (std)"),
         ("depth GT", gt, "m"), ("|error|", np.abs(depth - gt), "m (abs)")],
        out / "figure.png", depth_limits=(0.5, 5.0),
    )


def _ply(path: Path, stamp: int, write_ply) -> int:
    """The node's cloud of frame ``stamp`` as PLY (finite points only)."""
    bag = path.parent / "output_bag"
    msg = next(m for _, m in read_messages(bag, f"{NAMESPACE}/points") if stamp_ns(m) == stamp)
    fields = unpack_cloud({f.name: f.offset for f in msg.fields}, msg.height, msg.width,
                          msg.point_step, msg.data, bool(msg.is_bigendian))
    xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=-1)
    bits = fields["rgb"]
    rgb = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1) / 255.0
    return write_ply(path, xyz, rgb)


def print_summary(summary: dict) -> None:
    print(
        f"demo summary: {summary['method']} on {summary['device']}, "
        f"{summary['frame_size'][0]}x{summary['frame_size'][1]} binned {summary['binning']}\n"
        f"  frames: {summary['frames_in']} published, node received {summary['node_frames_in']}"
        f", {summary['frames_out']} reconstructed, {summary['node_dropped']} dropped (busy), "
        f"{summary['node_lost']} lost in transport, {summary['node_bad']} bad\n"
        f"  outputs recorded: {summary['outputs']}"
    )
    if summary["frames_out"]:
        print(
            f"  latency (publish -> depth received): mean {summary['mean_latency_ms']:.0f} ms, "
            f"max {summary['max_latency_ms']:.0f} ms; node compute "
            f"{summary['node_compute_ms_last']:.0f} ms/frame\n"
            f"  depth vs ground truth: AbsRel {summary['mean_depth_absrel']:.3f}, RMSE "
            f"{summary['mean_depth_rmse_m']:.3f} m, MAE {summary['mean_depth_mae_m']:.3f} m, "
            f"delta1 {summary['mean_delta1']:.3f}, coverage {summary['mean_coverage']:.3f}\n"
            f"  classical on the same frames: AbsRel {summary['mean_classical_depth_absrel']:.3f}"
            f", delta1 {summary['mean_classical_delta1']:.3f}\n"
            f"  point cloud: {summary['ply_points']} points -> points.ply"
        )
    print(f"  wall time {summary.get('wall_seconds', float('nan')):.1f} s; node exit code "
          f"{summary['node_exit_code']}")


if __name__ == "__main__":
    sys.exit(main())
