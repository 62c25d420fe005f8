# SPDX-License-Identifier: Apache-2.0
"""rclpy message classes by their type name (``"sensor_msgs/msg/Image"`` -> the class)."""

from __future__ import annotations

import importlib


def message_class(msgtype: str) -> type:
    """``"sensor_msgs/msg/Image"`` -> ``sensor_msgs.msg.Image``."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)
