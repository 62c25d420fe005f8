# SPDX-License-Identifier: Apache-2.0
"""The node started with read-only options over real DDS: CompressedImage input (PNG, JPEG)
and QoS overrides for single topics (each must change only its own topic)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import (
    OUTPUTS,
    REPO,
    WORK,
    Probe,
    coded_capture,
    start_node,
    stop_node,
    wait_until_matched,
    write_setup,
)

NS = "/opt"


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory) -> dict[str, Path]:
    files = write_setup(tmp_path_factory.mktemp("options"), image_transport="compressed")
    # overrides for one output and for the (compressed) input, in the parameter file
    text = files["params"].read_text().replace("ros__parameters:", f"""ros__parameters:
    qos_overrides:
      {NS}/depth/image:
        publisher:
          reliability: best_effort
      {NS}/image_raw/compressed:
        subscription:
          reliability: best_effort""", 1)
    files["params"].write_text(text)
    return files


@pytest.fixture(scope="module")
def probe(ros, setup_files) -> Probe:
    proc = start_node(setup_files, NS)
    try:
        probe = Probe(ros, NS, compressed=True, best_effort=True, log_path=setup_files["log"])
        wait_until_matched(probe, proc, setup_files["log"])
        yield probe
    finally:
        stop_node(proc, setup_files)


def compressed(pixels: np.ndarray, codec: str, sec: int):
    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=codec.upper(),
                                    **({"quality": 95} if codec == "jpeg" else {}))
    msg = CompressedImage(format=f"rgb8; {codec} compressed rgb8", data=buf.getvalue())
    msg.header.stamp.sec, msg.header.frame_id = sec, "cam_optical"
    return msg


def test_overrides_change_only_their_topic(probe: Probe) -> None:
    from rclpy.qos import ReliabilityPolicy

    for topic in OUTPUTS:
        (pub,) = probe.node.get_publishers_info_by_topic(f"{NS}/{topic}")
        expected = ReliabilityPolicy.BEST_EFFORT if topic == "depth/image" else \
            ReliabilityPolicy.RELIABLE
        assert pub.qos_profile.reliability == expected, topic
    (sub,) = [i for i in probe.node.get_subscriptions_info_by_topic(f"{NS}/image_raw/compressed")
              if i.node_name == "codedap_depth"]
    assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert probe.node.get_subscriptions_info_by_topic(f"{NS}/image_raw") == []


def test_png_and_jpeg_frames_are_reconstructed_with_one_jpeg_warning(probe: Probe) -> None:
    coded = coded_capture(Path(probe.log_path).parent / "camera_raw.yaml")
    grey16 = (coded.mean(axis=-1) * 257).astype(np.uint16)
    cases = [(coded, "png", "rgb8", 900), (grey16, "png", "mono8", 901),
             (coded, "jpeg", "rgb8", 902), (coded, "jpeg", "rgb8", 903)]
    for pixels, codec, aif_encoding, sec in cases:
        probe.image_pub.publish(compressed(pixels, codec, sec))
        out = probe.wait_outputs(sec, topics=("depth/image", "aif/image", "points"))
        assert (out["depth/image"].width, out["depth/image"].height) == WORK
        assert out["aif/image"].encoding == aif_encoding, (codec, sec)
    assert probe.log_path.read_text().count("input is JPEG") == 1


def test_undecodable_compressed_frame_is_counted(probe: Probe) -> None:
    from sensor_msgs.msg import CompressedImage

    before = int(probe.next_diagnostics()["bad_frames"])
    msg = CompressedImage(format="png", data=b"\x89PNG\r\n\x1a\n" + bytes(40))
    msg.header.stamp.sec = 950
    probe.image_pub.publish(msg)
    status = probe.wait(lambda: int(probe.diagnostics[-1]["bad_frames"]) > before
                        and probe.diagnostics[-1], 10.0, "the bad frame to be counted")
    assert "compressed image ('png'): cannot decode" in status["last_error"], status
    time.sleep(0.2)
    assert probe.outputs_for(950) == {}


PUBLISHER = """
import array, sys, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("large_publisher")
pub = node.create_publisher(Image, "/large", QoSProfile(
    depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
msg = Image(width=640, height=480, encoding="rgb8", step=1920,
            data=array.array("B", bytes(921600)))
deadline = time.monotonic() + 30
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
for i in range(6):
    msg.header.stamp.sec = i
    pub.publish(msg)
    time.sleep(0.2)
time.sleep(1.0)
"""
SUBSCRIBER = """
import time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("large_subscriber")
got = []
node.create_subscription(Image, "/large", lambda m: got.append(len(m.data)), QoSProfile(
    depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
deadline = time.monotonic() + 12
while time.monotonic() < deadline and len(got) < 6:
    rclpy.spin_once(node, timeout_sec=0.1)
print(len(got))
"""


@pytest.mark.parametrize("profile", [False, True], ids=["default", "large_frames_xml"])
def test_best_effort_large_frames_need_the_shipped_fastdds_profile(profile: bool) -> None:
    """Why the input is reliable by default, and what a best-effort camera needs instead:
    best effort on both ends, 640x480 rgb8 (0.9 MB) frames, with and without the profile."""
    env = os.environ.copy()
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "fastdds_large_frames.xml")
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], stdout=subprocess.PIPE,
                           text=True, env=env)
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env)
    out, _ = sub.communicate(timeout=60)
    pub.wait(timeout=60)
    received = int(out.strip())
    if profile:
        assert received == 6, f"{received} of 6 frames with the profile"
    else:
        assert received < 6, "default FastDDS now delivers large best-effort frames"
