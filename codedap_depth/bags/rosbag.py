# SPDX-License-Identifier: Apache-2.0
"""Reading and writing rosbag2 directories (sqlite3 and MCAP) with the ``rosbags`` library.

Messages are written from ``codedap_depth.messages`` descriptions (the ones the rclpy code
builds from too) and read back as rosbags messages. ``read_frames`` pairs each coded image
with the ground truth and camera_info that share its stamp. No rclpy and no torch here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from codedap_depth.image_codec import (
    bin_intrinsics,
    decode_compressed,
    decode_image,
    image_to_float,
)
from codedap_depth.messages import Message, build
from codedap_depth.names import CAMERA_INFO_INPUT, COMPRESSED_IMAGE, IMAGE, IMAGE_INPUT

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
#: message types a bag's coded images can have (``compressed``: image_transport, PNG or JPEG)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
NAMESPACE = "/camera"
IMAGE_TOPIC, INFO_TOPIC = f"{NAMESPACE}/{IMAGE_INPUT}", f"{NAMESPACE}/{CAMERA_INFO_INPUT}"
DEPTH_GT_TOPIC, AIF_GT_TOPIC = f"{NAMESPACE}/depth_gt", f"{NAMESPACE}/aif_gt"
#: keys of a bag's ``custom_data`` (metadata.yaml) this package writes and reads
CUSTOM_CAMERA, CUSTOM_NOISE, CUSTOM_SCENES = (
    "codedap_depth.camera", "codedap_depth.noise_sigma", "codedap_depth.scenes"
)
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


def to_rosbags(message: Message):
    """The rosbags message of a description (``codedap_depth.messages``)."""
    return build(message, TYPESTORE.types.__getitem__, _leaf)


def _leaf(value):
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=np.uint8)
    return value


def serialize(message: Message) -> bytes:
    """CDR bytes of a description, as rclpy's ``serialize_message`` writes them."""
    return bytes(TYPESTORE.serialize_cdr(to_rosbags(message), message.msgtype))


def stamp_ns(msg) -> int:
    """Header stamp of a (rosbags) message in nanoseconds."""
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def decode_image_msg(msg) -> np.ndarray:
    """Pixels of a rosbags Image (cv_bridge passthrough semantics, see ``image_codec``)."""
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        bool(msg.is_bigendian))


def decode_any_image(msg, msgtype: str) -> tuple[np.ndarray, str]:
    """(pixels, encoding) of a rosbags Image or CompressedImage (PNG/JPEG)."""
    if msgtype == COMPRESSED_IMAGE:
        decoded = decode_compressed(msg.data)
        return decoded.pixels, decoded.encoding
    return decode_image_msg(msg), msg.encoding


