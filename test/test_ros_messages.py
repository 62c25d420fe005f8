# SPDX-License-Identifier: Apache-2.0
"""CameraInfo scaling and diagnostics contents (message helpers of the node, no DDS)."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from codedap_depth.outputs import working_intrinsics
from codedap_depth.ros.camera_info import input_intrinsics, rectified_camera_info
from codedap_depth.ros.diagnostics import FrameStats, diagnostic_status
from codedap_depth.ros.recorder import cdr_header_stamp_ns

K_FULL = np.array([[800.0, 0.0, 639.5], [0.0, 810.0, 479.5], [0.0, 0.0, 1.0]])


def camera_info(binning: int = 0, width: int = 1280, height: int = 960) -> CameraInfo:
    info = CameraInfo(width=width, height=height, binning_x=binning, binning_y=binning)
    info.k = K_FULL.reshape(-1).tolist()
    return info


def test_driver_binning_is_folded_in_before_ours() -> None:
    """REP 104: K refers to the full sensor; a driver binning 2 publishes 640x480 images."""
    K = input_intrinsics(camera_info(binning=2), 640, 480)
    np.testing.assert_allclose(K, [[400, 0, 319.5], [0, 405, 239.5], [0, 0, 1]])
    np.testing.assert_allclose(input_intrinsics(camera_info(), 1280, 960), K_FULL)
    # our binning 4 on top: 320x240 working resolution, centre stays the image centre
    info = rectified_camera_info(Header(frame_id="f"), 160, 120,
                                 working_intrinsics(K, 4, None, 160, 120))
    np.testing.assert_allclose(np.array(info.k).reshape(3, 3),
                               [[100, 0, 79.5], [0, 101.25, 59.5], [0, 0, 1]])


@pytest.mark.parametrize(
    ("info", "size", "reason"),
    [
        (camera_info(), (640, 480), "camera_info is for 1280x960 px"),
        (CameraInfo(width=1280, height=960), (1280, 960), "uncalibrated"),
        (CameraInfo(width=1280, height=960, binning_x=2, binning_y=1, k=K_FULL.ravel().tolist()),
         (640, 960), "binning_x=2 != binning_y=1"),
    ],
)
def test_unusable_camera_info_is_rejected(info: CameraInfo, size, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        input_intrinsics(info, *size)


def test_rectified_camera_info_fields() -> None:
    header = Header(frame_id="cam_optical")
    header.stamp.sec = 7
    K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    info = rectified_camera_info(header, 64, 48, K)
    assert (info.width, info.height, info.header.stamp.sec) == (64, 48, 7)
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    np.testing.assert_array_equal(np.array(info.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.array(info.p).reshape(3, 4)[:, :3], K)
    assert np.array(info.p).reshape(3, 4)[:, 3].tolist() == [0.0, 0.0, 0.0]


def test_diagnostics_count_and_warn() -> None:
    stats = FrameStats()
    for replaced in (False, True, True, False):
        stats.received(replaced)
    stats.lost(3)
    stats.published(latency_s=0.25, compute_s=0.2)
    status = diagnostic_status(stats.snapshot(), "codedap_depth: reconstruction", "cpu",
                               "classical", "eager", None)
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "cpu"
    assert (values["frames_in"], values["frames_out"], values["dropped_frames"],
            values["lost_frames"]) == ("4", "1", "2", "3")
    assert values["latency_ms"] == "250.0" and "gpu_memory_mb" not in values
    assert values["rate_hz"] == "0.000" and values["execution"] == "eager"
    stats.rejected("image is 10x10 px")
    status = diagnostic_status(stats.snapshot(), "n", "cuda:0", "dfd-dps", "cuda graph", 512.0)
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN and "10x10" in status.message
    assert values["bad_frames"] == "1" and values["gpu_memory_mb"] == "512.0"
    assert values["execution"] == "cuda graph"


def test_cdr_stamp_is_read_from_the_serialized_header() -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 456_789
    assert cdr_header_stamp_ns(serialize_message(msg)) == 1_700_000_123_000_456_789
