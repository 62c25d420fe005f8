# SPDX-License-Identifier: Apache-2.0
"""rosbag2 tools built on the ``rosbags`` library (sqlite3 and MCAP storage; no rclpy here).

``codedap-depth bag make``  writes a demo bag: a short camera sweep over real-geometry scenes
    (Middlebury motorcycle, then the photo-textured layered scene; the crop window slides a few
    pixels per frame), rendered through the coded aperture with sensor noise.
``codedap-depth bag play``  publishes a bag's image topic (and its camera_info) into ROS 2 at the
    recorded rate, scaled, or at a fixed frame rate (rclpy lives in ``ros/player.py``).
``codedap-depth bag eval``  reconstructs every frame offline, writes the node's outputs into a new
    bag plus ``metrics.json`` (against the ground-truth topic when present) and ``figure.png``.

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

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from codedap_depth.image_codec import (
    CloudData,
    bin_image,
    bin_intrinsics,
    centred_intrinsics,
    decode_compressed,
    decode_image,
    encode_image,
    encode_png,
    float_to_image,
    image_to_float,
    pack_points,
)
from codedap_depth.optics import Camera, load_camera
from codedap_depth.outputs import FrameOutputs, OutputSettings, frame_outputs, working_intrinsics
from codedap_depth.parameters import OUTPUT_PARAMETERS, spec
from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
#: message types a bag's coded images can have (``compressed``: image_transport, PNG or JPEG)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
NAMESPACE = "/camera"
IMAGE_TOPIC, INFO_TOPIC = f"{NAMESPACE}/image_raw", f"{NAMESPACE}/camera_info"
DEPTH_GT_TOPIC, AIF_GT_TOPIC = f"{NAMESPACE}/depth_gt", f"{NAMESPACE}/aif_gt"
FRAME_ID = "camera_optical_frame"
#: first stamp of a demo bag (2023-11-14T22:13:20Z), nanoseconds
STAMP0_NS = 1_700_000_000 * 10**9
CUSTOM_CAMERA, CUSTOM_NOISE, CUSTOM_SCENES = (
    "codedap_depth.camera", "codedap_depth.noise_sigma", "codedap_depth.scenes"
)
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


# --- messages (rosbags types) -------------------------------------------------------------


def _header(stamp_ns: int, frame_id: str):
    time_type, header_type = TYPESTORE.types["builtin_interfaces/msg/Time"], \
        TYPESTORE.types["std_msgs/msg/Header"]
    return header_type(stamp=time_type(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                       frame_id=frame_id)


def stamp_ns(msg) -> int:
    """Header stamp of a (rosbags) message in nanoseconds."""
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def image_msg(pixels: np.ndarray, encoding: str, stamp: int, frame_id: str):
    """A rosbags ``sensor_msgs/msg/Image`` of ``pixels`` (the encoding's dtype)."""
    payload = encode_image(pixels, encoding)
    return TYPESTORE.types[IMAGE](
        header=_header(stamp, frame_id), height=payload.height, width=payload.width,
        encoding=encoding, is_bigendian=int(payload.is_bigendian), step=payload.step,
        data=np.frombuffer(payload.data, dtype=np.uint8),
    )


def compressed_image_msg(pixels: np.ndarray, encoding: str, stamp: int, frame_id: str):
    """A rosbags ``sensor_msgs/msg/CompressedImage`` of 8-bit ``pixels`` as PNG, with the
    ``format`` string image_transport's compressed transport writes."""
    payload = encode_png(pixels)
    return TYPESTORE.types[COMPRESSED_IMAGE](
        header=_header(stamp, frame_id), format=f"{encoding}; png compressed {encoding}",
        data=np.frombuffer(payload, dtype=np.uint8))


def camera_info_msg(K: np.ndarray, width: int, height: int, stamp: int, frame_id: str):
    """A rosbags rectified ``sensor_msgs/msg/CameraInfo``: D = 0, R = I, P = [K | 0]."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    roi = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return TYPESTORE.types[CAMERA_INFO](
        header=_header(stamp, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1),
        p=np.hstack([K, np.zeros((3, 1))]).reshape(-1), binning_x=0, binning_y=0, roi=roi,
    )


def cloud_msg(cloud: CloudData, stamp: int, frame_id: str):
    """A rosbags ``sensor_msgs/msg/PointCloud2`` of a packed payload."""
    field_type = TYPESTORE.types["sensor_msgs/msg/PointField"]
    return TYPESTORE.types[POINTCLOUD2](
        header=_header(stamp, frame_id), height=cloud.height, width=cloud.width,
        fields=[field_type(name=n, offset=o, datatype=field_type.FLOAT32, count=1)
                for n, o in cloud.fields],
        is_bigendian=False, point_step=cloud.point_step, row_step=cloud.row_step,
        data=np.frombuffer(cloud.data, dtype=np.uint8), is_dense=False,
    )


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
    """A rosbag2 writer that adds connections on first use and serialises rosbags messages."""

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

    def write(self, topic: str, msg, log_time_ns: int) -> None:
        """Serialise ``msg`` (a rosbags message) to ``topic`` at ``log_time_ns``."""
        self.write_raw(topic, msg.__msgtype__, TYPESTORE.serialize_cdr(msg, msg.__msgtype__),
                       log_time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview, log_time_ns: int
                  ) -> None:
        """Write CDR bytes (e.g. as received from rclpy with ``raw=True``)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                                   typestore=TYPESTORE)
        self._writer.write(self._connections[topic], log_time_ns, bytes(data))


