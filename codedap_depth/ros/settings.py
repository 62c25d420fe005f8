# SPDX-License-Identifier: Apache-2.0
"""The depth node's parameters: declaration (with descriptors), validation, one frozen copy.

``LiveSettings`` declares every ``NodeSettings`` field as a parameter, rejects updates that
would make the settings invalid (with the reason) and keeps ``current`` up to date; the worker
reads ``current`` once per frame so it always sees one consistent set. ``load_optics`` reads the
PSF bank and camera model the parameters point at.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from codedap_depth.image_codec import BAYER_PATTERNS
from codedap_depth.optics import PSFBank, load_bank, load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

TRANSPORTS = ("raw", "compressed")


class StartupError(RuntimeError):
    """The node cannot start (bad PSF/camera file, unusable device); the message says why."""


@dataclass(frozen=True)
class NodeSettings:
    """The node's parameters, read once per change; the worker uses one consistent copy.

    Attributes:
        psf_file: calibrated PSF bank (.npz, format v1); "" = synthesise from ``camera_file``.
        camera_file: camera YAML; gives the working size and focal length, and the PSF bank when
            ``psf_file`` is empty; "" = the package's ``config/camera.yaml``.
        method: ``dfd-dps``, ``dps``, ``classical`` or ``unet``.
        steps: sampler steps.
        samples: posterior samples (depth is their median; their spread adds to the
            uncertainty).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        cuda_graph: on CUDA, replay each dfd-dps frame from a CUDA graph (the real-time path;
            the first frame of a size captures it and takes a few times longer).
        cpu_threads: torch intra-op threads for CPU work; 0 keeps torch's default. On small
            frames or a busy machine 1 can be many times faster than the default.
        seed: sampler seed.
        binning: block-average factor applied to incoming images before reconstruction.
        min_depth, max_depth: metres; depths outside become NaN.
        max_relative_uncertainty: cloud points with ``sigma / depth`` above it become NaN.
        cloud_stride: keep every n-th row and column in ``points``.
        publish_points, publish_aif, publish_uncertainty: switch those outputs.
        frame_id: overrides the input's frame_id in every output when not empty.
        bayer_pattern: ``rggb``, ``bggr``, ``gbrg`` or ``grbg`` to demosaic with that pattern
            whatever the driver labels (a wrong ``bayer_*`` or a raw mosaic sent as ``mono8``/
            ``mono16``); "" trusts the encoding.
        image_transport: ``raw`` subscribes ``image_raw`` (sensor_msgs/Image); ``compressed``
            subscribes ``image_raw/compressed`` (sensor_msgs/CompressedImage, PNG or JPEG).
    """

    psf_file: str = ""
    camera_file: str = ""
    method: str = "dfd-dps"
    steps: int = DEFAULT_STEPS
    samples: int = 1
    device: str = "cpu"
    cuda_graph: bool = True
    cpu_threads: int = 0
    seed: int = 0
    binning: int = 1
    min_depth: float = 0.0
    max_depth: float = 1000.0
    max_relative_uncertainty: float = 1.0
    cloud_stride: int = 1
    publish_points: bool = True
    publish_aif: bool = True
    publish_uncertainty: bool = True
    frame_id: str = ""
    bayer_pattern: str = ""
    image_transport: str = "raw"


#: name -> (description, (from, to) range or None, read_only)
PARAMETER_DOCS: dict[str, tuple[str, tuple[float, float] | None, bool]] = {
    "psf_file": ("calibrated PSF bank .npz (format v1); empty: synthesise from camera_file",
                 None, True),
    "camera_file": ("camera YAML (working size, focal length, PSF synthesis); empty: the "
                    "package's config/camera.yaml", None, True),
    "method": (f"reconstruction method: {', '.join(METHODS)}", None, False),
    "steps": ("sampler steps (DDIM steps for dfd-dps/dps)", (1, 1000), False),
    "samples": ("posterior samples per frame; uncertainty = their std (m)", (1, 64), False),
    "device": ("torch device: cpu, cuda or cuda:N", None, False),
    "cuda_graph": ("on CUDA, replay dfd-dps frames from a CUDA graph (real-time path)", None,
                   False),
    "cpu_threads": ("torch intra-op threads for CPU work; 0: torch's default", (0, 256), False),
    "seed": ("sampler random seed", (0, 2**31 - 1), False),
    "binning": ("integer block-averaging factor applied to incoming images", (1, 32), False),
    "min_depth": ("depths below this (m) are published as NaN", (0.0, 1000.0), False),
    "max_depth": ("depths above this (m) are published as NaN", (0.0, 1000.0), False),
    "max_relative_uncertainty": ("cloud points with sigma/depth above this are NaN",
                                 (0.0, 1000.0), False),
    "cloud_stride": ("keep every n-th row and column of the point cloud", (1, 64), False),
    "publish_points": ("publish the points topic", None, False),
    "publish_aif": ("publish the aif/image topic", None, False),
    "publish_uncertainty": ("publish the depth/uncertainty topic", None, False),
    "frame_id": ("frame_id for all outputs; empty: the input image's frame_id", None, False),
    "bayer_pattern": (f"demosaic inputs with this Bayer pattern ({', '.join(BAYER_PATTERNS)}) "
                      "whatever their label; empty: trust the encoding", None, False),
    "image_transport": (f"input: {' or '.join(TRANSPORTS)} (image_raw or "
                        "image_raw/compressed)", None, True),
}


def _descriptor(name: str) -> ParameterDescriptor:
    description, limits, read_only = PARAMETER_DOCS[name]
    descriptor = ParameterDescriptor(name=name, description=description, read_only=read_only)
    if limits is not None and isinstance(getattr(NodeSettings, name), int):
        descriptor.integer_range = [IntegerRange(from_value=limits[0], to_value=limits[1], step=1)]
    elif limits is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=limits[0], to_value=limits[1], step=0.0)
        ]
    return descriptor


def check_device(device: str) -> None:
    """Raise ``ValueError`` unless ``device`` is ``cpu`` or a CUDA device this machine has."""
    if device == "cpu":
        return
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but this machine has no CUDA device")
    index = int(device[5:]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {device} requested but only {torch.cuda.device_count()} "
                         f"CUDA device(s) exist")


def check_settings(settings: NodeSettings) -> None:
    """Cross-parameter rules the descriptors cannot express; ``ValueError`` with the reason."""
    if settings.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {settings.method!r}")
    check_device(settings.device)
    if not settings.min_depth < settings.max_depth:
        raise ValueError(f"min_depth ({settings.min_depth} m) must be below max_depth "
                         f"({settings.max_depth} m)")
    if any(c.isspace() for c in settings.frame_id):
        raise ValueError(f"frame_id must not contain whitespace, got {settings.frame_id!r}")
    if settings.bayer_pattern not in ("", *BAYER_PATTERNS):
        raise ValueError(f"bayer_pattern must be empty or one of {', '.join(BAYER_PATTERNS)}, "
                         f"got {settings.bayer_pattern!r}")
    if settings.image_transport not in TRANSPORTS:
        raise ValueError(f"image_transport must be one of {', '.join(TRANSPORTS)}, got "
                         f"{settings.image_transport!r}")


@dataclass(frozen=True)
class Optics:
    """What the node knows about its camera: PSFs, working size and focal length.

    Attributes:
        bank: the PSF bank.
        size: (width, height) px the binned images must have, or None (any size).
        fx: focal length in px at the working resolution, or None (only camera_info can give K).
        source: the file(s) it came from, for logs.
    """

    bank: PSFBank
    size: tuple[int, int] | None
    fx: float | None
    source: str


def load_optics(settings: NodeSettings) -> Optics:
    """PSF bank and camera geometry from ``psf_file`` and/or ``camera_file``.

    Raises:
        StartupError: a file is missing or invalid; the message names it.
    """
    try:
        camera = None
        if settings.camera_file or not settings.psf_file:
            path = settings.camera_file or str(share_file("config/camera.yaml"))
            camera = load_camera(path)
        if settings.psf_file:
            bank, source = load_bank(settings.psf_file), settings.psf_file
        else:
            bank, source = synthesize_bank(camera), f"{path} (synthesised PSFs)"
    except (OSError, ValueError) as err:
        raise StartupError(str(err)) from err
    if camera is not None:
        return Optics(bank, (camera.width, camera.height), camera.fx, source)
    return Optics(bank, None, bank.fx, source)


class LiveSettings:
    """The node's parameters, declared on ``node``, as one ``NodeSettings`` kept current.

    Call ``watch()`` once the node's other parameters (e.g. QoS overrides) are declared, so that
    only later user changes reach the callbacks.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        for field in fields(NodeSettings):
            node.declare_parameter(field.name, field.default, _descriptor(field.name))
        self.current = self._read()

    def watch(self) -> None:
        """Validate updates (rejecting invalid ones with the reason) and apply accepted ones."""
        self._node.add_on_set_parameters_callback(self._validate)
        self._node.add_post_set_parameters_callback(self._apply)

    def _read(self) -> NodeSettings:
        values = {f.name: self._node.get_parameter(f.name).value for f in fields(NodeSettings)}
        return NodeSettings(**values)

    def _changes(self, parameters: list[Parameter]) -> dict[str, object]:
        known = {f.name for f in fields(NodeSettings)}
        return {p.name: p.value for p in parameters if p.name in known}

    def _validate(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = self._changes(parameters)
        if not changes:
            return SetParametersResult(successful=True)
        try:
            check_settings(replace(self.current, **changes))
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        changes = self._changes(parameters)
        if changes:
            self.current = self._read()
            names = ", ".join(f"{name}={value!r}" for name, value in changes.items())
            self._node.get_logger().info(f"parameters changed: {names}")
