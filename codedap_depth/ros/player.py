# SPDX-License-Identifier: Apache-2.0
"""Replay a bag's image topic (and the camera_info beside it) into ROS 2: ``bag play``.

The image topic may be sensor_msgs/Image or sensor_msgs/CompressedImage (image_transport's
``compressed`` transport, e.g. ``/camera/image_raw/compressed``); it goes out with its type.

Messages go out as the serialized CDR stored in the bag (no decode/encode round trip), at the
recorded log-time spacing divided by ``rate``, or at a fixed ``hz``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from codedap_depth.bags.rosbag import TYPESTORE, select_image_topic, sibling, stamp_ns
from codedap_depth.names import CAMERA_INFO, CAMERA_INFO_INPUT, IMAGE
from codedap_depth.ros.messages import message_class

#: like a camera driver: reliable (also reaches best-effort subscribers), a short history
PLAYBACK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE
)

#: after a subscriber shows up, let it discover this publisher too before the first message
DISCOVERY_GRACE_S = 0.5


@dataclass(frozen=True)
class PlayResult:
    """What ``play_bag`` published.

    Attributes:
        frames: image messages published.
        seconds: wall time of the playback.
        published: (header stamp ns, wall-clock ``time.time()`` of publishing) per image.
    """

    frames: int
    seconds: float
    published: tuple[tuple[int, float], ...]


class BagPlayer(Node):
    """Publishes serialized images (and optionally camera_info) on the given topics."""

    def __init__(self, image_topic: str, info_topic: str | None, image_type: str = IMAGE,
                 **kwargs) -> None:
        super().__init__("codedap_depth_bag_player", **kwargs)
        self.image_pub = self.create_publisher(message_class(image_type), image_topic,
                                               PLAYBACK_QOS)
        self.info_pub = None
        if info_topic is not None:
            self.info_pub = self.create_publisher(message_class(CAMERA_INFO), info_topic,
                                                  PLAYBACK_QOS)

    def flush(self, timeout_s: float = 2.0) -> None:
        """Before exiting: give reliable subscribers up to ``timeout_s`` to acknowledge the
        last messages (a publisher that is destroyed at once can take them with it)."""
        for publisher in (self.image_pub, self.info_pub):
            if publisher is not None:
                publisher.wait_for_all_acked(Duration(seconds=timeout_s))

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """True once the image topic has a subscriber (False after ``timeout_s``); also waits
        up to 3 s for a camera_info subscriber (discovery is slow on a loaded machine).

        Discovery is two-sided: when this publisher sees the subscription, the subscriber may
        not have matched the publisher yet, so a short grace period follows."""
        deadline = time.monotonic() + timeout_s
        while self.image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        # camera_info is optional for subscribers: give it a short while, not the full timeout
        deadline = time.monotonic() + 3.0
        while (self.info_pub is not None and self.info_pub.get_subscription_count() == 0
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(DISCOVERY_GRACE_S)
        return True


def play_bag(
    bag: str | Path,
    *,
    rate: float = 1.0,
    hz: float | None = None,
    topic: str | None = None,
    publish_as: str | None = None,
    wait_s: float = 5.0,
    loop: bool = False,
    context: Context | None = None,
) -> PlayResult:
    """Publish ``bag``'s image topic into ROS 2.

    Args:
        bag: rosbag2 directory (sqlite3 or MCAP).
        rate: speed factor on the recorded timing (2 = twice as fast).
        hz: fixed frame rate instead of the recorded timing.
        topic: image topic in the bag (default ``/camera/image_raw`` or the only Image topic).
        publish_as: publish under this topic (camera_info beside it); default: as recorded.
        wait_s: wait up to this long for a subscriber before the first message.
        loop: start over at the end until interrupted (Ctrl-C).
        context: an initialised rclpy context; default: a private one, shut down at the end.
    """
    if not rate > 0 or (hz is not None and not hz > 0):
        raise ValueError("rate and hz must be positive")
    own_context = context is None
    if own_context:
        context = Context()
        rclpy.init(context=context)
    published: list[tuple[int, float]] = []
    start = time.monotonic()
    try:
        with Reader(bag) as reader:
            topic = select_image_topic(reader, bag, topic)
            info_topic = sibling(topic, CAMERA_INFO_INPUT)
            has_info = info_topic in reader.topics
            out_image = publish_as or topic
            out_info = sibling(out_image, CAMERA_INFO_INPUT) if has_info else None
            player = BagPlayer(out_image, out_info, reader.topics[topic].msgtype,
                               context=context)
            try:
                player.wait_for_subscribers(wait_s)
                wanted = [c for c in reader.connections if c.topic in (topic, info_topic)]
                start = time.monotonic()
                while True:
                    _play_once(reader, wanted, topic, player, rate, hz, published)
                    if not loop:
                        break
                player.flush()
            except KeyboardInterrupt:
                pass
            finally:
                player.destroy_node()
    finally:
        if own_context:
            context.try_shutdown()
    return PlayResult(len(published), time.monotonic() - start, tuple(published))


def _play_once(reader: Reader, connections: list, image_topic: str, player: BagPlayer,
               rate: float, hz: float | None, published: list[tuple[int, float]]) -> None:
    t0_wall, t0_log, frame = time.monotonic(), None, 0
    for conn, log_time, raw in reader.messages(connections=connections):
        is_image = conn.topic == image_topic
        if hz is not None:  # fixed rate: images are paced, camera_info follows at once
            due = t0_wall + frame / hz if is_image else 0.0
        else:
            t0_log = log_time if t0_log is None else t0_log
            due = t0_wall + (log_time - t0_log) / 1e9 / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if is_image:
            player.image_pub.publish(bytes(raw))
            stamp = stamp_ns(TYPESTORE.deserialize_cdr(raw, conn.msgtype))
            published.append((stamp, time.time()))
            frame += 1
        elif player.info_pub is not None:
            player.info_pub.publish(bytes(raw))
