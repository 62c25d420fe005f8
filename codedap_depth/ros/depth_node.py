# SPDX-License-Identifier: Apache-2.0
"""The plain ``codedap_depth`` node: configured and publishing from construction on.

Topics, parameters and threading are described in ``codedap_depth.ros.node`` (the entry point)
and ``runtime.DepthRuntime``; ``lifecycle_node.LifecycleDepthNode`` is the managed variant.
"""

from __future__ import annotations

from rclpy.node import Node

from codedap_depth.parameters import check_settings
from codedap_depth.ros.diagnostics import FrameStats
from codedap_depth.ros.runtime import DepthRuntime
from codedap_depth.ros.settings import LiveSettings, StartupError

NODE_NAME = "codedap_depth"


def checked_settings(node: Node) -> LiveSettings:
    """Declare the node's parameters and check their start values.

    Raises:
        StartupError: the parameters are inconsistent (the message says why).
    """
    settings = LiveSettings(node)
    try:
        check_settings(settings.current)
    except ValueError as err:
        raise StartupError(f"invalid parameters: {err}") from err
    return settings


def ready_message(runtime: DepthRuntime, settings: LiveSettings) -> str:
    """One log line: what runs where, with which PSFs and working size."""
    current, optics = settings.current, runtime.optics
    size = "any size" if optics.size is None else f"{optics.size[0]}x{optics.size[1]} px"
    return (f"{current.method} on {current.device}, PSFs from {optics.source} "
            f"({optics.bank.num_depths} layers {optics.bank.depths[0]:.2f}-"
            f"{optics.bank.depths[-1]:.2f} m), working size {size}, binning {current.binning}, "
            f"input {current.image_transport}")


class DepthNode(Node):
    """Reconstructs depth, AIF and uncertainty from each (newest) coded image.

    Raises:
        StartupError: bad parameters or PSF/camera files; the node is already destroyed.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._runtime: DepthRuntime | None = None
        try:
            self._settings = checked_settings(self)
            self._runtime = DepthRuntime(self, self._settings, FrameStats())
            self._settings.watch()
            self._runtime.set_active(True)
        except BaseException:  # incl. a signal during start-up: leave nothing half-built
            self.destroy_node()
            raise
        self.get_logger().info(f"ready: {ready_message(self._runtime, self._settings)}")

    @property
    def settings(self):
        """The settings the worker will use for the next frame."""
        return self._settings.current

    def destroy_node(self) -> None:
        """Stop the frame threads (they finish and publish the current frame), release
        everything, then the node.
        Safe to call twice and on a node whose construction failed."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.close()
        super().destroy_node()
