# SPDX-License-Identifier: Apache-2.0
"""Organised PointCloud2 packing: the README's `points` layout, back-projection, rgb bits, NaN."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ros_helpers import pointcloud2_to_arrays
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from codedap_depth.image_codec import cloud_points, pack_points, pack_rgb
from codedap_depth.ros.pointcloud import cloud_to_msg


def depth_to_pointcloud2(header, depth, K, rgb=None, **options):
    """The node's path: cloud arrays (``image_codec.cloud_points``), packed, in a message."""
    return cloud_to_msg(pack_points(cloud_points(depth, K, rgb, **options)), header)


K = np.array([[50.0, 0.0, 3.5], [0.0, 52.0, 2.0], [0.0, 0.0, 1.0]])


def scene(height: int = 5, width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 5.0, size=(height, width)).astype(np.float32)
    depth[1, 2] = np.nan
    rgb = rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)
    return depth, rgb


def point(msg, row: int, col: int, fmt: str = "<fff4xI") -> tuple:
    """Unpack one point straight from the bytes (independent of the numpy path)."""
    start = row * msg.row_step + col * msg.point_step
    return struct.unpack_from(fmt, bytes(msg.data[start : start + msg.point_step]))


def test_layout_matches_the_design() -> None:
    depth, rgb = scene()
    msg = depth_to_pointcloud2(Header(frame_id="cam"), depth, K, rgb)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 16, PointField.FLOAT32, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (5, 8, 32, 32 * 8)
    assert len(msg.data) == 5 * 8 * 32
    assert msg.is_dense is False and msg.is_bigendian is False
    assert msg.header.frame_id == "cam"


def test_back_projection_and_colour_bits() -> None:
    depth, rgb = scene()
    msg = depth_to_pointcloud2(Header(), depth, K, rgb)
    for row, col in ((0, 0), (4, 7), (2, 3), (3, 1)):
        x, y, z, bits = point(msg, row, col)
        d = float(depth[row, col])
        assert z == pytest.approx(d, rel=1e-6)
        assert x == pytest.approx((col - K[0, 2]) * d / K[0, 0], rel=1e-5, abs=1e-6)
        assert y == pytest.approx((row - K[1, 2]) * d / K[1, 1], rel=1e-5, abs=1e-6)
        r, g, b = (int(c) for c in rgb[row, col])
        assert bits == (r << 16) | (g << 8) | b
    # the rgb field is FLOAT32 holding those bits (what PCL/RViz reinterpret)
    as_float = point(msg, 4, 7, "<16xf12x")[0]
    assert struct.unpack("<I", struct.pack("<f", as_float))[0] == point(msg, 4, 7)[3]


def test_invalid_depth_gives_nan_points_that_keep_their_colour() -> None:
    depth, rgb = scene()
    depth[0, 0] = 0.0
    depth[4, 4] = np.inf
    msg = depth_to_pointcloud2(Header(), depth, K, rgb)
    for row, col in ((1, 2), (0, 0), (4, 4)):
        x, y, z, bits = point(msg, row, col)
        assert np.isnan([x, y, z]).all()
        assert bits == int(pack_rgb(rgb[row, col]))
    arrays = pointcloud2_to_arrays(msg)
    assert np.isnan(arrays["z"]).sum() == 3


def test_sigma_field_and_relative_uncertainty_filter() -> None:
    depth, rgb = scene()
    sigma = np.full_like(depth, 0.01)
    sigma[3, 5] = 0.5 * depth[3, 5]
    msg = depth_to_pointcloud2(Header(), depth, K, rgb, sigma=sigma, max_relative_uncertainty=0.2)
    assert [(f.name, f.offset) for f in msg.fields][-1] == ("sigma", 20)
    assert msg.point_step == 32
    assert point(msg, 0, 0, "<20xf8x")[0] == pytest.approx(0.01)
    assert np.isnan(point(msg, 3, 5)[2])
    assert not np.isnan(point(msg, 3, 4)[2])
    kept = depth_to_pointcloud2(Header(), depth, K, rgb, sigma=sigma)
    assert not np.isnan(point(kept, 3, 5)[2])


def test_stride_decimates_and_keeps_pixel_coordinates() -> None:
    depth, rgb = scene(height=7, width=10)
    msg = depth_to_pointcloud2(Header(), depth, K, rgb, stride=3)
    assert (msg.height, msg.width) == (3, 4)
    x, y, z, _ = point(msg, 2, 3)  # source pixel (row 6, col 9)
    assert z == pytest.approx(depth[6, 9])
    assert x == pytest.approx((9 - K[0, 2]) * depth[6, 9] / K[0, 0], rel=1e-5)
    assert y == pytest.approx((6 - K[1, 2]) * depth[6, 9] / K[1, 1], rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        depth_to_pointcloud2(Header(), depth, K, rgb, stride=0)


def test_unpack_round_trip() -> None:
    depth, rgb = scene()
    arrays = pointcloud2_to_arrays(depth_to_pointcloud2(Header(), depth, K, rgb))
    np.testing.assert_allclose(arrays["z"], depth, equal_nan=True)
    np.testing.assert_array_equal(arrays["rgb"], pack_rgb(rgb))