# --- cameras ------------------------------------------------------------------------------


def camera_for_size(camera: Camera, width: int, height: int) -> Camera:
    """The same optics and sensor seen at ``width`` x ``height`` px (pixel pitch rescaled).

    Raises:
        ValueError: the aspect ratio differs by more than one pixel.
    """
    if abs(camera.height * width / camera.width - height) > 1.0:
        raise ValueError(f"{width}x{height} px does not keep the camera's "
                         f"{camera.width}x{camera.height} aspect ratio")
    return dataclasses.replace(camera, width=width, height=height,
                               pixel_pitch=camera.pixel_pitch * camera.width / width)


def camera_to_yaml(camera: Camera) -> str:
    """The camera as ``load_camera`` YAML."""
    data = dataclasses.asdict(camera)
    data["wavelengths"] = [float(w) for w in camera.wavelengths]
    return yaml.safe_dump(data, sort_keys=False)


def camera_from_yaml(text: str, source: str) -> Camera:
    """Inverse of ``camera_to_yaml``; errors name ``source``."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{source}: camera is not a YAML mapping")
    data["wavelengths"] = tuple(data.get("wavelengths", ()))
    try:
        return Camera(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err


def bag_custom_data(bag: str | Path) -> dict[str, str]:
    """``custom_data`` of a rosbag2 directory's metadata.yaml ({} if none)."""
    meta = Path(bag) / "metadata.yaml"
    if not meta.is_file():
        raise FileNotFoundError(f"{bag}: not a rosbag2 directory (no metadata.yaml)")
    info = yaml.safe_load(meta.read_text()).get("rosbag2_bagfile_information", {})
    return dict(info.get("custom_data") or {})


# --- make -----------------------------------------------------------------------------------


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
                                 compressed_image_msg(pixels, "rgb8", stamp, FRAME_ID), stamp)
                else:
                    writer.write(IMAGE_TOPIC, image_msg(pixels, "rgb8", stamp, FRAME_ID), stamp)
                writer.write(INFO_TOPIC, camera_info_msg(K, width, height, stamp, FRAME_ID), stamp)
                writer.write(DEPTH_GT_TOPIC, image_msg(view.depth.astype(np.float32), "32FC1",
                                                       stamp, FRAME_ID), stamp)
                writer.write(AIF_GT_TOPIC, image_msg(float_to_image(view.rgb, "rgb8"), "rgb8",
                                                     stamp, FRAME_ID), stamp)
                names.append(name)
                index += 1
        writer.set_custom_data(CUSTOM_CAMERA, camera_to_yaml(camera))
        writer.set_custom_data(CUSTOM_NOISE, repr(float(noise)))
        writer.set_custom_data(CUSTOM_SCENES, json.dumps(names))
    return MadeBag(Path(out), frames, (width, height), tuple(names), camera)


