# SPDX-License-Identifier: Apache-2.0
"""The node's QoS profiles. Each call returns a new object: rclpy's QoS-override declaration
(``qos_overriding_options``) writes the overridden policies into the profile it is given, so a
profile shared by two topics would carry one topic's override into the other.

Input choice: ``image_raw`` is **reliable**, keep-last 1. On FastDDS (the default RMW) a
best-effort sample above the writer's shared-memory segment (512 KiB by default, set by the
*publisher's* participant, which this node cannot change) loses fragments that are never
repaired: 640x480 rgb8 (0.9 MB) and 1280x960 (3.7 MB) frames then never arrive. A reliable
reader gets the lost fragments re-sent, and keep-last 1 means it never queues old frames. A
best-effort camera publisher does not match a reliable subscription; the node reports that
(incompatible QoS) and ``qos_overrides.<ns>/image_raw.subscription.reliability:=best_effort``
restores the match (for frames below 0.5 MB, or with a larger segment on both sides).
``camera_info`` is small, so it stays best effort, which matches either kind of publisher.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def image_input_qos() -> QoSProfile:
    """``image_raw`` (and ``image_raw/compressed``): reliable, keep-last 1, volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def camera_info_qos() -> QoSProfile:
    """``camera_info``: best effort, keep-last 5 (SensorDataQoS), matches any publisher."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos() -> QoSProfile:
    """Outputs: reliable, keep-last 1 (a late subscriber gets the newest result, no older)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def diagnostics_qos() -> QoSProfile:
    """``/diagnostics``, as diagnostic_updater publishes it: reliable, keep-last 10."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10)
