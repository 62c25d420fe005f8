# SPDX-License-Identifier: Apache-2.0
"""``bag play`` publishes a bag into ROS 2 (real DDS), and ``codedap-depth demo`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from codedap_depth.bags.demo_bag import make_demo_bag
from codedap_depth.bags.rosbag import read_frames
from codedap_depth.names import OUTPUT_TOPICS


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("play") / "bag"
    make_demo_bag(bag, storage="mcap", frames=5, size=(64, 48), hz=5.0)
    return bag


def test_bag_play_publishes_the_recorded_frames(ros, small_bag) -> None:
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    from codedap_depth.ros.image_conversion import imgmsg_to_array

    node = ros.add(Node("play_listener", context=ros.context))
    images, infos, lock = [], [], threading.Lock()
    history = QoSProfile(depth=20)

    def keep(store, msg) -> None:
        with lock:
            store.append((msg, time.monotonic()))

    node.create_subscription(Image, "/replay/image_raw", lambda m: keep(images, m), history)
    node.create_subscription(CameraInfo, "/replay/camera_info", lambda m: keep(infos, m), history)
    player = subprocess.run(
        [sys.executable, "-m", "codedap_depth.bags.cli", "play", str(small_bag), "--rate", "0.5",
         "--publish-as", "/replay/image_raw", "--wait", "20"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )
    assert player.returncode == 0, player.stderr
    assert "published 5 frames" in player.stdout
    deadline = time.monotonic() + 5
    while (len(images) < 5 or len(infos) < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    recorded = list(read_frames(small_bag))
    assert len(images) == 5 and len(infos) == 5
    for (msg, _), frame in zip(images, recorded, strict=True):
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == frame.stamp_ns
        np.testing.assert_array_equal(imgmsg_to_array(msg), frame.pixels)
    # recorded 5 Hz played at rate 0.5 -> 0.4 s apart
    gaps = np.diff([t for _, t in images])
    assert gaps.min() > 0.25 and np.median(gaps) == pytest.approx(0.4, abs=0.1)


def test_bag_play_publishes_compressed_frames(ros, tmp_path) -> None:
    """A bag recorded with the compressed transport replays as CompressedImage, camera_info
    beside the base topic (``/replay/camera_info`` for ``/replay/image_raw/compressed``)."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, CompressedImage

    from codedap_depth.image_codec import decode_compressed

    bag = tmp_path / "compressed"
    make_demo_bag(bag, storage="mcap", frames=3, size=(64, 48), hz=5.0, compressed=True)
    node = ros.add(Node("compressed_listener", context=ros.context))
    images, infos = [], []
    history = QoSProfile(depth=20)
    node.create_subscription(CompressedImage, "/replay/image_raw/compressed", images.append,
                             history)
    node.create_subscription(CameraInfo, "/replay/camera_info", infos.append, history)
    player = subprocess.run(
        [sys.executable, "-m", "codedap_depth.bags.cli", "play", str(bag), "--hz", "10",
         "--publish-as", "/replay/image_raw/compressed", "--wait", "20"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )
    assert player.returncode == 0, player.stderr
    deadline = time.monotonic() + 5
    while (len(images) < 3 or len(infos) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(images) == 3 and len(infos) == 3
    for msg, frame in zip(images, read_frames(bag), strict=True):
        np.testing.assert_array_equal(decode_compressed(msg.data).pixels, frame.pixels)


def test_demo_runs_end_to_end(tmp_path) -> None:
    out = tmp_path / "demo_out"
    demo = subprocess.run(
        [sys.executable, "-m", "codedap_depth.demo", "--out", str(out), "--frames", "3",
         "--size", "128x96", "--binning", "2", "--hz", "2", "--method", "classical",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo summary" in demo.stdout and "depth vs ground truth" in demo.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == 3 and 1 <= summary["frames_out"] <= 3
    # the camera input is best effort (SensorDataQoS), so a frame can be lost in transport
    assert 2 <= summary["node_frames_in"] + summary["node_lost"] <= 3
    assert summary["node_frames_in"] >= 1
    assert summary["node_frames_in"] == summary["frames_out"] + summary["node_dropped"]
    assert summary["node_exit_code"] == 0
    for topic in OUTPUT_TOPICS:
        assert summary["outputs"][topic] == summary["frames_out"], topic
    assert 0 < summary["mean_depth_absrel"] < 5 and summary["mean_latency_ms"] > 0
    # the same frames through classical offline: identical method, so identical depth scores
    assert summary["mean_classical_depth_absrel"] == pytest.approx(summary["mean_depth_absrel"],
                                                                   rel=1e-4)
    ply = (out / "points.ply").read_bytes()
    assert ply.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert summary["ply_points"] > 0.5 * 64 * 48
    assert (out / "figure.png").stat().st_size > 10_000
    assert list((out / "output_bag").glob("*.mcap"))