# --- read -----------------------------------------------------------------------------------


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


# --- eval -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate_bag`` wrote.

    Attributes:
        frames: frames reconstructed.
        output_bag: bag with the node's output topics.
        metrics_path: ``metrics.json`` (rows per frame + their mean).
        figure_path: ``figure.png`` of the first frame.
        mean: mean of each numeric metric over frames (empty without ground truth).
    """

    frames: int
    output_bag: Path
    metrics_path: Path
    figure_path: Path
    mean: dict[str, float]


def evaluate_bag(
    bag: str | Path,
    out: str | Path,
    config=None,
    *,
    binning: int = 1,
    psf_file: str | Path | None = None,
    camera_file: str | Path | None = None,
    topic: str | None = None,
    storage: str | None = None,
    max_frames: int | None = None,
    outputs: OutputSettings | None = None,
) -> EvalResult:
    """Reconstruct every frame of ``bag`` offline and score it against the ground truth.

    Args:
        bag: input bag (e.g. from ``make_demo_bag``).
        out: output directory: ``outputs/`` (bag), ``metrics.json``, ``figure.png``.
        config: ``pipeline.ReconstructionConfig`` (default: its defaults).
        binning: block-average factor applied to frames (and ground truth) first.
        psf_file: PSF bank .npz; default: synthesised from the camera model.
        camera_file: camera YAML at the bag's resolution; default: the bag's recorded camera,
            else the package's config/camera.yaml.
        topic: image topic (see ``read_frames``).
        storage: output bag storage; default: the input's.
        max_frames: stop after this many frames.
        outputs: depth range, uncertainty filter and cloud stride (``outputs.frame_outputs``,
            as the node applies them); default: the node's defaults (config/params.yaml).
    """
    from codedap_depth.figures import panel_figure
    from codedap_depth.metrics import depth_metrics, psnr, ssim
    from codedap_depth.optics import load_bank, synthesize_bank
    from codedap_depth.parameters import NodeSettings, output_settings
    from codedap_depth.paths import share_file
    from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

    config = config or ReconstructionConfig()
    outputs = outputs or output_settings(NodeSettings())
    bag, out = Path(bag), Path(out)
    custom = bag_custom_data(bag)
    if camera_file is not None:
        camera = load_camera(camera_file)
    elif CUSTOM_CAMERA in custom:
        camera = camera_from_yaml(custom[CUSTOM_CAMERA], f"{bag} custom_data")
    else:
        camera = load_camera(share_file("config/camera.yaml"))
    working = camera_for_size(camera, camera.width // binning, camera.height // binning)
    bank = load_bank(psf_file) if psf_file is not None else synthesize_bank(working)
    reconstructor = Reconstructor(bank, config)
    scenes = json.loads(custom.get(CUSTOM_SCENES, "[]"))
    noise = float(custom[CUSTOM_NOISE]) if CUSTOM_NOISE in custom else None
    storage = storage or ("mcap" if any(bag.glob("*.mcap")) else "sqlite3")
    out.mkdir(parents=True, exist_ok=True)
    output_bag = out / "outputs"
    if output_bag.exists():
        raise FileExistsError(f"{output_bag} exists; choose another --out")

    rows: list[dict] = []
    figure_panels = None
    with BagWriter(output_bag, storage) as writer:
        for frame in read_frames(bag, topic):
            if max_frames is not None and frame.index >= max_frames:
                break
            coded = bin_image(image_to_float(frame.pixels, frame.encoding), binning)
            if (coded.shape[1], coded.shape[0]) != (working.width, working.height):
                raise ValueError(
                    f"{bag}: frame {frame.index} is {frame.pixels.shape[1]}x"
                    f"{frame.pixels.shape[0]} px, binned by {binning} to {coded.shape[1]}x"
                    f"{coded.shape[0]}, but the camera model is {working.width}x{working.height}"
                )
            result = reconstructor(coded)
            K = working_intrinsics(frame.K, binning, working.fx, working.width, working.height)
            produced = frame_outputs(result, K, outputs)
            _write_outputs(writer, _namespace(topic or IMAGE_TOPIC), frame, produced)
            depth, sigma = produced.depth, produced.uncertainty
            row = {
                "frame": frame.index, "stamp_ns": frame.stamp_ns,
                "scene": scenes[frame.index] if frame.index < len(scenes) else bag.name,
                "method": config.method, "noise_sigma": noise, "steps": config.steps,
                "samples": config.samples, "seconds": result.seconds, "device": config.device,
            }
            gt = None
            if frame.depth_gt is not None:
                gt = bin_image(frame.depth_gt, binning, skip_nan=True)
                metrics = depth_metrics(depth, gt)
                row.update(depth_absrel=metrics.absrel, depth_rmse_m=metrics.rmse_m,
                           depth_mae_m=metrics.mae_m, delta1=metrics.delta1,
                           coverage=metrics.coverage)
            aif = produced.aif if produced.aif.shape[-1] == 3 else np.repeat(produced.aif, 3, -1)
            if frame.aif_gt is not None:
                truth = bin_image(frame.aif_gt, binning)
                row.update(aif_psnr_db=psnr(aif, truth), aif_ssim=ssim(aif, truth))
            rows.append(row)
            if figure_panels is None:
                figure_panels = _panels(coded, aif, depth, sigma, gt)
    if not rows:
        raise ValueError(f"{bag}: no frames on the image topic")
    numeric = [k for k, v in rows[0].items()
               if isinstance(v, float) and k not in ("noise_sigma",)]
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in numeric}
    metrics_path = out / "metrics.json"
    summary = {"bag": str(bag), "method": config.method, "binning": binning,
               "frames": len(rows), "mean": mean, "rows": rows}
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
    figure_path = out / "figure.png"
    panel_figure(figure_panels, figure_path,
                 depth_limits=(float(bank.depths[0]), float(bank.depths[-1])))
    return EvalResult(len(rows), output_bag, metrics_path, figure_path, mean)


def _namespace(topic: str) -> str:
    return topic.rsplit("/", 1)[0]


def _write_outputs(writer: BagWriter, namespace: str, frame: BagFrame,
                   outputs: FrameOutputs) -> None:
    """The node's output topics for one frame, same stamp and frame_id as the input."""
    stamp, frame_id = frame.stamp_ns, frame.frame_id
    width, height = outputs.size
    messages = {
        "depth/image": image_msg(outputs.depth, "32FC1", stamp, frame_id),
        "depth/uncertainty": image_msg(outputs.uncertainty, "32FC1", stamp, frame_id),
        "aif/image": image_msg(outputs.aif_pixels, outputs.aif_encoding, stamp, frame_id),
    }
    if outputs.K is not None:
        info = camera_info_msg(outputs.K, width, height, stamp, frame_id)
        messages.update({"depth/camera_info": info, "aif/camera_info": info})
    if outputs.cloud is not None:
        messages["points"] = cloud_msg(pack_points(outputs.cloud), stamp, frame_id)
    for topic, msg in messages.items():
        writer.write(f"{namespace}/{topic}", msg, stamp)


