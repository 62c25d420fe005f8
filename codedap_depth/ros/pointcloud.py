# SPDX-License-Identifier: Apache-2.0
"""Organised sensor_msgs/PointCloud2 from depth + colour (a thin wrapper of ``image_codec``).

Layout (README, node outputs): FLOAT32 ``x, y, z`` at bytes 0, 4, 8, ``rgb`` at 16 (the bits of
``0x00RRGGBB`` reinterpreted as float32, as PCL/RViz expect), optional ``sigma`` (metres) at 20,
``point_step`` 32, ``height x width`` = the (strided) image grid, ``is_dense`` false, NaN points
for invalid depth.
"""

from __future__ import annotations

from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from codedap_depth import messages
from codedap_depth.image_codec import CloudData
from codedap_depth.ros.messages import stamp_of, to_rclpy


def cloud_to_msg(cloud: CloudData, header: Header) -> PointCloud2:
    """Wrap a packed payload in a PointCloud2 message with ``header``."""
    return to_rclpy(messages.point_cloud(cloud, *stamp_of(header)))
