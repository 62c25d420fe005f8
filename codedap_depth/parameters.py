# SPDX-License-Identifier: Apache-2.0
"""The node's parameters: one schema (default, range, unit, description) and the frozen copy.

``NodeSettings`` is the schema: each field carries its default and, in its metadata, the
description, unit, range and whether it is read-only (``spec`` reads them back). The node
declares its parameters from it (``ros/settings.py``); ``config/params.yaml`` lists the same
values (a test compares them by value), so ``ros2 run`` and ``ros2 launch`` behave alike. No ROS
here: the bag tools read the output settings from the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from codedap_depth.image_codec import BAYER_PATTERNS
from codedap_depth.names import MAX_STEPS
from codedap_depth.outputs import OutputSettings
from codedap_depth.pipeline import DEFAULT_STEPS, METHODS

TRANSPORTS = ("raw", "compressed")


def _param(default, description: str, *, unit: str = "",
           limits: tuple[float, float] | None = None, read_only: bool = False):
    """A schema field: ``default`` plus what a ParameterDescriptor and a reader need."""
    return field(default=default, metadata={"description": description, "unit": unit,
                                            "range": limits, "read_only": read_only})


@dataclass(frozen=True)
class NodeSettings:
    """The node's parameters, read once per change; the worker uses one consistent copy.

    Attributes:
        psf_file: calibrated PSF bank (.npz, format v1); "" = synthesise from ``camera_file``.
        camera_file: camera YAML; gives the working size and focal length, and the PSF bank when
            ``psf_file`` is empty; "" = the package's ``config/camera.yaml``.
        method: one of ``pipeline.METHODS``.
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

    psf_file: str = _param(
        "", "calibrated PSF bank .npz (format v1); empty: synthesise from camera_file",
        read_only=True)
    camera_file: str = _param(
        "", "camera YAML (working size, focal length, PSF synthesis); empty: the package's "
        "config/camera.yaml", read_only=True)
    method: str = _param("dfd-dps", f"reconstruction method: {', '.join(METHODS)}")
    steps: int = _param(DEFAULT_STEPS, "sampler steps (DDIM steps for dfd-dps/dps)",
                        limits=(1, MAX_STEPS))
    samples: int = _param(1, "posterior samples per frame; uncertainty = their std",
                          limits=(1, 64))
    device: str = _param("cpu", "torch device: cpu, cuda or cuda:N")
    cuda_graph: bool = _param(True, "on CUDA, replay dfd-dps frames from a CUDA graph "
                              "(real-time path)")
    cpu_threads: int = _param(0, "torch intra-op threads for CPU work; 0: torch's default",
                              limits=(0, 256))
    seed: int = _param(0, "sampler random seed", limits=(0, 2**31 - 1))
    binning: int = _param(1, "integer block-averaging factor applied to incoming images",
                          limits=(1, 32))
    bayer_pattern: str = _param(
        "", f"demosaic inputs with this Bayer pattern ({', '.join(BAYER_PATTERNS)}) whatever "
        "their label; empty: trust the encoding")
    image_transport: str = _param(
        "raw", f"input: {' or '.join(TRANSPORTS)} (image_raw or image_raw/compressed)",
        read_only=True)
    min_depth: float = _param(0.5, "depths below this are published as NaN", unit="m",
                              limits=(0.0, 1000.0))
    max_depth: float = _param(5.0, "depths above this are published as NaN", unit="m",
                              limits=(0.0, 1000.0))
    max_relative_uncertainty: float = _param(
        0.25, "cloud points with sigma/depth above this are NaN", limits=(0.0, 1000.0))
    cloud_stride: int = _param(1, "keep every n-th row and column of the point cloud",
                               limits=(1, 64))
    publish_points: bool = _param(True, "publish the points topic")
    publish_aif: bool = _param(True, "publish the aif/image topic")
    publish_uncertainty: bool = _param(True, "publish the depth/uncertainty topic")
    frame_id: str = _param("", "frame_id for all outputs; empty: the input image's frame_id")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of the schema.

    Attributes:
        name: parameter name.
        default: default value (its type is the parameter's type).
        description: what it does (without the unit).
        unit: ``m`` or "" (dimensionless, a count or a name).
        range: (from, to) inclusive, or None.
        read_only: fixed at start.
    """

    name: str
    default: bool | int | float | str
    description: str
    unit: str
    range: tuple[float, float] | None
    read_only: bool


def spec() -> tuple[ParameterSpec, ...]:
    """The schema, in declaration order (``NodeSettings``' fields)."""
    return tuple(ParameterSpec(f.name, f.default, f.metadata["description"], f.metadata["unit"],
                               f.metadata["range"], f.metadata["read_only"])
                 for f in fields(NodeSettings))


def settings_of(values: Mapping[str, object]) -> NodeSettings:
    """The settings of a ``ros__parameters`` mapping (params.yaml); keys the schema does not
    have (``qos_overrides``) are left out, missing ones take their defaults."""
    names = {f.name for f in fields(NodeSettings)}
    return NodeSettings(**{k: v for k, v in values.items() if k in names})


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


#: the parameters ``output_settings`` reads besides ``publish_points`` (``bag eval`` offers them)
OUTPUT_PARAMETERS = ("min_depth", "max_depth", "max_relative_uncertainty", "cloud_stride")


def output_settings(settings: NodeSettings) -> OutputSettings:
    """The output stage's settings (``outputs.frame_outputs``) of the node's parameters."""
    return OutputSettings(min_depth=settings.min_depth, max_depth=settings.max_depth,
                          max_relative_uncertainty=settings.max_relative_uncertainty,
                          cloud_stride=settings.cloud_stride, cloud=settings.publish_points)
