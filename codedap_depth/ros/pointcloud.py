# SPDX-License-Identifier: Apache-2.0
"""Organised sensor_msgs/PointCloud2 from depth + colour (a thin wrapper of ``image_codec``).

Layout (README, node outputs): FLOAT32 ``x, y, z`` at bytes 0, 4, 8, ``rgb`` at 16 (the bits of
``0x00RRGGBB`` reinterpreted as float32, as PCL/RViz expect), optional ``sigma`` (metres) at 20,
``point_step`` 32, ``height x width`` = the (strided) image grid, ``is_dense`` false, NaN points
for invalid depth.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from codedap_depth.image_codec import FLOAT32, CloudData, pack_cloud, unpack_cloud


def cloud_to_msg(cloud: CloudData, header: Header) -> PointCloud2:
    """Wrap a packed payload in a PointCloud2 message with ``header``."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = cloud.height, cloud.width
    msg.fields = [
        PointField(name=name, offset=offset, datatype=FLOAT32, count=1)
        for name, offset in cloud.fields
    ]
    msg.is_bigendian = False
    msg.point_step, msg.row_step = cloud.point_step, cloud.row_step
    msg.data = array.array("B", cloud.data)
    msg.is_dense = False
    return msg


def depth_to_pointcloud2(
    header: Header,
    depth: np.ndarray,
    K: np.ndarray,
    rgb: np.ndarray | None = None,
    *,
    sigma: np.ndarray | None = None,
    stride: int = 1,
    max_relative_uncertainty: float | None = None,
) -> PointCloud2:
    """Back-project ``depth`` ([H, W] metres, NaN invalid) with intrinsics ``K`` into a cloud.

    See ``image_codec.pack_cloud`` for the arguments; ``stride`` decimates rows and columns.
    """
    cloud = pack_cloud(depth, K, rgb, sigma=sigma, stride=stride,
                       max_relative_uncertainty=max_relative_uncertainty)
    return cloud_to_msg(cloud, header)


def pointcloud2_to_arrays(msg: PointCloud2) -> dict[str, np.ndarray]:
    """FLOAT32 fields of an organised cloud as [height, width] arrays (``rgb`` as uint32 bits)."""
    fields = {f.name: f.offset for f in msg.fields if f.datatype == FLOAT32 and f.count == 1}
    return unpack_cloud(fields, msg.height, msg.width, msg.point_step, msg.data,
                        bool(msg.is_bigendian))