class BagWriter:
    """A rosbag2 writer that adds connections on first use and serialises messages."""

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self._writer = Writer(Path(path), version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def write(self, topic: str, message: Message, log_time_ns: int) -> None:
        """Serialise a message description (``codedap_depth.messages``) to ``topic`` at
        ``log_time_ns``."""
        self.write_raw(topic, message.msgtype, serialize(message), log_time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview, log_time_ns: int
                  ) -> None:
        """Write CDR bytes (e.g. as received from rclpy with ``raw=True``)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                                   typestore=TYPESTORE)
        self._writer.write(self._connections[topic], log_time_ns, bytes(data))


def bag_custom_data(bag: str | Path) -> dict[str, str]:
    """``custom_data`` of a rosbag2 directory's metadata.yaml ({} if none)."""
    meta = Path(bag) / "metadata.yaml"
    if not meta.is_file():
        raise FileNotFoundError(f"{bag}: not a rosbag2 directory (no metadata.yaml)")
    info = yaml.safe_load(meta.read_text()).get("rosbag2_bagfile_information", {})
    return dict(info.get("custom_data") or {})


@dataclass(frozen=True)
class BagFrame:
    """One image of a bag with whatever ground truth shares its stamp.

    Attributes:
        index: position in the bag.
        stamp_ns: header stamp, nanoseconds.
        frame_id: header frame_id.
        encoding: the image's encoding.
        pixels: decoded image (``image_codec.decode_image``).
        K: intrinsics from the bag's camera_info (None if absent or uncalibrated).
        depth_gt: [H, W] metres (NaN unknown) or None.
        aif_gt: [H, W, 3] float [0, 1] or None.
    """

    index: int
    stamp_ns: int
    frame_id: str
    encoding: str
    pixels: np.ndarray
    K: np.ndarray | None
    depth_gt: np.ndarray | None
    aif_gt: np.ndarray | None


def read_messages(bag: str | Path, topic: str) -> Iterator[tuple[int, object]]:
    """(log time ns, deserialized rosbags message) for every message on ``topic``."""
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(f"{bag}: no topic {topic!r}; topics: {sorted(reader.topics)}")
        for conn, log_time, raw in reader.messages(connections=connections):
            yield log_time, TYPESTORE.deserialize_cdr(raw, conn.msgtype)


def select_image_topic(reader: Reader, bag: str | Path, topic: str | None) -> str:
    """``topic`` if it is an Image or CompressedImage topic of the open ``reader``; by default
    ``/camera/image_raw``, its ``/compressed`` variant, or the only image topic. ``ValueError``
    lists the choices."""
    images = sorted(t for t, info in reader.topics.items() if info.msgtype in IMAGE_TYPES)
    if topic is None:
        for preferred in (IMAGE_TOPIC, f"{IMAGE_TOPIC}/compressed"):
            if preferred in images:
                return preferred
        if len(images) == 1:
            return images[0]
        raise ValueError(f"{bag}: choose the image topic (--topic) from {images}")
    if topic not in images:
        raise ValueError(f"{bag}: no Image or CompressedImage topic {topic!r}; image topics: "
                         f"{images}")
    return topic


def sibling(topic: str, name: str) -> str:
    """The topic ``name`` beside image ``topic``: ``/cam/image_raw`` and
    ``/cam/image_raw/compressed`` both give ``/cam/<name>``."""
    base = topic.removesuffix("/compressed")
    return base.rsplit("/", 1)[0] + "/" + name


def read_frames(bag: str | Path, topic: str | None = None) -> Iterator[BagFrame]:
    """Frames of ``topic`` (default ``/camera/image_raw``, else the only Image topic).

    Ground truth comes from the sibling topics ``depth_gt`` / ``aif_gt`` and intrinsics from
    ``camera_info`` in the same namespace, matched by header stamp (they are indexed in memory
    as raw bytes and decoded on demand).
    """
    with Reader(bag) as reader:
        topic = select_image_topic(reader, bag, topic)
        extras = {role: sibling(topic, role) for role in ("depth_gt", "aif_gt", "camera_info")}
        index: dict[str, dict[int, tuple[str, bytes]]] = {role: {} for role in extras}
        extra_conns = [c for c in reader.connections if c.topic in extras.values()]
        # (an empty connection list would mean "all messages" to rosbags)
        for conn, _, raw in reader.messages(connections=extra_conns) if extra_conns else ():
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            role = next(r for r, t in extras.items() if t == conn.topic)
            index[role][stamp_ns(msg)] = (conn.msgtype, bytes(raw))

        def extra(role: str, stamp: int):
            entry = index[role].get(stamp)
            return None if entry is None else TYPESTORE.deserialize_cdr(entry[1], entry[0])

        image_conns = [c for c in reader.connections if c.topic == topic]
        for i, (conn, _, raw) in enumerate(reader.messages(connections=image_conns)):
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            stamp = stamp_ns(msg)
            depth_msg, aif_msg, info = (extra(r, stamp) for r in extras)
            pixels, encoding = decode_any_image(msg, conn.msgtype)
            K = None
            if info is not None and info.k[0] > 0:
                K = bin_intrinsics(np.asarray(info.k).reshape(3, 3), max(1, int(info.binning_x)))
            yield BagFrame(
                index=i, stamp_ns=stamp, frame_id=msg.header.frame_id, encoding=encoding,
                pixels=pixels, K=K,
                depth_gt=None if depth_msg is None else decode_image_msg(depth_msg),
                aif_gt=None if aif_msg is None else image_to_float(decode_image_msg(aif_msg),
                                                                    aif_msg.encoding),
            )
