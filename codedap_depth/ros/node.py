# SPDX-License-Identifier: Apache-2.0
"""The ``codedap_depth`` ROS 2 node: coded image in, metric depth + all-in-focus image out.

Topics (relative, so a namespace or remapping places them):

* subscribes ``image_raw`` (sensor_msgs/Image, SensorDataQoS) and optionally ``camera_info``;
* publishes ``depth/image`` (32FC1 metres along optical z, NaN = invalid, REP 118),
  ``depth/uncertainty`` (32FC1 metres), ``aif/image`` (rgb8, or mono8 for mono cameras),
  ``depth/camera_info`` (rectified, binned intrinsics), ``points`` (organised PointCloud2) and
  ``/diagnostics``. Outputs are reliable, keep-last 1, overridable through the
  ``qos_overrides.<topic>.publisher.*`` parameters. Each carries its input's stamp and
  frame_id (or the ``frame_id`` parameter).

Threading: the subscription callbacks only store the newest image; one worker thread takes it,
reconstructs and publishes. An image that arrives while another is still pending replaces it and
is counted as dropped, so memory stays bounded whatever the input rate.

Run ``depth_node --ros-args --params-file config/params.yaml``, ``codedap-depth node --params
config/params.yaml`` or ``ros2 launch codedap_depth depth.launch.py``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy._rclpy_pybind11 import RCLError
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from codedap_depth.image_codec import (
    MONO_ENCODINGS,
    bin_image,
    bin_intrinsics,
    centred_intrinsics,
    float_to_image,
    image_to_float,
)
from codedap_depth.optics import PSFBank, load_bank, load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.pipeline import DEFAULT_STEPS
from codedap_depth.ros.camera_info import input_intrinsics, rectified_camera_info
from codedap_depth.ros.diagnostics import FrameStats, diagnostic_status
from codedap_depth.ros.image_conversion import array_to_imgmsg, imgmsg_to_array
from codedap_depth.ros.pointcloud import depth_to_pointcloud2

NODE_NAME = "codedap_depth"
METHODS = ("dfd-dps", "dps", "classical")
#: outputs: reliable, keep-last 1 (a late subscriber gets the newest result, nothing older)
OUTPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
#: /diagnostics, as diagnostic_updater publishes it
DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10)
DIAGNOSTICS_PERIOD_S = 1.0
LOG_THROTTLE_S = 2.0


class StartupError(RuntimeError):
    """The node cannot start (bad PSF/camera file, unusable device); the message says why."""


@dataclass(frozen=True)
class NodeSettings:
    """The node's parameters, read once per change; the worker uses one consistent copy.

    Attributes:
        psf_file: calibrated PSF bank (.npz, format v1); "" = synthesise from ``camera_file``.
        camera_file: camera YAML; gives the working size and focal length, and the PSF bank when
            ``psf_file`` is empty; "" = the package's ``config/camera.yaml``.
        method: ``dfd-dps``, ``dps`` or ``classical``.
        steps: sampler steps.
        samples: posterior samples (uncertainty is their per-pixel std, metres).
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


class FrameError(ValueError):
    """An input frame is unusable; the frame is skipped and counted as bad."""


