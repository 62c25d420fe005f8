# SPDX-License-Identifier: Apache-2.0
"""The node started with read-only options over real DDS: CompressedImage input (PNG, JPEG)
and QoS overrides for single topics (each must change only its own topic)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import (
    OUTPUTS,
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
    probe = Probe(ros, NS, compressed=True, best_effort=True, log_path=setup_files["log"])
    wait_until_matched(probe, proc, setup_files["log"])
    yield probe
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
