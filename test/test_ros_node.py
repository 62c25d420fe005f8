# SPDX-License-Identifier: Apache-2.0
"""The depth node over real DDS (loopback, this run's own ROS_DOMAIN_ID; see conftest.py).

The node runs as its own process, started like a user would (``codedap-depth node --params``)
with a 64x48 working camera and the classical method; a probe node in this process publishes
coded frames (128x96 raw, binning 2) and checks every output against the documented layout
(README, node outputs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_helpers import (
    MAX_DEPTH,
    MIN_DEPTH,
    NS,
    OUTPUTS,
    REPO,
    WORK,
    Probe,
    coded_capture,
    pointcloud2_to_arrays,
    rgb_frame,
    send_camera_info,
    start_node,
    stop_node,
    wait_until_matched,
    write_setup,
)

from codedap_depth.pipeline import DEFAULT_STEPS

#: glibc malloc settings under which a process's RSS follows its live memory.
MALLOC_LIVE_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory) -> dict[str, Path]:
    return write_setup(tmp_path_factory.mktemp("node"))


@pytest.fixture(scope="module")
def coded(setup_files) -> np.ndarray:
    """A simulated coded capture of the motorcycle scene, rgb8 [96, 128, 3]."""
    return coded_capture(setup_files["raw"])


@pytest.fixture(scope="module")
def node_process(setup_files):
    """``codedap-depth node --params FILE`` in namespace /rt, stopped with SIGINT at the end.

    glibc's malloc gets fixed thresholds (large blocks mapped, freed memory trimmed): with its
    adaptive ones the RSS of an idle-again node wandered by 10-20 MB between bursts, which
    hid what the burst test measures (no frames kept)."""
    proc = start_node(setup_files, env=MALLOC_LIVE_MEMORY)
    yield proc
    stop_node(proc, setup_files)


def node_log(probe: Probe) -> str:
    return probe.log_path.read_text()


@pytest.fixture(scope="module")
def probe(ros, node_process, setup_files) -> Probe:
    probe = Probe(ros, log_path=setup_files["log"])
    wait_until_matched(probe, node_process, setup_files["log"])
    assert probe.params.wait_for_services(timeout_sec=10)
    return probe


# --- outputs --------------------------------------------------------------------------------


def uncertainty_limit(files: dict[str, Path]) -> float:
    """The node's ``max_relative_uncertainty`` from its parameter file."""
    config = yaml.safe_load(files["params"].read_text())
    return float(next(iter(config.values()))["ros__parameters"]["max_relative_uncertainty"])


