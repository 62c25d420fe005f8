# SPDX-License-Identifier: Apache-2.0
"""The depth node's parameters in ROS: declared from ``parameters.NodeSettings`` (the schema).

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

from codedap_depth.optics import PSFBank, load_bank, load_camera, synthesize_bank
from codedap_depth.parameters import NodeSettings, ParameterSpec, check_settings, spec
from codedap_depth.paths import share_file


class StartupError(RuntimeError):
    """The node cannot start (bad PSF/camera file, unusable device); the message says why."""


def _descriptor(parameter: ParameterSpec) -> ParameterDescriptor:
    """The ParameterDescriptor of one schema entry (the unit goes into the description)."""
    unit = f" ({parameter.unit})" if parameter.unit else ""
    descriptor = ParameterDescriptor(name=parameter.name, description=parameter.description + unit,
                                     read_only=parameter.read_only)
    limits = parameter.range
    if limits is not None and isinstance(parameter.default, int):
        descriptor.integer_range = [IntegerRange(from_value=limits[0], to_value=limits[1], step=1)]
    elif limits is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=limits[0], to_value=limits[1], step=0.0)
        ]
    return descriptor


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
        for parameter in spec():
            node.declare_parameter(parameter.name, parameter.default, _descriptor(parameter))
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
