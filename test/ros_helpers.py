# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the tests that run the depth node as its own process over real DDS: a small
camera model, the node's parameter file, starting/stopping the process, and ``Probe`` (a node in
the test process that publishes frames and collects the outputs)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from codedap_depth.names import OUTPUT_TOPICS

REPO = Path(__file__).resolve().parents[1]
NS = "/rt"  # the default namespace of the node under test
RAW = (128, 96)  # width, height of the published frames
WORK = (64, 48)  # after binning 2
MIN_DEPTH, MAX_DEPTH = 0.5, 2.5
K_RAW = np.array([[200.0, 0.0, 63.5], [0.0, 200.0, 47.5], [0.0, 0.0, 1.0]])
OUTPUTS = tuple(OUTPUT_TOPICS)
CAMERA_YAML = """\
focal_length: 0.016
f_number: 2.0
focus_distance: 0.45
pixel_pitch: {pitch}
width: {width}
height: {height}
near: 0.5
far: 5.0
num_depths: 8
psf_size: 9
"""




def write_setup(tmp: Path, **params) -> dict[str, Path]:
    """Camera YAMLs (raw 128x96 and working 64x48) and a params.yaml (config/params.yaml with a
    64x48 camera, classical method, binning 2, 1 CPU thread, then ``params``) under ``tmp``."""
    files = {}
    for name, (width, height) in (("raw", RAW), ("work", WORK)):
        files[name] = tmp / f"camera_{name}.yaml"
        pitch = 15e-6 * 320 / width
        files[name].write_text(CAMERA_YAML.format(pitch=pitch, width=width, height=height))
    config = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    values = next(iter(config.values()))["ros__parameters"]
    values.update(camera_file=str(files["work"]), method="classical", binning=2, cpu_threads=1,
                  min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    values.update(params)
    files["params"] = tmp / "params.yaml"
    files["params"].write_text(yaml.safe_dump(config))
    files["log"] = tmp / "node.log"
    return files


def coded_capture(camera_yaml: Path) -> np.ndarray:
    """A simulated coded capture of the motorcycle scene, rgb8 [96, 128, 3]."""
    from codedap_depth.image_codec import float_to_image
    from codedap_depth.optics import load_camera, synthesize_bank
    from codedap_depth.scenes import load_scene
    from codedap_depth.simulate import simulate_capture

    camera = load_camera(camera_yaml)
    scene = load_scene("motorcycle", (camera.near, camera.far), RAW)
    return float_to_image(simulate_capture(scene, synthesize_bank(camera), 0.01, 0), "rgb8")


def start_node(files: dict[str, Path], ns: str = NS, *args: str,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m codedap_depth.ros.node --params FILE [args] --ros-args -r __ns:=ns``, with its
    output in ``files["log"]`` and ``env`` added to this process's environment; it gets SIGTERM
    if this process dies."""
    from codedap_depth.ros.session import exit_with_parent

    log = open(files["log"], "w")  # noqa: SIM115 - the child holds it; closed when we return
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "codedap_depth.ros.node", "--params", str(files["params"]),
             *args, "--ros-args", "-r", f"__ns:={ns}"],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | (env or {}),
            preexec_fn=exit_with_parent)  # no node outlives a killed test run
    finally:
        log.close()


def stop_node(proc: subprocess.Popen, files: dict[str, Path]) -> None:
    """SIGINT; the node must exit cleanly (status 0)."""
    from codedap_depth.ros.session import stop_process

    stop_process(proc)
    assert proc.returncode == 0, files["log"].read_text()[-3000:]


class Probe:
    """Publishes frames to the node and collects its outputs (reliable subscribers)."""

    def __init__(self, ros, ns: str = NS, *, compressed: bool = False,
                 best_effort: bool = False, log_path: Path | None = None) -> None:
        """Args: ``compressed`` publishes CompressedImage on ``image_raw/compressed``;
        ``best_effort`` makes the image publisher (as some camera drivers) and the output
        subscriptions best effort (these match reliable and best-effort publishers)."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        self.ns, self.log_path = ns, log_path
        self.node = ros.add(Node("probe", context=ros.context))
        history = QoSProfile(depth=100)
        image_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT
                               if best_effort else ReliabilityPolicy.RELIABLE)
        kind, topic = (CompressedImage, "image_raw/compressed") if compressed else \
            (Image, "image_raw")
        self.image_pub = self.node.create_publisher(kind, f"{ns}/{topic}", image_qos)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{ns}/camera_info", history)
        self.lock = threading.Condition()
        self.received: dict[str, list] = {topic: [] for topic in OUTPUTS}
        self.diagnostics: list[dict[str, str]] = []
        types = (Image, Image, Image, CameraInfo, CameraInfo, PointCloud2)
        for topic, kind in zip(OUTPUTS, types, strict=True):
            self.node.create_subscription(kind, f"{ns}/{topic}",
                                          lambda msg, t=topic: self._store(t, msg), image_qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, history)
        self.params = AsyncParameterClient(self.node, f"{ns}/codedap_depth")

    def _store(self, topic: str, msg) -> None:
        with self.lock:
            self.received[topic].append(msg)
            self.lock.notify_all()

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("codedap_depth"):
                with self.lock:
                    values = {kv.key: kv.value for kv in status.values}
                    values["_level"] = int.from_bytes(status.level, "little")
                    values["_message"] = status.message
                    self.diagnostics.append(values)
                    self.lock.notify_all()

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not (result := predicate()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
                self.lock.wait(min(remaining, 0.05))  # futures do not notify
        return result

    def outputs_for(self, sec: int, nanosec: int = 0) -> dict[str, object]:
        """Output messages whose stamp is (sec, nanosec), by topic (only those received)."""
        return {
            topic: msg for topic, msgs in self.received.items() for msg in msgs
            if (msg.header.stamp.sec, msg.header.stamp.nanosec) == (sec, nanosec)
        }

    def wait_outputs(self, sec: int, topics=OUTPUTS, timeout: float = 30.0) -> dict:
        return self.wait(lambda: (o := self.outputs_for(sec)) and set(topics) <= set(o) and o,
                         timeout, f"outputs {topics} of stamp {sec}")

    def next_diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        with self.lock:
            count = len(self.diagnostics)
        return self.wait(lambda: len(self.diagnostics) > count and self.diagnostics[-1],
                         timeout, "diagnostics")

    def publish(self, msg, sec: int, frame_id: str = "cam_optical") -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 0
        msg.header.frame_id = frame_id
        self.image_pub.publish(msg)

    def set_parameters(self, **values) -> list:
        """Results (successful, reason) of one SetParameters call."""
        from rclpy.parameter import Parameter

        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        self.wait(future.done, 10.0, "set_parameters")
        return list(future.result().results)

    def get_parameters(self, *names: str, timeout: float = 10.0) -> list:
        from rclpy.parameter import parameter_value_to_python

        future = self.params.get_parameters(list(names))
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                pytest.fail(f"get_parameters took longer than {timeout} s")
            time.sleep(0.01)
        return [parameter_value_to_python(v) for v in future.result().values]


def rgb_frame(coded: np.ndarray):
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    return array_to_imgmsg(coded, "rgb8")


def send_camera_info(probe: Probe, d: tuple[float, ...] = (0.0,) * 5) -> None:
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=RAW[0], height=RAW[1], distortion_model="plumb_bob")
    info.header.frame_id = "cam_optical"
    info.k = K_RAW.reshape(-1).tolist()
    info.d = list(d)
    for _ in range(3):  # best-effort subscription: send a few times
        probe.info_pub.publish(info)
        time.sleep(0.05)




def wait_until_matched(probe: Probe, proc: subprocess.Popen, log: Path,
                       outputs: tuple[str, ...] = OUTPUTS) -> None:
    """Until the node's topics and our publishers match (discovery is two-sided)."""
    deadline = time.monotonic() + 60

    def matched() -> bool:
        return (probe.image_pub.get_subscription_count() > 0
                and probe.info_pub.get_subscription_count() > 0 and bool(probe.diagnostics)
                and all(probe.node.count_publishers(f"{probe.ns}/{t}") for t in outputs))

    while not matched():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("node did not come up:\n" + log.read_text()[-3000:])
        time.sleep(0.1)
    time.sleep(0.5)  # let the node match our publishers too


def pointcloud2_to_arrays(msg) -> dict[str, np.ndarray]:
    """FLOAT32 fields of an organised PointCloud2 as [height, width] arrays (``rgb`` as uint32
    bits): how a consumer reads the node's cloud."""
    from codedap_depth.image_codec import FLOAT32, unpack_cloud

    fields = {f.name: f.offset for f in msg.fields if f.datatype == FLOAT32 and f.count == 1}
    return unpack_cloud(fields, msg.height, msg.width, msg.point_step, msg.data,
                        bool(msg.is_bigendian))
