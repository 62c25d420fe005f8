# SPDX-License-Identifier: Apache-2.0
"""CameraInfo for the node's outputs: intrinsics of the incoming stream, scaled for binning.

The outputs are rectified images at the working resolution, so the published CameraInfo has
``D = 0`` (plumb_bob), ``R = I`` and ``P = [K | 0]``, where ``K`` is the input ``K`` binned
(``image_codec.bin_intrinsics``). Binning that the camera driver already applied
(``binning_x``/``binning_y`` > 1, REP 104: K then refers to the full sensor) is folded in first.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from codedap_depth import messages
from codedap_depth.image_codec import bin_intrinsics
from codedap_depth.ros.messages import stamp_of, to_rclpy


def input_intrinsics(info: CameraInfo, width: int, height: int) -> np.ndarray:
    """The 3x3 ``K`` of an image of ``width`` x ``height`` px described by ``info``.

    Raises:
        ValueError: ``info`` has no calibration (fx = 0), unequal or unsupported driver binning,
            or a size that does not match the image.
    """
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError("camera_info is uncalibrated (K has fx or fy <= 0)")
    bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    if bx != by:
        raise ValueError(f"camera_info binning_x={bx} != binning_y={by} is not supported")
    if info.width // bx != width or info.height // by != height:
        raise ValueError(
            f"camera_info is for {info.width}x{info.height} px (binning {bx}) but the image is "
            f"{width}x{height} px"
        )
    return bin_intrinsics(K, bx)


def distortion_problem(info: CameraInfo) -> str | None:
    """Why ``info`` cannot describe the node's input, or None if it can.

    The reconstruction assumes a rectified (distortion-free pinhole) image, so any non-zero
    coefficient in ``D`` is refused rather than dropped: the node would otherwise publish
    outputs labelled rectified and a pinhole cloud of a distorted image.
    """
    coefficients = [float(c) for c in info.d]
    if not any(coefficients):
        return None
    shown = ", ".join(f"{c:g}" for c in coefficients)
    return (f"camera_info has lens distortion ({info.distortion_model or 'no model'}, "
            f"D=[{shown}]) but the depth model needs a rectified image: feed image_rect "
            f"(image_proc's rectify node) and its camera_info instead")


def rectified_camera_info(header: Header, width: int, height: int, K: np.ndarray) -> CameraInfo:
    """CameraInfo of a rectified ``width`` x ``height`` image with intrinsics ``K`` (3x3, px)."""
    return to_rclpy(messages.camera_info(K, width, height, *stamp_of(header)))
