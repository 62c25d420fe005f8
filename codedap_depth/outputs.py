# SPDX-License-Identifier: Apache-2.0
"""The output stage: one ``Reconstruction`` -> everything a front-end publishes or writes.

The node (``ros/runtime.py``), ``bag eval``, ``codedap-depth reconstruct`` and the demo all call
``frame_outputs``, so depth-range masking, uncertainty filtering, the AIF pixels, the
intrinsics and the cloud are computed in one place (as depth_image_proc's shared conversions
header). No ROS and no torch here; the front-ends wrap the arrays in messages or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codedap_depth.image_codec import (
    CloudPoints,
    bin_intrinsics,
    centred_intrinsics,
    cloud_points,
    display_encoding,
    float_to_image,
)


@dataclass(frozen=True)
class OutputSettings:
    """How a reconstruction becomes outputs (the node's parameters of the same names).

    Attributes:
        min_depth, max_depth: metres; depths outside become NaN.
        max_relative_uncertainty: cloud points with ``sigma / depth`` above it become NaN.
        cloud_stride: keep every n-th row and column in the cloud.
        cloud: build the cloud at all (the node's ``publish_points``).
    """

    min_depth: float
    max_depth: float
    max_relative_uncertainty: float
    cloud_stride: int
    cloud: bool


#: no masking and no filtering: the reconstruction as it is (``codedap-depth reconstruct``)
KEEP_ALL = OutputSettings(min_depth=0.0, max_depth=math.inf, max_relative_uncertainty=math.inf,
                          cloud_stride=1, cloud=True)


@dataclass(frozen=True)
class FrameOutputs:
    """One frame's outputs at the working resolution.

    Attributes:
        depth: [H, W] float32 metres along z; NaN where invalid or outside
            [min_depth, max_depth] (never 0, REP 118).
        uncertainty: [H, W] float32 metres (std); NaN where ``depth`` is.
        aif: [H, W, C] float32 all-in-focus intensities in [0, 1] (C = 1 or 3, as reconstructed).
        aif_encoding: ``rgb8`` or ``mono8`` (``image_codec.display_encoding``).
        aif_pixels: [H, W(, 3)] uint8 pixels of ``aif`` in ``aif_encoding``.
        K: 3x3 intrinsics in pixels, or None (no camera_info and no focal length).
        cloud: the organised cloud (``sigma`` included), or None without ``K`` or when
            ``OutputSettings.cloud`` is off.
    """

    depth: np.ndarray
    uncertainty: np.ndarray
    aif: np.ndarray
    aif_encoding: str
    aif_pixels: np.ndarray
    K: np.ndarray | None
    cloud: CloudPoints | None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        height, width = self.depth.shape
        return width, height


def working_intrinsics(input_K: np.ndarray | None, binning: int, fx: float | None, width: int,
                       height: int) -> np.ndarray | None:
    """K of the ``width`` x ``height`` working image: the input's K (of the unbinned frame, e.g.
    from camera_info) binned, else a centred K from the camera model's ``fx`` (pixels at the
    working resolution), else None."""
    if input_K is not None:
        return bin_intrinsics(input_K, binning)
    if fx is not None:
        return centred_intrinsics(fx, width, height)
    return None


def frame_outputs(result, K: np.ndarray | None, settings: OutputSettings) -> FrameOutputs:
    """The outputs of one ``pipeline.Reconstruction`` (``depth``, ``uncertainty``, ``aif``).

    Args:
        result: the reconstruction.
        K: 3x3 intrinsics of the working image (``working_intrinsics``), or None.
        settings: depth range, uncertainty filter and cloud settings.
    """
    depth = np.asarray(result.depth, dtype=np.float32).copy()
    with np.errstate(invalid="ignore"):
        depth[~((depth >= settings.min_depth) & (depth <= settings.max_depth))] = np.nan
    sigma = np.asarray(result.uncertainty, dtype=np.float32).copy()
    sigma[~np.isfinite(depth)] = np.nan
    aif = np.asarray(result.aif, dtype=np.float32)
    encoding = display_encoding(aif)
    pixels = float_to_image(aif, encoding)
    cloud = None
    if K is not None and settings.cloud:
        colour = pixels if encoding == "rgb8" else float_to_image(aif, "rgb8")
        cloud = cloud_points(depth, K, colour, sigma=sigma, stride=settings.cloud_stride,
                             max_relative_uncertainty=settings.max_relative_uncertainty)
    return FrameOutputs(depth, sigma, aif, encoding, pixels,
                        None if K is None else np.asarray(K, dtype=np.float64).reshape(3, 3),
                        cloud)
