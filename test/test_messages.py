# SPDX-License-Identifier: Apache-2.0
"""One description per message (``codedap_depth.messages``): rclpy and rosbags build the same
message from it, and the rclpy helpers the node uses are built from it.

(The serialised bytes themselves are not compared: rclpy leaves CDR alignment padding
uninitialised, so two serialisations of one message can differ in their padding.)"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from codedap_depth import messages
from codedap_depth.bags.rosbag import serialize
from codedap_depth.image_codec import cloud_points, pack_points
from codedap_depth.ros.camera_info import rectified_camera_info
from codedap_depth.ros.image_conversion import array_to_imgmsg
from codedap_depth.ros.messages import to_rclpy
from codedap_depth.ros.pointcloud import cloud_to_msg

STAMP, FRAME = 1_700_000_123_456_789_012, "cam_optical"
K = np.array([[100.0, 0.0, 31.5], [0.0, 101.0, 23.5], [0.0, 0.0, 1.0]])
rng = np.random.default_rng(0)
DEPTH = rng.uniform(0.5, 5.0, (6, 8)).astype(np.float32)
CLOUD = pack_points(cloud_points(DEPTH, K, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
                                 sigma=np.full((6, 8), 0.1, np.float32)))

DESCRIPTIONS = {
    "header": messages.header(STAMP, FRAME),
    "rgb8": messages.image(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "rgb8", STAMP,
                           FRAME),
    "32FC1": messages.image(DEPTH, "32FC1", STAMP, FRAME),
    "padded big-endian mono16": messages.image(
        rng.integers(0, 2**16, (6, 8), dtype=np.uint16), "mono16", STAMP, FRAME, step=20,
        bigendian=True),
    "compressed": messages.compressed_image(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
                                            "rgb8", STAMP, FRAME),
    "camera_info": messages.camera_info(K, 64, 48, STAMP, FRAME),
    "points": messages.point_cloud(CLOUD, STAMP, FRAME),
}


@pytest.mark.parametrize("name", list(DESCRIPTIONS))
def test_rclpy_and_rosbags_build_the_same_message(name: str) -> None:
    description = DESCRIPTIONS[name]
    built = to_rclpy(description)
    assert deserialize_message(serialize(description), type(built)) == built
    assert deserialize_message(serialize_message(built), type(built)) == built


def header() -> Header:
    msg = Header(frame_id=FRAME)
    msg.stamp.sec, msg.stamp.nanosec = divmod(STAMP, 10**9)
    return msg


def test_the_node_helpers_build_from_the_descriptions() -> None:
    assert array_to_imgmsg(DEPTH, "32FC1", header()) == to_rclpy(DESCRIPTIONS["32FC1"])
    assert rectified_camera_info(header(), 64, 48, K) == to_rclpy(DESCRIPTIONS["camera_info"])
    assert cloud_to_msg(CLOUD, header()) == to_rclpy(DESCRIPTIONS["points"])
    assert array_to_imgmsg(DEPTH, "32FC1").header == Header()  # no header: an empty one
