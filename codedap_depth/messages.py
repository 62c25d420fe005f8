# SPDX-License-Identifier: Apache-2.0
"""One description of each message this package writes, for rclpy and rosbags alike.

A ``Message`` is a type name and the value of every field: plain ints, floats and strings,
``bytes`` for ``uint8[]``, float64 numpy arrays for ``float64[]`` / ``float64[N]``, nested
``Message``\\ s and lists of them. ``build`` turns a description into a message of a library;
``ros/messages.to_rclpy`` and ``bags.rosbag.to_rosbags`` call it with their classes, and a test
checks that both give the same message.
No ROS here (the image and cloud payloads come from ``image_codec``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codedap_depth.image_codec import FLOAT32, CloudData, encode_image, encode_png
from codedap_depth.names import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, POINTCLOUD2


@dataclass(frozen=True)
class Message:
    """A message by type name (``sensor_msgs/msg/Image``) and field values (every field)."""

    msgtype: str
    fields: dict[str, object]


def build(message: Message, message_type, leaf):
    """A library's message of a description: ``message_type(name)`` gives its class, ``leaf``
    converts a field value that is no message (``bytes``, numpy arrays) to its types."""

    def value(field):
        if isinstance(field, Message):
            return build(field, message_type, leaf)
        if isinstance(field, list):
            return [value(item) for item in field]
        return leaf(field)

    return message_type(message.msgtype)(**{name: value(field)
                                            for name, field in message.fields.items()})


def header(stamp_ns: int, frame_id: str) -> Message:
    """``std_msgs/msg/Header`` of a stamp in nanoseconds."""
    stamp = Message("builtin_interfaces/msg/Time",
                    {"sec": stamp_ns // 10**9, "nanosec": stamp_ns % 10**9})
    return Message("std_msgs/msg/Header", {"stamp": stamp, "frame_id": frame_id})


def image(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, *,
          step: int | None = None, bigendian: bool | None = None) -> Message:
    """``sensor_msgs/msg/Image`` of ``pixels`` (the encoding's dtype; ``image_codec.encode_image``
    for ``step`` and ``bigendian``, default tight rows in host order as cv_bridge)."""
    options = {} if bigendian is None else {"bigendian": bigendian}
    payload = encode_image(pixels, encoding, step=step, **options)
    return Message(IMAGE, {
        "header": header(stamp_ns, frame_id), "height": payload.height, "width": payload.width,
        "encoding": payload.encoding, "is_bigendian": int(payload.is_bigendian),
        "step": payload.step, "data": bytes(payload.data)})


def compressed_image(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str
                     ) -> Message:
    """``sensor_msgs/msg/CompressedImage`` of 8-bit ``pixels`` as PNG, with the ``format``
    string image_transport's compressed transport writes."""
    return Message(COMPRESSED_IMAGE, {
        "header": header(stamp_ns, frame_id), "format": f"{encoding}; png compressed {encoding}",
        "data": encode_png(pixels)})


def camera_info(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str
                ) -> Message:
    """Rectified ``sensor_msgs/msg/CameraInfo`` of a ``width`` x ``height`` image with
    intrinsics ``K`` (3x3, px): plumb_bob with D = 0, R = I, P = [K | 0], no binning or ROI."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    roi = Message("sensor_msgs/msg/RegionOfInterest", {
        "x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False})
    return Message(CAMERA_INFO, {
        "header": header(stamp_ns, frame_id), "height": int(height), "width": int(width),
        "distortion_model": "plumb_bob", "d": np.zeros(5), "k": K.reshape(-1),
        "r": np.eye(3).reshape(-1), "p": np.hstack([K, np.zeros((3, 1))]).reshape(-1),
        "binning_x": 0, "binning_y": 0, "roi": roi})


def point_cloud(cloud: CloudData, stamp_ns: int, frame_id: str) -> Message:
    """``sensor_msgs/msg/PointCloud2`` of a packed payload (``image_codec.pack_points``)."""
    fields = [Message("sensor_msgs/msg/PointField",
                      {"name": name, "offset": offset, "datatype": FLOAT32, "count": 1})
              for name, offset in cloud.fields]
    return Message(POINTCLOUD2, {
        "header": header(stamp_ns, frame_id), "height": cloud.height, "width": cloud.width,
        "fields": fields, "is_bigendian": False, "point_step": cloud.point_step,
        "row_step": cloud.row_step, "data": bytes(cloud.data), "is_dense": False})