def test_outputs_share_the_input_stamp_and_follow_the_design(probe: Probe, coded,
                                                            setup_files) -> None:
    from codedap_depth.image_codec import decode_image, image_to_float, pack_rgb

    send_camera_info(probe)
    probe.publish(rgb_frame(coded), sec=100)
    out = probe.wait_outputs(100)
    # the node's first frame is a warm-up: counted, logged, kept out of the latency statistics
    first = probe.wait(lambda: probe.diagnostics[-1]["frames_out"] == "1"
                       and probe.diagnostics[-1], 5.0, "diagnostics after the first frame")
    assert first["warmup_frames"] == "1" and float(first["warmup_ms"]) > 0, first
    assert first["latency_ms"] == "nan" and first["latency_p95_ms"] == "nan", first
    assert "warm-up frame (64x48, classical on cpu)" in node_log(probe)
    probe.publish(rgb_frame(coded), sec=101)
    probe.wait_outputs(101, topics=("depth/image",))
    steady = probe.wait(lambda: probe.diagnostics[-1]["frames_out"] == "2"
                        and probe.diagnostics[-1], 5.0, "diagnostics after the second frame")
    assert steady["warmup_frames"] == "1" and float(steady["latency_ms"]) > 0, steady
    # the stages around the reconstructor are timed: decoding and binning, packing/publishing
    assert float(steady["decode_ms"]) > 0 and float(steady["publish_ms"]) > 0, steady
    assert float(steady["latency_ms"]) >= float(steady["compute_ms"]), steady
    assert float(steady["latency_p50_ms"]) == float(steady["latency_max_ms"]) > 0
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
    # points are NaN where depth is, and where sigma / depth exceeds max_relative_uncertainty
    with np.errstate(invalid="ignore"):
        sure = valid & ~(sigma / depth > uncertainty_limit(setup_files))
    assert sure.any() and (valid & ~sure).any(), "some valid depths should be too uncertain"
    np.testing.assert_array_equal(np.isnan(points["z"]), ~sure)
    np.testing.assert_allclose(points["z"][sure], depth[sure], rtol=1e-6)
    v, u = np.nonzero(sure)
    np.testing.assert_allclose(points["x"][sure], (u - K[0, 2]) * depth[sure] / K[0, 0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points["y"][sure], (v - K[1, 2]) * depth[sure] / K[1, 1],
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
    # flat memory: no per-frame growth after the first burst (queueing 50 frames would add
    # 11.5 MB as uint8, 45 MB as float); RSS is live memory here (``node_process``)
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


@pytest.mark.parametrize(("scale", "binning"), [(5, 10), (10, 20)], ids=["640x480", "1280x960"])
def test_large_frames_arrive_with_the_default_input_qos(probe: Probe, coded, scale: int,
                                                        binning: int) -> None:
    """0.9 MB and 3.7 MB rgb8 frames: lost for good by a best-effort reader on FastDDS, so the
    input is reliable by default."""
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    frame = np.repeat(np.repeat(coded, scale, axis=0), scale, axis=1)
    assert frame.shape[:2] == (96 * scale, 128 * scale)
    assert all(r.successful for r in probe.set_parameters(binning=binning))
    try:
        sec = 400 + scale
        probe.publish(array_to_imgmsg(frame, "rgb8"), sec=sec)
        out = probe.wait_outputs(sec, topics=("depth/image", "depth/camera_info"), timeout=60)
        assert (out["depth/image"].width, out["depth/image"].height) == WORK
    finally:
        assert all(r.successful for r in probe.set_parameters(binning=2))


def test_best_effort_camera_is_reported_as_incompatible(probe: Probe) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    before = int(probe.next_diagnostics()["incompatible_publishers"])
    publisher = probe.node.create_publisher(
        Image, f"{NS}/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        probe.wait(lambda: int(probe.diagnostics[-1]["incompatible_publishers"]) > before,
                   15.0, "the incompatible publisher to be counted")
    finally:
        probe.node.destroy_publisher(publisher)
    assert (f"qos_overrides.{NS}/image_raw.subscription.reliability:=best_effort"
            in node_log(probe))


def test_distorted_camera_info_is_refused_counted_and_throttled(probe: Probe, coded) -> None:
    before = probe.next_diagnostics()
    log_before = node_log(probe).count("refusing camera_info")
    try:
        send_camera_info(probe, d=(0.1, -0.05, 0.0, 0.0, 0.0))
        for sec in range(700, 704):
            send_camera_info(probe, d=(0.1, -0.05, 0.0, 0.0, 0.0))
            probe.publish(rgb_frame(coded), sec=sec)
            time.sleep(0.1)
        status = probe.wait(
            lambda: int(probe.diagnostics[-1]["bad_frames"]) >= int(before["bad_frames"]) + 4
            and probe.diagnostics[-1], 15.0, "frames refused for distortion")
        assert int(status["bad_camera_info"]) > int(before["bad_camera_info"]), status
        assert "lens distortion" in status["last_error"] and "image_rect" in status["last_error"]
        assert status["_level"] == 1
        assert all(probe.outputs_for(sec) == {} for sec in range(700, 704))
        refusals = node_log(probe).count("refusing camera_info") - log_before
        assert 1 <= refusals <= 2, f"{refusals} log lines for 15 refusals in 0.4 s (throttled)"
    finally:
        send_camera_info(probe)
    time.sleep(0.2)
    probe.publish(rgb_frame(coded), sec=705)
    probe.wait_outputs(705)


def encoded_frames(coded: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """The rgb8 capture in every raw encoding: name -> (pixels, output AIF encoding)."""
    from helpers import mosaic, to_yuv422

    wide = coded.astype(np.uint16) * 257
    grey = np.rint(coded.mean(axis=-1)).astype(np.uint8)
    return {
        "bayer_rggb8": (mosaic(coded, "rggb"), "rgb8"),
        "bayer_gbrg16": (mosaic(wide, "gbrg"), "rgb8"),
        "yuv422": (to_yuv422(coded, "yuv422"), "rgb8"),
        "yuv422_yuy2": (to_yuv422(coded, "yuv422_yuy2"), "rgb8"),
        "rgb16": (wide, "rgb8"),
        "bgr16": (wide[..., ::-1].copy(), "rgb8"),
        "8UC3": (coded[..., ::-1].copy(), "rgb8"),
        "8UC1": (grey, "mono8"),
        "16UC1": (grey.astype(np.uint16) * 257, "mono8"),
    }


def decoded_depth(msg) -> np.ndarray:
    from codedap_depth.image_codec import decode_image

    return decode_image("32FC1", msg.height, msg.width, msg.step, msg.data,
                        bool(msg.is_bigendian))


def test_raw_encodings_are_reconstructed(probe: Probe, coded) -> None:
    """Bayer, YUV and the integer encodings give the depth of the same scene sent as rgb8."""
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    probe.publish(rgb_frame(coded), sec=800)
    reference = decoded_depth(probe.wait_outputs(800, topics=("depth/image",))["depth/image"])
    for i, (encoding, (pixels, aif_encoding)) in enumerate(encoded_frames(coded).items()):
        sec = 801 + i
        probe.publish(array_to_imgmsg(pixels, encoding), sec=sec)
        out = probe.wait_outputs(sec, topics=("depth/image", "aif/image", "points"))
        assert out["aif/image"].encoding == aif_encoding, encoding
        depth = decoded_depth(out["depth/image"])
        both = np.isfinite(depth) & np.isfinite(reference)
        assert both.mean() > 0.5, encoding
        error = np.median(np.abs(depth[both] - reference[both]) / reference[both])
        print(f"{encoding}: median relative depth difference to rgb8 {error:.3f}")
        limit = 0.0 if encoding in ("rgb16", "bgr16", "8UC3") else 0.1
        assert error <= limit, (encoding, error)


def test_bayer_pattern_parameter_fixes_a_mislabelled_driver(probe: Probe, coded) -> None:
    from helpers import mosaic

    from codedap_depth.ros.image_conversion import array_to_imgmsg

    raw = mosaic(coded, "grbg")
    probe.publish(array_to_imgmsg(raw, "bayer_grbg8"), sec=850)
    right = decoded_depth(probe.wait_outputs(850, topics=("depth/image",))["depth/image"])
    assert all(r.successful for r in probe.set_parameters(bayer_pattern="grbg"))
    try:
        for sec, label in ((851, "bayer_rggb8"), (852, "mono8")):
            probe.publish(array_to_imgmsg(raw, label), sec=sec)
            out = probe.wait_outputs(sec, topics=("depth/image", "aif/image"))
            assert out["aif/image"].encoding == "rgb8", label
            np.testing.assert_array_equal(decoded_depth(out["depth/image"]), right)
        (bad,) = probe.set_parameters(bayer_pattern="rgbg")
        assert not bad.successful and "bayer_pattern must be empty or one of" in bad.reason
    finally:
        assert all(r.successful for r in probe.set_parameters(bayer_pattern=""))


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
        ("0-255 float", array_to_imgmsg(grey * 255, "32FC1"), "must lie in [0, 1]"),
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
        good = good_float if name in ("NaN", "Inf", "0-255 float") else rgb_frame(coded)
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
