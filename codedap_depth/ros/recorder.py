# SPDX-License-Identifier: Apache-2.0
"""Record ROS 2 topics into a rosbag2 (MCAP or sqlite3) with the ``rosbags`` writer.

Messages are taken serialized (``raw=True``) and written as they came, with the receive time as
the log time, like ``ros2 bag record``. The recorder also notes when each stamped message
arrived, for latency measurements.
"""

from __future__ import annotations

import struct
import threading
import time
from functools import partial

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from codedap_depth.bags.rosbag import BagWriter
from codedap_depth.names import DIAGNOSTIC_ARRAY
from codedap_depth.ros.messages import message_class

#: reliable with some slack, so nothing the node publishes is missed
RECORD_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE
)


def cdr_header_stamp_ns(data: bytes) -> int:
    """Stamp of a serialized message whose first field is a std_msgs/Header, in ns.

    CDR: a 4-byte encapsulation header (``00 01`` little-endian, ``00 00`` big-endian), then
    ``builtin_interfaces/Time`` (int32 sec, uint32 nanosec).
    """
    order = "<" if data[1] == 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    return sec * 10**9 + nanosec


class BagRecorder(Node):
    """Writes every message of ``topics`` (name -> type, e.g. ``sensor_msgs/msg/Image``)."""

    def __init__(self, writer: BagWriter, topics: dict[str, str], **kwargs) -> None:
        super().__init__("codedap_depth_recorder", **kwargs)
        self._writer = writer
        self._lock = threading.Lock()
        #: topic -> [(header stamp ns, wall-clock receive time.time())]
        self.arrivals: dict[str, list[tuple[int, float]]] = {t: [] for t in topics}
        #: key/values of the newest DiagnosticStatus per status name
        self.diagnostics: dict[str, dict[str, str]] = {}
        for topic, msgtype in topics.items():
            self.create_subscription(message_class(msgtype), topic,
                                     partial(self._on_message, topic, msgtype), RECORD_QOS,
                                     raw=True)

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        received = time.time()
        with self._lock:
            self._writer.write_raw(topic, msgtype, data, self.get_clock().now().nanoseconds)
            self.arrivals[topic].append((cdr_header_stamp_ns(data), received))
        if msgtype == DIAGNOSTIC_ARRAY:
            for status in deserialize_message(data, DiagnosticArray).status:
                self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def stamps(self, topic: str) -> set[int]:
        """Header stamps (ns) received on ``topic`` so far."""
        with self._lock:
            return {stamp for stamp, _ in self.arrivals[topic]}
