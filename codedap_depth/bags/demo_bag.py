# SPDX-License-Identifier: Apache-2.0
"""The demo bag (``codedap-depth bag make``): a short camera sweep over real-geometry scenes
(Middlebury motorcycle, then the photo-textured layered scene; the crop window slides a few
pixels per frame), rendered through the coded aperture with sensor noise, with ground truth.

Demo bag layout (``frame_id`` ``camera_optical_frame``, stamps = log times, ``--hz`` apart):

========================  ===========================  =========================================
topic                     type                         content
========================  ===========================  =========================================
/camera/image_raw         sensor_msgs/msg/Image        coded capture, ``rgb8``
/camera/camera_info       sensor_msgs/msg/CameraInfo   pinhole K of the frames (D = 0)
/camera/depth_gt          sensor_msgs/msg/Image        ``32FC1`` metres along z, NaN = unknown
/camera/aif_gt            sensor_msgs/msg/Image        ``rgb8`` all-in-focus ground truth
========================  ===========================  =========================================

The images are ``rgb8`` because that is what colour cameras and drivers publish; 8-bit
quantisation adds noise of std 1/(255 sqrt(12)) = 0.0011, well below the simulated sensor noise
(default 0.01). The bag's ``custom_data`` (metadata.yaml) records the camera model
(``codedap_depth.camera``, YAML at the bag's resolution), the noise sigma and the scene of each
frame, so ``bag eval`` needs no other input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codedap_depth import messages
from codedap_depth.bags.rosbag import (
    AIF_GT_TOPIC,
    CUSTOM_CAMERA,
    CUSTOM_NOISE,
    CUSTOM_SCENES,
    DEPTH_GT_TOPIC,
    IMAGE_TOPIC,
    INFO_TOPIC,
    BagWriter,
)
from codedap_depth.image_codec import centred_intrinsics, float_to_image
from codedap_depth.optics import Camera, camera_for_size, camera_to_yaml, load_camera

FRAME_ID = "camera_optical_frame"
#: first stamp of a demo bag (2023-11-14T22:13:20Z), nanoseconds
STAMP0_NS = 1_700_000_000 * 10**9


@dataclass(frozen=True)
class MadeBag:
    """What ``make_demo_bag`` wrote.

    Attributes:
        path: the bag directory.
        frames: number of image frames.
        size: (width, height) px.
        scenes: scene name of each frame.
        camera: the camera model at the bag's resolution.
    """

    path: Path
    frames: int
    size: tuple[int, int]
    scenes: tuple[str, ...]
    camera: Camera


def make_demo_bag(
    out: str | Path,
    *,
    storage: str = "sqlite3",
    frames: int = 8,
    size: tuple[int, int] = (320, 240),
    noise: float = 0.01,
    hz: float = 5.0,
    shift_px: int = 3,
    seed: int = 0,
    scenes: tuple[str, ...] = ("motorcycle", "layered"),
    camera: Camera | None = None,
    compressed: bool = False,
) -> MadeBag:
    """Write a demo bag of coded frames with ground truth (see the module docstring).

    Args:
        out: bag directory to create (must not exist).
        storage: ``sqlite3`` or ``mcap``.
        frames: number of frames, split evenly (in order) between ``scenes``.
        size: (width, height) px of the frames.
        noise: Gaussian sensor noise sigma on [0, 1] intensities.
        hz: frame rate of the stamps.
        shift_px: the crop window slides this many pixels per frame (a sideways pan).
        seed: noise seed of frame 0 (frame i uses ``seed + i``).
        scenes: scene names (``codedap_depth.scenes``).
        camera: camera model (default: the package's config/camera.yaml), rescaled to ``size``.
        compressed: write the coded frames as image_transport does for the ``compressed``
            transport: ``/camera/image_raw/compressed``, sensor_msgs/CompressedImage, PNG.
    """
    from codedap_depth.optics import synthesize_bank
    from codedap_depth.paths import share_file
    from codedap_depth.scenes import Scene, load_scene
    from codedap_depth.simulate import simulate_capture

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not hz > 0:
        raise ValueError(f"hz must be positive, got {hz}")
    width, height = size
    camera = camera_for_size(camera or load_camera(share_file("config/camera.yaml")), *size)
    bank = synthesize_bank(camera)
    K = centred_intrinsics(camera.fx, width, height)
    per_scene = [len(range(i, frames, len(scenes))) for i in range(len(scenes))]
    names: list[str] = []
    with BagWriter(out, storage) as writer:
        index = 0
        for name, count in zip(scenes, per_scene, strict=True):
            if count == 0:
                continue
            wide = load_scene(name, (camera.near, camera.far), (width + shift_px * (count - 1),
                                                                height))
            for j in range(count):
                window = slice(j * shift_px, j * shift_px + width)
                view = Scene(name=name, rgb=wide.rgb[:, window], depth=wide.depth[:, window])
                coded = simulate_capture(view, bank, noise, seed + index)
                stamp = STAMP0_NS + round(index * 1e9 / hz)
                pixels = float_to_image(coded, "rgb8")
                if compressed:
                    writer.write(f"{IMAGE_TOPIC}/compressed",
                                 messages.compressed_image(pixels, "rgb8", stamp, FRAME_ID), stamp)
                else:
                    writer.write(IMAGE_TOPIC, messages.image(pixels, "rgb8", stamp, FRAME_ID),
                                 stamp)
                writer.write(INFO_TOPIC, messages.camera_info(K, width, height, stamp,
                                                                  FRAME_ID), stamp)
                writer.write(DEPTH_GT_TOPIC, messages.image(
                    view.depth.astype(np.float32), "32FC1", stamp, FRAME_ID), stamp)
                writer.write(AIF_GT_TOPIC, messages.image(
                    float_to_image(view.rgb, "rgb8"), "rgb8", stamp, FRAME_ID), stamp)
                names.append(name)
                index += 1
        writer.set_custom_data(CUSTOM_CAMERA, camera_to_yaml(camera))
        writer.set_custom_data(CUSTOM_NOISE, repr(float(noise)))
        writer.set_custom_data(CUSTOM_SCENES, json.dumps(names))
    return MadeBag(Path(out), frames, (width, height), tuple(names), camera)
