# SPDX-License-Identifier: Apache-2.0
"""rclpy messages: classes by type name, and built from a ``codedap_depth.messages``
description (the one the rosbags code builds from too)."""

from __future__ import annotations

import array
import importlib

import numpy as np

from codedap_depth.messages import Message, build


def message_class(msgtype: str) -> type:
    """``"sensor_msgs/msg/Image"`` -> ``sensor_msgs.msg.Image``."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def stamp_of(header) -> tuple[int, str]:
    """(stamp in nanoseconds, frame_id) of an rclpy ``std_msgs/Header``, or (0, "") for None."""
    if header is None:
        return 0, ""
    return header.stamp.sec * 10**9 + header.stamp.nanosec, header.frame_id


def to_rclpy(message: Message):
    """The rclpy message of a description (``codedap_depth.messages``)."""
    return build(message, message_class, _leaf)


def _leaf(value):
    if isinstance(value, bytes):
        return array.array("B", value)  # rclpy's uint8[] type: no per-element check
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
