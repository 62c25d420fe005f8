# SPDX-License-Identifier: Apache-2.0
"""The depth node over real DDS (loopback, this run's own ROS_DOMAIN_ID; see conftest.py).

The node runs as its own process, started like a user would (``codedap-depth node --params``)
with a 64x48 working camera and the classical method; a probe node in this process publishes
coded frames (128x96 raw, binning 2) and checks every output against design.md section 6.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from codedap_depth.pipeline import DEFAULT_STEPS

REPO = Path(__file__).resolve().parents[1]
NS = "/rt"
RAW = (128, 96)  # width, height of the published frames
WORK = (64, 48)  # after binning 2
MIN_DEPTH, MAX_DEPTH = 0.5, 2.5
K_RAW = np.array([[200.0, 0.0, 63.5], [0.0, 200.0, 47.5], [0.0, 0.0, 1.0]])
OUTPUTS = ("depth/image", "depth/uncertainty", "aif/image", "depth/camera_info",
           "aif/camera_info", "points")
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


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("node")
    files = {}
    for name, (width, height) in (("raw", RAW), ("work", WORK)):
        files[name] = tmp / f"camera_{name}.yaml"
        pitch = 15e-6 * 320 / width
        files[name].write_text(CAMERA_YAML.format(pitch=pitch, width=width, height=height))
    params = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    values = next(iter(params.values()))["ros__parameters"]
    values.update(camera_file=str(files["work"]), method="classical", binning=2, cpu_threads=1,
                  min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    files["params"] = tmp / "params.yaml"
    files["params"].write_text(yaml.safe_dump(params))
    files["log"] = tmp / "node.log"
    return files


@pytest.fixture(scope="module")
def coded(setup_files) -> np.ndarray:
    """A simulated coded capture of the motorcycle scene, rgb8 [96, 128, 3]."""
    from codedap_depth.image_codec import float_to_image
    from codedap_depth.optics import load_camera, synthesize_bank
    from codedap_depth.scenes import load_scene
    from codedap_depth.simulate import simulate_capture

    camera = load_camera(setup_files["raw"])
    scene = load_scene("motorcycle", (camera.near, camera.far), RAW)
    return float_to_image(simulate_capture(scene, synthesize_bank(camera), 0.01, 0), "rgb8")


@pytest.fixture(scope="module")
def node_process(setup_files):
    """``codedap-depth node --params FILE`` in namespace /rt, stopped with SIGINT at the end."""
    log = open(setup_files["log"], "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "codedap_depth.ros.node", "--params", str(setup_files["params"]),
         "--ros-args", "-r", f"__ns:={NS}"],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
    )
    yield proc
    from codedap_depth.ros.session import stop_process

    stop_process(proc)
    log.close()
    assert proc.returncode == 0, setup_files["log"].read_text()[-3000:]


class Probe:
    """Publishes frames to the node and collects its outputs (reliable subscribers)."""

    def __init__(self, ros) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.node = ros.add(Node("probe", context=ros.context))
        history = QoSProfile(depth=100)
        self.image_pub = self.node.create_publisher(Image, f"{NS}/image_raw", history)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{NS}/camera_info", history)
        self.lock = threading.Condition()
        self.received: dict[str, list] = {topic: [] for topic in OUTPUTS}
        self.diagnostics: list[dict[str, str]] = []
        types = (Image, Image, Image, CameraInfo, CameraInfo, PointCloud2)
        for topic, kind in zip(OUTPUTS, types, strict=True):
            self.node.create_subscription(kind, f"{NS}/{topic}",
                                          lambda msg, t=topic: self._store(t, msg), history)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, history)
        self.params = AsyncParameterClient(self.node, f"{NS}/codedap_depth")

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


@pytest.fixture(scope="module")
def probe(ros, node_process, setup_files) -> Probe:
    probe = Probe(ros)
    deadline = time.monotonic() + 60
    def matched() -> bool:
        return (probe.image_pub.get_subscription_count() > 0
                and probe.info_pub.get_subscription_count() > 0 and bool(probe.diagnostics)
                and all(probe.node.count_publishers(f"{NS}/{t}") for t in OUTPUTS))

    while not matched():
        if node_process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("node did not come up:\n" + setup_files["log"].read_text()[-3000:])
        time.sleep(0.1)
    time.sleep(0.5)  # discovery is two-sided: let the node match our publishers too
    assert probe.params.wait_for_services(timeout_sec=10)
    return probe


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


# --- outputs --------------------------------------------------------------------------------


def test_outputs_share_the_input_stamp_and_follow_the_design(probe: Probe, coded) -> None:
    from codedap_depth.image_codec import decode_image, image_to_float, pack_rgb
    from codedap_depth.ros.pointcloud import pointcloud2_to_arrays

    send_camera_info(probe)
    probe.publish(rgb_frame(coded), sec=100)
    out = probe.wait_outputs(100)
    for topic, msg in out.items():
        assert msg.header.frame_id == "cam_optical", topic
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (100, 0), topic

    width, height = WORK
    depth_msg, sigma_msg, aif_msg = out["depth/image"], out["depth/uncertainty"], out["aif/image"]
    for msg, encoding in ((depth_msg, "32FC1"), (sigma_msg, "32FC1"), (aif_msg, "rgb8")):
        assert (msg.encoding, msg.width, msg.height) == (encoding, width, height)
    depth = decode_image("32FC1", height, width, depth_msg.step, depth_msg.data,
                         bool(depth_msg.is_bigendian))
    sigma = decode_image("32FC1", height, width, sigma_msg.step, sigma_msg.data,
                         bool(sigma_msg.is_bigendian))
    valid = np.isfinite(depth)
    # REP 118: invalid is NaN, never 0; valid depths respect [min_depth, max_depth]
    assert not np.any(depth == 0.0)
    assert valid.any() and (~valid).any(), "the far wall (> 2.5 m) should be NaN"
    assert depth[valid].min() >= MIN_DEPTH and depth[valid].max() <= MAX_DEPTH
    assert np.all(np.isnan(sigma[~valid])) and np.all(sigma[valid] >= 0)

    info = out["depth/camera_info"]
    assert out["aif/camera_info"] == info  # rtabmap / point_cloud_xyzrgb want one beside aif
    assert (info.width, info.height) == WORK
    K = np.array(info.k).reshape(3, 3)
    # binning 2: f/2 and c' = (c + 0.5) / 2 - 0.5
    np.testing.assert_allclose(K, [[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    np.testing.assert_allclose(np.array(info.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_allclose(np.array(info.r).reshape(3, 3), np.eye(3))
    assert list(info.d) == [0.0] * 5

    cloud = out["points"]
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields][:4] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)]
    assert (cloud.height, cloud.width, cloud.point_step) == (height, width, 32)
    assert cloud.row_step == 32 * width and cloud.is_dense is False
    points = pointcloud2_to_arrays(cloud)
    np.testing.assert_array_equal(np.isnan(points["z"]), ~valid)
    np.testing.assert_allclose(points["z"][valid], depth[valid], rtol=1e-6)
    v, u = np.nonzero(valid)
    np.testing.assert_allclose(points["x"][valid], (u - K[0, 2]) * depth[valid] / K[0, 0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points["y"][valid], (v - K[1, 2]) * depth[valid] / K[1, 1],
                               rtol=1e-5, atol=1e-6)
    aif = decode_image("rgb8", height, width, aif_msg.step, aif_msg.data)
    np.testing.assert_array_equal(points["rgb"], pack_rgb(aif))
    # the AIF is sharper than the coded input it came from (a blur would not be)
    assert image_to_float(aif, "rgb8").std() > 0.05


def test_mono_cameras_get_a_mono8_aif(probe: Probe, coded) -> None:
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    grey = np.round(coded.mean(axis=-1) / 255 * 65535).astype(np.uint16)
    probe.publish(array_to_imgmsg(grey, "mono16", bigendian=True), sec=110)
    out = probe.wait_outputs(110)
    assert out["aif/image"].encoding == "mono8"
    assert out["aif/image"].step == WORK[0]
    assert out["depth/image"].encoding == "32FC1"


def test_runtime_parameters_frame_id_and_stride(probe: Probe, coded) -> None:
    results = probe.set_parameters(frame_id="override_optical", cloud_stride=4,
                                   publish_uncertainty=False)
    assert all(r.successful for r in results), [r.reason for r in results]
    try:
        probe.publish(rgb_frame(coded), sec=120)
        out = probe.wait_outputs(120, topics=("depth/image", "points", "aif/image"))
        assert {m.header.frame_id for m in out.values()} == {"override_optical"}
        assert (out["points"].height, out["points"].width) == (12, 16)
        time.sleep(0.5)
        assert "depth/uncertainty" not in probe.outputs_for(120)
    finally:
        results = probe.set_parameters(frame_id="", cloud_stride=1, publish_uncertainty=True)
        assert all(r.successful for r in results)


def test_reliable_subscriber_in_another_process(probe: Probe, coded, tmp_path) -> None:
    """A plain rclpy process with default (reliable) QoS, as RViz uses, gets the outputs."""
    script = tmp_path / "listener.py"
    script.write_text(textwrap.dedent(f"""
        import rclpy
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image, PointCloud2
        rclpy.init()
        node = rclpy.create_node("listener")
        got = {{}}
        def keep(name, msg):
            got[name] = msg
        node.create_subscription(Image, "{NS}/depth/image", lambda m: keep("depth", m),
                                 QoSProfile(depth=10))
        node.create_subscription(PointCloud2, "{NS}/points", lambda m: keep("points", m),
                                 QoSProfile(depth=10))
        print("ready", flush=True)
        while len(got) < 2:
            rclpy.spin_once(node, timeout_sec=0.1)
        d, p = got["depth"], got["points"]
        print("depth", d.header.stamp.sec, d.encoding, d.width, d.height, flush=True)
        print("points", p.header.stamp.sec, p.width, p.height, p.point_step, flush=True)
        rclpy.shutdown()
    """))
    listener = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert listener.stdout.readline().strip() == "ready"
        sent = []
        deadline = time.monotonic() + 60
        while listener.poll() is None and time.monotonic() < deadline:
            sec = 200 + len(sent)
            probe.publish(rgb_frame(coded), sec=sec)
            sent.append(sec)
            time.sleep(0.5)
        stdout, stderr = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 0, stderr
    lines = dict(line.split(" ", 1) for line in stdout.strip().splitlines())
    depth_sec, encoding, width, height = lines["depth"].split()
    assert int(depth_sec) in sent and encoding == "32FC1" and (int(width), int(height)) == WORK
    points_sec, width, height, step = lines["points"].split()
    assert int(points_sec) in sent and (int(width), int(height), int(step)) == (*WORK, 32)


# --- load -----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_burst_drops_frames_but_stays_responsive_and_flat(probe: Probe, coded,
                                                          node_process) -> None:
    """Bursts of 50 frames (320x240) at 100 Hz: the node keeps only the newest pending frame,
    answers services meanwhile, accounts for every frame it received (processed + dropped +
    bad) and does not grow (queueing the frames would take 200 * 230 kB = 46 MB)."""
    from codedap_depth.image_codec import bin_image
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    small = np.rint(bin_image(coded, 2)).astype(np.uint8)
    frame = np.repeat(np.repeat(small, 5, axis=0), 5, axis=1)  # 320x240, binning 5 -> 64x48
    assert all(r.successful for r in probe.set_parameters(binning=5))
    try:
        probe.publish(array_to_imgmsg(frame, "rgb8"), sec=300)
        probe.wait_outputs(300, topics=("depth/image",))
        before = probe.next_diagnostics()
        rss, sent = [rss_mb(node_process.pid)], set()
        for burst in range(4):
            stamps = [1000 * (burst + 1) + i for i in range(50)]
            for sec in stamps:  # at 100 Hz, ~10x faster than the node reconstructs
                probe.publish(array_to_imgmsg(frame, "rgb8"), sec=sec)
                time.sleep(0.01)
            # responsive: a service call is answered while the burst is being worked off
            assert probe.get_parameters("binning", timeout=5.0) == [5]
            time.sleep(0.5)
            final = stamps[-1] + 1
            probe.publish(array_to_imgmsg(frame, "rgb8"), sec=final)
            probe.wait_outputs(final, topics=("depth/image",), timeout=30)
            sent |= {*stamps, final}
            rss.append(rss_mb(node_process.pid))
        time.sleep(0.3)
        after = probe.next_diagnostics()
    finally:
        assert all(r.successful for r in probe.set_parameters(binning=2))

    outputs = {m.header.stamp.sec for m in probe.received["depth/image"]
               if m.header.stamp.sec >= 1000}
    assert outputs <= sent, "every output must belong to a frame that was sent"
    frames_in = int(after["frames_in"]) - int(before["frames_in"])
    dropped = int(after["dropped_frames"]) - int(before["dropped_frames"])
    frames_out = int(after["frames_out"]) - int(before["frames_out"])
    bad = int(after["bad_frames"]) - int(before["bad_frames"])
    assert frames_out == len(outputs)
    # the achieved rate and latency are reported (CPU node: the eager path)
    assert float(after["rate_hz"]) > 0 and float(after["latency_ms"]) > 0
    assert after["execution"] == "eager"
    lost = int(after["lost_frames"]) - int(before["lost_frames"])
    print(f"burst: sent {len(sent)}, node got {frames_in}: {frames_out} out, {dropped} dropped, "
          f"{bad} bad; DDS reported {lost} lost; RSS {[round(r, 1) for r in rss]} MB")
    # Reliable keep-last 1: what DDS replaces before the callback is reported as lost
    # (where DDS notices); everything that reaches the node is accounted for.
    assert frames_in >= 100, f"only {frames_in} of {len(sent)} frames reached the node"
    assert frames_in == frames_out + dropped + bad, after
    # the node works at its own rate (compute_ms) and drops the backlog instead of queueing it
    assert dropped > 0 and frames_out < frames_in, after
    # flat memory: no per-frame growth after the first burst (each frame is 0.9 MB as float)
    assert rss[-1] - rss[1] < 8, rss


def test_image_input_is_reliable_camera_info_best_effort_outputs_reliable(probe: Probe) -> None:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    def subscription(topic: str):
        (sub,) = [i for i in probe.node.get_subscriptions_info_by_topic(f"{NS}/{topic}")
                  if i.node_name == "codedap_depth"]
        return sub.qos_profile

    assert subscription("image_raw").reliability == ReliabilityPolicy.RELIABLE
    assert subscription("camera_info").reliability == ReliabilityPolicy.BEST_EFFORT
    for topic in OUTPUTS:
        (pub,) = probe.node.get_publishers_info_by_topic(f"{NS}/{topic}")
        assert pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        assert pub.qos_profile.durability == DurabilityPolicy.VOLATILE, topic
        assert pub.qos_profile.history in (HistoryPolicy.KEEP_LAST, HistoryPolicy.UNKNOWN)
        assert pub.qos_profile.depth in (1, 0), topic  # DDS may not report the depth


# --- bad input ------------------------------------------------------------------------------


def bad_frames(coded: np.ndarray) -> list[tuple[str, object, str]]:
    from sensor_msgs.msg import Image

    from codedap_depth.ros.image_conversion import array_to_imgmsg

    wrong_encoding = rgb_frame(coded)
    wrong_encoding.encoding = "nv21"
    truncated = rgb_frame(coded)
    truncated.data = truncated.data[: len(truncated.data) // 2]
    grey = coded.mean(axis=-1).astype(np.float32) / 255
    with_nan, with_inf = grey.copy(), grey.copy()
    with_nan[10, 10] = np.nan
    with_inf[20, 30] = np.inf
    return [
        ("wrong encoding", wrong_encoding, "unsupported image encoding 'nv21'"),
        ("wrong size", array_to_imgmsg(coded[:80, :100].copy(), "rgb8"),
         "camera model expects 64x48"),
        ("truncated", truncated, "truncated"),
        ("NaN", array_to_imgmsg(with_nan, "32FC1"), "NaN/Inf"),
        ("Inf", array_to_imgmsg(with_inf, "32FC1"), "NaN/Inf"),
        ("empty", Image(encoding="rgb8"), "empty image"),
    ]


def test_bad_frames_are_counted_and_the_next_good_one_is_processed(probe: Probe, coded) -> None:
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    good_float = array_to_imgmsg(coded.mean(axis=-1).astype(np.float32) / 255, "32FC1")
    for i, (name, msg, reason) in enumerate(bad_frames(coded)):
        bad_sec, good_sec = 500 + 2 * i, 501 + 2 * i
        count = int(probe.next_diagnostics()["bad_frames"])
        probe.publish(msg, sec=bad_sec)
        status = probe.wait(lambda c=count: bad_status(probe, c), 10.0, f"{name} counted")
        assert reason in status["last_error"], (name, status["last_error"])
        assert status["_level"] == 1, "WARN after a bad frame"
        good = good_float if name in ("NaN", "Inf") else rgb_frame(coded)
        probe.publish(good, sec=good_sec)
        probe.wait_outputs(good_sec, topics=("depth/image", "aif/image"), timeout=30)
        assert probe.outputs_for(bad_sec) == {}, name


def bad_status(probe: Probe, count: int):
    """The newest diagnostics if they show more than ``count`` bad frames."""
    if probe.diagnostics and int(probe.diagnostics[-1]["bad_frames"]) > count:
        return probe.diagnostics[-1]
    return None


def test_bad_parameter_updates_are_rejected_with_a_reason(probe: Probe, coded) -> None:
    import torch

    bad_device = "cuda:99" if torch.cuda.is_available() else "cuda:0"
    cases = [
        ({"steps": 0}, "out of range"),
        ({"samples": 1000}, "out of range"),
        ({"method": "magic"}, "method must be one of"),
        ({"device": bad_device}, "CUDA"),
        ({"device": "tpu"}, "device must be cpu, cuda or cuda:N"),
        ({"min_depth": 3.0}, "must be below max_depth"),
        ({"psf_file": "/tmp/other.npz"}, "read-only"),
        ({"binning": "two"}, "type"),
    ]
    for values, reason in cases:
        results = probe.set_parameters(**values)
        assert not results[0].successful, values
        assert reason in results[0].reason, (values, results[0].reason)
    assert probe.get_parameters("steps", "method", "device", "min_depth", "binning") == [
        DEFAULT_STEPS, "classical", "cpu", MIN_DEPTH, 2]
    probe.publish(rgb_frame(coded), sec=600)
    probe.wait_outputs(600)


def test_params_yaml_keys_equal_the_declared_parameters(probe: Probe, ros) -> None:
    from rclpy.node import Node

    future = probe.params.list_parameters()
    probe.wait(future.done, 10.0, "list_parameters")
    declared = set(future.result().result.names)
    builtin = set(Node("plain", context=ros.context)._parameters)  # use_sim_time, ...
    ours = {n for n in declared - builtin if not n.startswith("qos_overrides.")}
    params = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    (key, section), = params.items()
    assert key == "/**/codedap_depth"
    assert set(section["ros__parameters"]) == ours
    # the input and output QoS can be overridden (QoSOverridingOptions)
    assert f"qos_overrides.{NS}/depth/image.publisher.reliability" in declared
    assert f"qos_overrides.{NS}/image_raw.subscription.reliability" in declared
