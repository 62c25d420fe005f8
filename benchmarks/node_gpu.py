# SPDX-License-Identifier: Apache-2.0
"""The node over real DDS beside ``bench``: output rate and latency with a separate publisher.

Usage::

    python benchmarks/node_gpu.py --device cuda --sizes 320x240,640x480 --hz 10,30 --out DIR

For each input size (binned to the default camera's 320x240 working size: binning 1 or 2):

1. ``bench``: the same ``Reconstructor`` (method, steps, working size) timed in this process
   on the coded frame before any node runs (the rate the node could reach at best).
2. The node (``python -m codedap_depth.ros.node``) starts on ``--device`` in its own process.
3. For each rate, a publisher process (this script with ``--publish``) sends warm-up frames
   (frame_id ``warmup``: graph capture, excluded) at 1 Hz, then ``--seconds`` of frames at the
   rate (frame_id ``bench``, stamped with the publisher's wall clock).
4. This process subscribes ``depth/image`` and ``/diagnostics``: output rate (outputs over the
   span of their arrivals), latency (arrival - stamp: publish to depth received) p50/p95/max,
   frames published / out / dropped, the node's compute time and GPU memory.

Prints one table and writes ``node_gpu.json`` naming the device. Every rclpy process stays on
loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, ``ROS_DOMAIN_ID`` 91 unless set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "/bench"
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "91")


def coded_frame(width: int, height: int) -> np.ndarray:
    """rgb8 [height, width, 3] coded capture of the motorcycle scene (simulated at the working
    size, repeated up to the input size)."""
    from codedap_depth.image_codec import float_to_image
    from codedap_depth.optics import load_camera, synthesize_bank
    from codedap_depth.scenes import load_scene
    from codedap_depth.simulate import simulate_capture

    camera = load_camera(REPO / "config" / "camera.yaml")
    scene = load_scene("motorcycle", (camera.near, camera.far), (camera.width, camera.height))
    coded = simulate_capture(scene, synthesize_bank(camera), 0.01, seed=0)
    factor = width // camera.width
    return float_to_image(np.repeat(np.repeat(coded, factor, 0), factor, 1), "rgb8")


def publish(size: tuple[int, int], hz: float, seconds: float, warmup: float) -> None:
    """Publisher process: warm-up frames at 1 Hz, then ``seconds`` at ``hz``; prints the count
    of measured frames as JSON."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from codedap_depth.ros.image_conversion import array_to_imgmsg

    frame = coded_frame(*size)
    rclpy.init()
    node = Node("bench_publisher")
    pub = node.create_publisher(Image, f"{NAMESPACE}/image_raw",
                                QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)

    def send(frame_id: str) -> None:
        msg = array_to_imgmsg(frame, "rgb8")
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg.header.frame_id = frame_id
        pub.publish(msg)

    end = time.monotonic() + warmup
    while time.monotonic() < end:
        send("warmup")
        time.sleep(1.0)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        send("bench")
        sent += 1
        time.sleep(max(0.0, start + sent / hz - time.monotonic()))
    time.sleep(1.0)
    print(json.dumps({"published": sent}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


class Listener:
    """Arrival time and stamp of every ``depth/image`` and the latest diagnostics values."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        rclpy.init()
        self.node = Node("bench_listener")
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, float, float]] = []
        self.diagnostics: dict[str, str] = {}
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, f"{NAMESPACE}/depth/image", self._on_depth, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_depth(self, msg) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.arrivals.append((msg.header.frame_id, time.time(), stamp))

    def _on_diag(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                self.diagnostics.update({kv.key: kv.value for kv in status.values})

    def take(self) -> tuple[list[tuple[str, float, float]], dict[str, str]]:
        with self.lock:
            arrivals, self.arrivals = self.arrivals, []
            return arrivals, dict(self.diagnostics)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown()


def bench_ms(size: tuple[int, int], args: argparse.Namespace) -> float:
    """Median ms per frame of the node's reconstruction, binned input, in this process."""
    import torch

    from codedap_depth.image_codec import bin_image, image_to_float
    from codedap_depth.optics import load_camera, synthesize_bank
    from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

    bank = synthesize_bank(load_camera(REPO / "config" / "camera.yaml"))
    run = Reconstructor(bank, ReconstructionConfig(method=args.method, steps=args.steps,
                                                   device=args.device))
    frame = bin_image(image_to_float(coded_frame(*size), "rgb8"), size[0] // 320)
    times = []
    for _ in range(args.repeat + 1):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(frame)
        times.append((time.perf_counter() - start) * 1000)
    del run
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return float(np.median(times[1:]))


def start_node(binning: int, args: argparse.Namespace, out: Path) -> subprocess.Popen:
    """The node on ``args.device`` with config/params.yaml, the default camera and ``binning``
    (stopped by ``main``; the rosbags-based session helpers are not needed here)."""
    config = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    values = next(iter(config.values()))["ros__parameters"]
    values.update(camera_file=str(REPO / "config" / "camera.yaml"), method=args.method,
                  steps=args.steps, device=args.device, binning=binning)
    params = out / f"params_b{binning}.yaml"
    params.write_text(yaml.safe_dump(config))
    log = open(out / f"node_b{binning}.log", "w")  # noqa: SIM115 - held by the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "codedap_depth.ros.node", "--params", str(params),
             "--ros-args", "-r", f"__ns:={NAMESPACE}"], stdout=log, stderr=subprocess.STDOUT,
            env=os.environ.copy())
    finally:
        log.close()


def measure(listener: Listener, size: tuple[int, int], hz: float, args: argparse.Namespace
            ) -> dict:
    """One publisher run at ``hz``; the node's outputs for the measured frames."""
    listener.take()
    pub = subprocess.run(
        [sys.executable, __file__, "--publish", f"{size[0]}x{size[1]}", "--rate", str(hz),
         "--seconds", str(args.seconds), "--warmup", str(args.warmup)],
        capture_output=True, text=True, timeout=args.seconds + args.warmup + 120,
        env=os.environ.copy())
    if pub.returncode != 0:
        raise RuntimeError(f"publisher failed: {pub.stderr[-2000:]}")
    published = json.loads(pub.stdout.strip().splitlines()[-1])["published"]
    time.sleep(2.0)
    arrivals, diagnostics = listener.take()
    measured = sorted((t, t - s) for frame_id, t, s in arrivals if frame_id == "bench")
    latency = np.array([lat for _, lat in measured]) * 1000
    span = measured[-1][0] - measured[0][0] if len(measured) > 1 else float("nan")
    return {"size": f"{size[0]}x{size[1]}", "publish_hz": hz, "published": published,
            "out": len(measured), "dropped": published - len(measured),
            "rate_hz": (len(measured) - 1) / span if len(measured) > 1 else 0.0,
            "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
            "latency_p95_ms": float(np.percentile(latency, 95)) if len(latency) else None,
            "latency_max_ms": float(latency.max()) if len(latency) else None,
            "node_compute_ms": float(diagnostics.get("compute_ms", "nan")),
            "node_decode_ms": float(diagnostics.get("decode_ms", "nan")),
            "node_publish_ms": float(diagnostics.get("publish_ms", "nan")),
            "node_warmup_ms": float(diagnostics.get("warmup_ms", "nan")),
            "gpu_memory_mb": diagnostics.get("gpu_memory_mb"),
            "execution": diagnostics.get("execution")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--method", default="dfd-dps")
    parser.add_argument("--steps", type=int, default=None, help="default: the node's default")
    parser.add_argument("--sizes", default="320x240,640x480")
    parser.add_argument("--hz", default="10,30")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--publish", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        width, height = (int(v) for v in args.publish.split("x"))
        publish((width, height), args.rate, args.seconds, args.warmup)
        return
    from codedap_depth.evaluation import device_name
    from codedap_depth.pipeline import DEFAULT_STEPS

    args.steps = args.steps or DEFAULT_STEPS
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    listener = Listener()
    try:
        for size in sizes:
            ms = bench_ms(size, args)
            node = start_node(size[0] // 320, args, args.out)
            try:
                for hz in (float(v) for v in args.hz.split(",")):
                    row = measure(listener, size, hz, args) | {
                        "bench_ms": ms, "bench_hz": 1000 / ms}
                    row["node_vs_bench"] = row["rate_hz"] / min(row["bench_hz"], hz)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                node.terminate()
                node.wait(timeout=30)
    finally:
        listener.close()
    report = {"device": device_name(args.device), "method": args.method, "steps": args.steps,
              "rows": rows}
    (args.out / "node_gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['device']}, {args.method}, {args.steps} steps")
    print("| input | publish Hz | out Hz | bench Hz | node/bench | p50 ms | p95 ms | max ms | "
          "decode / compute / publish ms | published | out | dropped | GPU MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        latency = " | ".join(f"{r[k]:.0f}" if r[k] is not None else "-" for k in (
            "latency_p50_ms", "latency_p95_ms", "latency_max_ms"))
        print(f"| {r['size']} | {r['publish_hz']:.0f} | {r['rate_hz']:.1f} | {r['bench_hz']:.1f} "
              f"| {r['node_vs_bench']:.2f} | {latency} | {r['node_decode_ms']:.1f} / "
              f"{r['node_compute_ms']:.1f} / {r['node_publish_ms']:.1f} | {r['published']} | "
              f"{r['out']} | "
              f"{r['dropped']} | {r['gpu_memory_mb']} |")


if __name__ == "__main__":
    main()
