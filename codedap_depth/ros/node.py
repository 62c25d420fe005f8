# SPDX-License-Identifier: Apache-2.0
"""The ``codedap_depth`` ROS 2 node: coded image in, metric depth + all-in-focus image out.

Topics (relative, so a namespace or remapping places them):

* subscribes ``image_raw`` (sensor_msgs/Image, reliable keep-last 1: see ``ros/qos.py``), or
  ``image_raw/compressed`` (sensor_msgs/CompressedImage, PNG/JPEG) with
  ``image_transport:=compressed``, and optionally ``camera_info`` (best effort; non-zero
  distortion is refused);
* publishes ``depth/image`` (32FC1 metres along optical z, NaN = invalid, REP 118),
  ``depth/uncertainty`` (32FC1 metres), ``aif/image`` (rgb8, or mono8 for mono cameras),
  ``depth/camera_info`` and ``aif/camera_info`` (rectified, binned intrinsics), ``points``
  (organised PointCloud2) and ``/diagnostics``. Outputs are reliable, keep-last 1, overridable
  through the ``qos_overrides.<topic>.publisher.*`` parameters. Each carries its input's stamp
  and frame_id (or the ``frame_id`` parameter).

Run ``depth_node --ros-args --params-file config/params.yaml``, ``codedap-depth node --params
config/params.yaml`` or ``ros2 launch codedap_depth depth.launch.py``; add ``--lifecycle`` (or
the launch argument ``lifecycle:=true``) for the managed variant.

This module is the entry point. It imports only the standard library at module level so that
SIGINT and SIGTERM are handled from the first line of ``main``: during start-up a signal
abandons it (at once, or, if it lands inside an import or the executor's construction, as soon
as that is over), while spinning it ends the spin loop; either way the node is destroyed,
further signals are ignored during that clean-up, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

NODE_NAME = "codedap_depth"
#: how often the spin loop looks at the signal flag
SPIN_PERIOD_S = 0.1


class _Stop(BaseException):
    """A SIGINT/SIGTERM arrived during start-up (BaseException: nothing may swallow it)."""


class _Signals:
    """SIGINT/SIGTERM handling of the node process: raise ``_Stop`` while starting (deferred
    out of imports and ``deferred()`` blocks), set ``requested`` while spinning, ignore both
    while cleaning up."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._install(self._raise)

    def _install(self, handler) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, handler)

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signum
        if _inside_import(frame):
            # an exception raised inside an import can be lost (the import system's weakref
            # callbacks only print it) or abort a native module's initialisation (SIGABRT):
            # leave it to the next ``check()``
            return
        raise _Stop

    def check(self) -> None:
        """Raise ``_Stop`` if a signal arrived while it could not be raised."""
        if self.requested is not None:
            raise _Stop

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a signal until the block is done, then stop: for constructors that an
        exception would leave half-built (rclpy's executor then prints a traceback as it is
        collected)."""
        self._install(self._note)
        try:
            yield
        finally:
            self._install(self._raise)
        self.check()

    def _note(self, signum: int, frame) -> None:
        self.requested = signum

    def spinning(self) -> None:
        """From now on a signal only sets ``requested`` (the spin loop checks it)."""
        self._install(self._note)
        self.check()  # arrived just before the switch

    def ignore(self) -> None:
        """Ignore further signals: clean-up must finish."""
        self._install(signal.SIG_IGN)


def _inside_import(frame: FrameType | None) -> bool:
    """Whether ``frame`` (the one a signal interrupted) runs inside the import system."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _parse_args(argv: list[str]) -> tuple[list[str], bool]:
    """``[--params FILE] [--lifecycle] [--ros-args ...]`` -> (ROS arguments, lifecycle).

    Raises:
        ValueError: the parameter file does not exist.
    """
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="codedap-depth node",
        description="Run the codedap_depth ROS 2 node (same as `ros2 run codedap_depth "
        "depth_node`). Depths in metres; see config/params.yaml for the parameters.",
        epilog="Anything after --ros-args goes to ROS, e.g. --ros-args -r __ns:=/camera "
        "-r image_raw:=/camera/image_color -p device:=cuda",
    )
    parser.add_argument("--params", type=Path, help="parameter YAML (like config/params.yaml)")
    parser.add_argument("--lifecycle", action="store_true",
                        help="run the managed (lifecycle) node: it loads nothing until "
                        "configured and publishes only while active")
    options = parser.parse_args(argv[:split])
    ros_args = list(argv[split:])
    if options.params is not None:
        if not options.params.is_file():
            raise ValueError(f"{options.params}: parameter file not found")
        ros_args = (ros_args or ["--ros-args"]) + ["--params-file", str(options.params)]
    return ros_args, options.lifecycle


def _fatal(message: str) -> int:
    print(f"[FATAL] [{NODE_NAME}]: {message}", file=sys.stderr)
    return 1


def main(args: list[str] | None = None) -> int:
    """Entry point of ``depth_node`` and ``codedap-depth node``; returns the exit status."""
    signals = _Signals()
    try:
        return _run(list(sys.argv[1:] if args is None else args), signals)
    except _Stop:
        return 0
    finally:
        signals.ignore()


def _run(argv: list[str], signals: _Signals) -> int:
    try:
        ros_args, lifecycle = _parse_args(argv)
    except ValueError as err:
        return _fatal(str(err))
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from codedap_depth.ros.settings import StartupError

    signals.check()  # one that came during those imports
    try:  # signals stay ours: rclpy's handler would shut the context down under the executor
        rclpy.init(args=[NODE_NAME, *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as err:
        return _fatal(f"bad ROS arguments {ros_args}: {str(err).splitlines()[0]}")
    node = executor = None
    try:
        if lifecycle:
            from codedap_depth.ros.lifecycle_node import LifecycleDepthNode

            node = LifecycleDepthNode()
        else:
            from codedap_depth.ros.depth_node import DepthNode

            node = DepthNode()
        signals.check()
        with signals.deferred():
            executor = SingleThreadedExecutor()
            executor.add_node(node)
        signals.spinning()
        while signals.requested is None:
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except StartupError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except ExternalShutdownException:
        pass
    finally:
        signals.ignore()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