def _panels(coded, aif, depth, sigma, gt) -> list[tuple[str, np.ndarray, str | None]]:
    panels = [
        ("coded input", coded if coded.ndim == 3 else coded[..., None], None),
        ("all-in-focus", aif, None),
        ("depth", depth, "m"),
        ("uncertainty", sigma, "m (std)"),
    ]
    if gt is not None:
        panels += [("depth GT", gt, "m"), ("|error|", np.abs(depth - gt), "m (abs)")]
    return panels


# --- command line ---------------------------------------------------------------------------


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from err
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """``codedap-depth bag make|play|eval``."""
    parser = argparse.ArgumentParser(
        prog="codedap-depth bag",
        description="rosbag2 tools (sqlite3 and MCAP). Depths in metres, sizes WxH pixels, "
        "noise as the std of Gaussian noise on [0, 1] intensities.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("make", help="write a demo bag of coded frames with ground truth",
                          description=__doc__.split("\n\n")[1])
    make.add_argument("--out", type=Path, required=True, help="bag directory to create")
    make.add_argument("--storage", choices=sorted(STORAGES), default="sqlite3")
    make.add_argument("--frames", type=int, default=8)
    make.add_argument("--size", type=_parse_size, default=(320, 240), help="WxH pixels")
    make.add_argument("--noise", type=float, default=0.01, help="sensor noise sigma")
    make.add_argument("--hz", type=float, default=5.0, help="frame rate of the stamps")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--camera", type=Path, help="camera YAML (default config/camera.yaml)")
    make.add_argument("--compressed", action="store_true",
                      help="frames as CompressedImage (PNG) on /camera/image_raw/compressed")

    play = sub.add_parser("play", help="publish a bag's image topic into ROS 2")
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", type=float, default=1.0,
                      help="playback speed factor on the recorded timing (as ros2 bag play -r)")
    play.add_argument("--hz", type=float, default=None,
                      help="publish at this fixed frame rate instead of the recorded timing")
    play.add_argument("--topic", default=None, help="image topic (default /camera/image_raw)")
    play.add_argument("--publish-as", default=None,
                      help="publish the images (and camera_info beside them) under this topic")
    play.add_argument("--wait", type=float, default=5.0,
                      help="seconds to wait for a subscriber before starting")
    play.add_argument("--loop", action="store_true", help="repeat until interrupted")

    ev = sub.add_parser("eval", help="reconstruct every frame offline; metrics + output bag")
    ev.add_argument("bag", type=Path)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--method", choices=METHODS, default="dfd-dps")
    ev.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ev.add_argument("--samples", type=int, default=1)
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--binning", type=int, default=1)
    ev.add_argument("--psf", type=Path, help="PSF bank .npz (default: synthesised)")
    ev.add_argument("--camera", type=Path, help="camera YAML at the bag's resolution")
    ev.add_argument("--topic", default=None)
    ev.add_argument("--storage", choices=sorted(STORAGES), default=None)
    ev.add_argument("--max-frames", type=int, default=None)
    for parameter in spec():  # the node's output parameters, with its defaults
        if parameter.name in OUTPUT_PARAMETERS:
            unit = f" ({parameter.unit})" if parameter.unit else ""
            ev.add_argument(f"--{parameter.name.replace('_', '-')}", type=type(parameter.default),
                            default=parameter.default,
                            help=f"{parameter.description}{unit}; default {parameter.default}")
    return parser


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``codedap-depth bag``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.action == "make":
            camera = load_camera(args.camera) if args.camera else None
            made = make_demo_bag(args.out, storage=args.storage, frames=args.frames,
                                 size=args.size, noise=args.noise, hz=args.hz, seed=args.seed,
                                 camera=camera, compressed=args.compressed)
            print(f"wrote {made.path}: {made.frames} frames {made.size[0]}x{made.size[1]} "
                  f"({', '.join(sorted(set(made.scenes)))}), {args.storage}")
            return 0
        if args.action == "play":
            from codedap_depth.ros.player import play_bag

            result = play_bag(args.bag, rate=args.rate, hz=args.hz, topic=args.topic,
                              publish_as=args.publish_as, wait_s=args.wait, loop=args.loop)
            print(f"published {result.frames} frames in {result.seconds:.1f} s")
            return 0
        from codedap_depth.pipeline import ReconstructionConfig

        config = ReconstructionConfig(method=args.method, steps=args.steps, samples=args.samples,
                                      device=args.device, seed=args.seed)
        start = time.perf_counter()
        outputs = OutputSettings(
            min_depth=args.min_depth, max_depth=args.max_depth,
            max_relative_uncertainty=args.max_relative_uncertainty,
            cloud_stride=args.cloud_stride, cloud=True)
        result = evaluate_bag(args.bag, args.out, config, binning=args.binning,
                              psf_file=args.psf, camera_file=args.camera, topic=args.topic,
                              storage=args.storage, max_frames=args.max_frames, outputs=outputs)
        means = ", ".join(f"{k} {v:.3f}" for k, v in result.mean.items())
        print(f"evaluated {result.frames} frames in {time.perf_counter() - start:.1f} s: "
              f"{means}\nwrote {result.output_bag}, {result.metrics_path}, {result.figure_path}")
        return 0
    except (OSError, ValueError, ReaderError, WriterError) as err:
        print(f"codedap-depth bag {args.action}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli_main())