class DepthNode(Node):
    """Reconstructs depth, AIF and uncertainty from each (newest) coded image."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for field in fields(NodeSettings):
            self.declare_parameter(field.name, field.default, _descriptor(field.name))
        self._settings = self._read_settings()
        try:
            check_settings(self._settings)
        except ValueError as err:
            raise StartupError(f"invalid parameters: {err}") from err
        self._optics = load_optics(self._settings)
        self._stats = FrameStats()
        self._reconstructor = None
        self._reconstructor_config = None
        try:
            self._ensure_reconstructor(self._settings)
        except (OSError, ValueError, RuntimeError) as err:
            raise StartupError(f"cannot build the {self._settings.method} reconstructor: {err}") \
                from err
        self._cond = threading.Condition()
        self._pending: tuple[Image, float] | None = None
        self._camera_info: CameraInfo | None = None
        self._stopping = False

        overrides = QoSOverridingOptions.with_default_policies()
        self._pub_depth = self.create_publisher(Image, "depth/image", OUTPUT_QOS,
                                                qos_overriding_options=overrides)
        self._pub_sigma = self.create_publisher(Image, "depth/uncertainty", OUTPUT_QOS,
                                                qos_overriding_options=overrides)
        self._pub_aif = self.create_publisher(Image, "aif/image", OUTPUT_QOS,
                                              qos_overriding_options=overrides)
        self._pub_info = self.create_publisher(CameraInfo, "depth/camera_info", OUTPUT_QOS,
                                               qos_overriding_options=overrides)
        self._pub_points = self.create_publisher(PointCloud2, "points", OUTPUT_QOS,
                                                 qos_overriding_options=overrides)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        events = SubscriptionEventCallbacks(
            message_lost=lambda info: self._stats.lost(int(info.total_count_change)))
        self.create_subscription(Image, "image_raw", self._on_image, qos_profile_sensor_data,
                                 qos_overriding_options=overrides, event_callbacks=events)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                 qos_profile_sensor_data)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        # after the QoS-override parameters above are declared, so only user changes reach them
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._worker = threading.Thread(target=self._work, name="codedap_depth_worker",
                                        daemon=True)
        self._worker.start()
        size = self._optics.size
        size = "any size" if size is None else f"{size[0]}x{size[1]} px"
        self.get_logger().info(
            f"ready: {self._settings.method} on {self._settings.device}, PSFs from "
            f"{self._optics.source} ({self._optics.bank.num_depths} layers "
            f"{self._optics.bank.depths[0]:.2f}-{self._optics.bank.depths[-1]:.2f} m), "
            f"working size {size}, binning {self._settings.binning}"
        )

    # --- parameters ------------------------------------------------------------------------

    def _read_settings(self) -> NodeSettings:
        values = {f.name: self.get_parameter(f.name).value for f in fields(NodeSettings)}
        return NodeSettings(**values)

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Reject a change (with the reason) if the resulting settings would be invalid."""
        known = {f.name for f in fields(NodeSettings)}
        changes = {p.name: p.value for p in parameters if p.name in known}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            check_settings(replace(self._settings, **changes))
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        self._settings = self._read_settings()
        names = ", ".join(f"{p.name}={p.value!r}" for p in parameters)
        self.get_logger().info(f"parameters changed: {names}")

    @property
    def settings(self) -> NodeSettings:
        """The settings the worker will use for the next frame."""
        return self._settings

    # --- callbacks: store only -------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        with self._cond:
            replaced = self._pending is not None
            self._pending = (msg, time.monotonic())
            self._stats.received(replaced)
            self._cond.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # --- worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                msg, received = self._pending
                self._pending = None
            try:
                self._process(msg, received)
            except FrameError as err:
                self._stats.rejected(str(err))
                self.get_logger().warning(f"skipping frame: {err}",
                                          throttle_duration_sec=LOG_THROTTLE_S)
            except Exception as err:  # noqa: BLE001 - the node must survive any one frame
                if self._stopping or not self.context.ok():
                    return
                self._stats.failed(f"{type(err).__name__}: {err}")
                self.get_logger().error(f"reconstruction failed: {type(err).__name__}: {err}",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def _ensure_reconstructor(self, settings: NodeSettings):
        """The reconstructor for ``settings`` (rebuilt when method/steps/device/... change)."""
        import torch

        from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

        if settings.cpu_threads and torch.get_num_threads() != settings.cpu_threads:
            torch.set_num_threads(settings.cpu_threads)

        config = ReconstructionConfig(method=settings.method, steps=settings.steps,
                                      samples=settings.samples, device=settings.device,
                                      seed=settings.seed, cuda_graph=settings.cuda_graph)
        if config != self._reconstructor_config:
            self._reconstructor = Reconstructor(self._optics.bank, config)
            self._reconstructor_config = config
        return self._reconstructor

    def _decode(self, msg: Image, settings: NodeSettings) -> np.ndarray:
        """Image -> float [0, 1] at the working resolution; ``FrameError`` if unusable."""
        try:
            intensities = image_to_float(imgmsg_to_array(msg), msg.encoding)
            coded = bin_image(intensities, settings.binning)
        except ValueError as err:
            raise FrameError(f"{msg.width}x{msg.height} {msg.encoding!r} image: {err}") from err
        expected = self._optics.size
        if expected is not None and (coded.shape[1], coded.shape[0]) != expected:
            raise FrameError(
                f"image is {msg.width}x{msg.height} px, binned by {settings.binning} to "
                f"{coded.shape[1]}x{coded.shape[0]}, but the camera model expects "
                f"{expected[0]}x{expected[1]} px (check binning / camera_file)"
            )
        return coded

    def _intrinsics(self, msg: Image, settings: NodeSettings, width: int, height: int):
        """K at the working resolution from camera_info (preferred) or the camera model."""
        info = self._camera_info
        if info is not None:
            try:
                K = input_intrinsics(info, msg.width, msg.height)
                return bin_intrinsics(K, settings.binning)
            except ValueError as err:
                self.get_logger().warning(f"ignoring camera_info: {err}",
                                          throttle_duration_sec=10.0)
        if self._optics.fx is not None:
            return centred_intrinsics(self._optics.fx, width, height)
        return None

    def _process(self, msg: Image, received: float) -> None:
        settings = self._settings
        coded = self._decode(msg, settings)
        reconstructor = self._ensure_reconstructor(settings)
        try:
            result = reconstructor(coded)
        except ValueError as err:
            raise FrameError(str(err)) from err
        depth = np.asarray(result.depth, dtype=np.float32).copy()
        with np.errstate(invalid="ignore"):
            depth[~((depth >= settings.min_depth) & (depth <= settings.max_depth))] = np.nan
        sigma = np.asarray(result.uncertainty, dtype=np.float32).copy()
        sigma[~np.isfinite(depth)] = np.nan
        aif_encoding = "mono8" if msg.encoding in MONO_ENCODINGS else "rgb8"
        aif = float_to_image(result.aif, aif_encoding)
        height, width = depth.shape
        K = self._intrinsics(msg, settings, width, height)

        header = Header(stamp=msg.header.stamp, frame_id=settings.frame_id or msg.header.frame_id)
        self._pub_depth.publish(array_to_imgmsg(depth, "32FC1", header))
        if settings.publish_uncertainty:
            self._pub_sigma.publish(array_to_imgmsg(sigma, "32FC1", header))
        if settings.publish_aif:
            self._pub_aif.publish(array_to_imgmsg(aif, aif_encoding, header))
        if K is not None:
            self._pub_info.publish(rectified_camera_info(header, width, height, K))
            if settings.publish_points:
                colour = float_to_image(result.aif, "rgb8")
                self._pub_points.publish(depth_to_pointcloud2(
                    header, depth, K, colour, sigma=sigma, stride=settings.cloud_stride,
                    max_relative_uncertainty=settings.max_relative_uncertainty,
                ))
        else:
            self.get_logger().warning(
                "no intrinsics (no camera_info and the PSF bank has no focal length): "
                "depth/camera_info and points are not published", throttle_duration_sec=10.0)
        self._stats.published(time.monotonic() - received, float(result.seconds))

    # --- diagnostics -----------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        settings = self._settings
        gpu_mb = None
        if settings.device.startswith("cuda"):
            import torch

            gpu_mb = torch.cuda.memory_allocated(torch.device(settings.device)) / 2**20
        reconstructor = self._reconstructor
        execution = ("not started" if reconstructor is None
                     else "cuda graph" if reconstructor.graphed else "eager")
        status = diagnostic_status(self._stats.snapshot(), f"{self.get_name()}: reconstruction",
                                   settings.device, settings.method, execution, gpu_mb)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(array)

    def destroy_node(self) -> None:
        """Stop the worker (it finishes or abandons the current frame), then the node."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=10.0)
        super().destroy_node()


def _parse_args(argv: list[str]) -> list[str]:
    """``[--params FILE] [--ros-args ...]`` -> the ROS arguments for ``rclpy.init``."""
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="codedap-depth node",
        description="Run the codedap_depth ROS 2 node (same as `ros2 run codedap_depth "
        "depth_node`). Depths in metres; see config/params.yaml for the parameters.",
        epilog="Anything after --ros-args goes to ROS, e.g. --ros-args -r __ns:=/camera "
        "-r image_raw:=/camera/image_color -p device:=cuda",
    )
    parser.add_argument("--params", type=Path, help="parameter YAML (like config/params.yaml)")
    options = parser.parse_args(argv[:split])
    ros_args = list(argv[split:])
    if options.params is not None:
        if not options.params.is_file():
            raise StartupError(f"{options.params}: parameter file not found")
        ros_args = (ros_args or ["--ros-args"]) + ["--params-file", str(options.params)]
    return ros_args


def main(args: list[str] | None = None) -> int:
    """Entry point of ``depth_node`` and ``codedap-depth node``; returns the exit status."""
    argv = list(sys.argv[1:] if args is None else args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        ros_args = _parse_args(argv)
        rclpy.init(args=[NODE_NAME, *ros_args])
    except StartupError as err:
        print(f"[FATAL] [{NODE_NAME}]: {err}", file=sys.stderr)
        return 1
    except RCLError as err:
        reason = str(err).splitlines()[0]
        print(f"[FATAL] [{NODE_NAME}]: bad ROS arguments {ros_args}: {reason}", file=sys.stderr)
        return 1
    node = None
    try:
        node = DepthNode()
        rclpy.spin(node)
    except StartupError as err:
        logger.fatal(str(err))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
