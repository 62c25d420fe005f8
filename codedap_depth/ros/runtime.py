# SPDX-License-Identifier: Apache-2.0
"""What a running (or configured, for the lifecycle node) depth node holds.

``DepthRuntime`` loads the optics, builds the reconstructor, creates the topics on a node and
runs the reconstruct and publish threads; ``close()`` releases all of it. The plain node
makes one at start-up; the lifecycle node makes one in ``configure`` and closes it in ``cleanup``.

Threading: the subscription callbacks only store the newest image. Two threads form a
two-stage pipeline with one slot between them: the reconstruct thread takes the image, decodes
and reconstructs it; the publish thread packs and publishes the outputs (the cloud alone costs
milliseconds of host time at 640x480) while the next frame reconstructs, so the output rate is
that of the slower stage, not of their sum. An image that arrives while another is still
pending replaces it and is counted as dropped; a finished frame waits for the publish slot. So
memory stays bounded whatever the input rate. While not ``active`` (a lifecycle node that is
configured but inactive) images are ignored.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from codedap_depth.image_codec import bin_image, decode_compressed, image_to_float, pack_points
from codedap_depth.names import CAMERA_INFO_INPUT, COMPRESSED_INPUT, IMAGE_INPUT, OUTPUT_TOPICS
from codedap_depth.outputs import frame_outputs, working_intrinsics
from codedap_depth.parameters import NodeSettings, output_settings
from codedap_depth.ros.camera_info import (
    distortion_problem,
    input_intrinsics,
    rectified_camera_info,
)
from codedap_depth.ros.diagnostics import FrameStats, diagnostic_status
from codedap_depth.ros.image_conversion import array_to_imgmsg, imgmsg_to_array
from codedap_depth.ros.messages import message_class
from codedap_depth.ros.pointcloud import cloud_to_msg
from codedap_depth.ros.qos import camera_info_qos, diagnostics_qos, image_input_qos, output_qos
from codedap_depth.ros.settings import LiveSettings, StartupError, load_optics

DIAGNOSTICS_PERIOD_S = 1.0
LOG_THROTTLE_S = 2.0
#: how long closing waits for the frame being reconstructed
WORKER_JOIN_S = 30.0


class FrameError(ValueError):
    """An input frame is unusable; the frame is skipped and counted as bad."""


@dataclass(frozen=True)
class DecodedFrame:
    """An input image as intensities.

    Attributes:
        intensities: [H, W] or [H, W, 3] float32 in [0, 1] at the input's resolution.
        width, height: the input's size in pixels.
    """

    intensities: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class ReconstructedFrame:
    """A reconstructed frame on its way from the reconstruct thread to the publish thread.

    Attributes:
        header: the input image's header (stamp and frame_id of the outputs).
        settings: the parameters the frame was reconstructed with.
        result: the ``pipeline.Reconstruction``.
        K: 3x3 intrinsics at the working resolution, or None.
        received: ``time.monotonic()`` when the image arrived.
        warmup: the first frame of its size/configuration (excluded from latency statistics).
        decode_s: seconds spent decoding and binning the image before the reconstructor.
    """

    header: Header
    settings: NodeSettings
    result: object
    K: np.ndarray | None
    received: float
    warmup: bool
    decode_s: float


class DepthRuntime:
    """Optics, reconstructor, topics and the two frame threads of a depth node.

    Args:
        node: the node to create the topics on.
        settings: the node's live parameters (read once per frame).
        stats: frame counters shared with the diagnostics.
        managed: create the outputs as lifecycle publishers (``node`` is a LifecycleNode);
            they then publish only while the node is active.

    Raises:
        StartupError: a PSF/camera file is missing or invalid, or the reconstructor cannot be
            built; the message names the file or the reason.
    """

    def __init__(self, node: Node, settings: LiveSettings, stats: FrameStats, *,
                 managed: bool = False) -> None:
        self._node, self._settings, self._stats = node, settings, stats
        self._managed = managed
        self._cond = threading.Condition()
        self._pending: tuple[Image | CompressedImage, float] | None = None
        self._ready: ReconstructedFrame | None = None  # the slot between the two threads
        self._busy = self._stopping = False
        self._active = False
        self._camera_info: tuple[CameraInfo, str | None] | None = None
        self._warm_key: tuple | None = None
        self._warned_jpeg = False
        self._reconstructor = self._reconstructor_config = None
        current = settings.current
        self._optics = load_optics(current)
        try:
            self._ensure_reconstructor(current)
        except (OSError, ValueError, RuntimeError) as err:
            raise StartupError(f"cannot build the {current.method} reconstructor: {err}") \
                from err
        self._create_topics(current)
        self._threads = [threading.Thread(target=target, name=f"codedap_depth_{name}", daemon=True)
                         for name, target in (("reconstruct", self._reconstruct_loop),
                                              ("publish", self._publish_loop))]
        for thread in self._threads:
            thread.start()

    # --- topics ----------------------------------------------------------------------------

    def _create_topics(self, settings: NodeSettings) -> None:
        """Publishers, subscriptions and the diagnostics timer; ``StartupError`` (with nothing
        left behind) for an invalid ``qos_overrides.*`` parameter."""
        self._outputs: dict[str, object] = {}
        self._subscriptions: list = []
        self._pub_diag = self._timer = None
        try:
            self._create_entities(settings)
        except (RuntimeError, ValueError) as err:  # rclpy's errors for a bad override value
            self._destroy_topics()
            raise StartupError(f"invalid QoS override: {err}") from err

    def _create_entities(self, settings: NodeSettings) -> None:
        node = self._node
        create = node.create_lifecycle_publisher if self._managed else node.create_publisher
        overrides = QoSOverridingOptions.with_default_policies()
        # each entity gets its own profile object: the override declaration writes into it
        for topic, kind in OUTPUT_TOPICS.items():
            self._outputs[topic] = create(message_class(kind), topic, output_qos(),
                                          qos_overriding_options=overrides)
        self._pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics",
                                               diagnostics_qos())
        events = SubscriptionEventCallbacks(
            message_lost=lambda info: self._stats.lost(int(info.total_count_change)),
            incompatible_qos=self._on_incompatible_qos)
        kind, topic = ((CompressedImage, COMPRESSED_INPUT)
                       if settings.image_transport == "compressed" else (Image, IMAGE_INPUT))
        self._subscriptions.append(node.create_subscription(
            kind, topic, self._on_image, image_input_qos(), qos_overriding_options=overrides,
            event_callbacks=events))
        self._subscriptions.append(node.create_subscription(
            CameraInfo, CAMERA_INFO_INPUT, self._on_camera_info, camera_info_qos()))
        self._timer = node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

    def _destroy_topics(self) -> None:
        """Destroy whatever ``_create_topics`` made (all of it, or what it got to)."""
        node = self._node
        if self._timer is not None:
            node.destroy_timer(self._timer)
        for subscription in self._subscriptions:
            node.destroy_subscription(subscription)
        destroy = node.destroy_lifecycle_publisher if self._managed else node.destroy_publisher
        for publisher in self._outputs.values():
            destroy(publisher)
        if self._pub_diag is not None:
            node.destroy_publisher(self._pub_diag)

    # --- state -----------------------------------------------------------------------------

    @property
    def optics(self):
        """The loaded ``settings.Optics``."""
        return self._optics

    @property
    def reconstructor(self):
        """The ``pipeline.Reconstructor`` in use."""
        return self._reconstructor

    def set_active(self, active: bool, timeout_s: float = WORKER_JOIN_S) -> None:
        """Start or stop taking images. Stopping drops the pending image and waits (up to
        ``timeout_s``) for the frame being reconstructed and published, so nothing is
        published after."""
        with self._cond:
            self._active = active
            if not active:
                self._pending = None
                self._cond.wait_for(lambda: not self._busy and self._ready is None,
                                    timeout=timeout_s)

    def close(self) -> dict[str, weakref.ref]:
        """Stop both threads (the frame in flight is still published), destroy the topics and
        drop the optics and reconstructor.

        Returns:
            Weak references to the released objects by name (``reconstructor``, ``prior``
            network when the method has one, ``PSF bank``): dead once nothing else holds them,
            which callers can check.
        """
        with self._cond:
            self._stopping = True
            self._active = False
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=WORKER_JOIN_S)
        self._destroy_topics()
        held = {"reconstructor": self._reconstructor,
                "prior": getattr(self._reconstructor, "prior", None),
                "PSF bank": self._optics.bank}
        refs = {name: weakref.ref(obj) for name, obj in held.items() if obj is not None}
        self._reconstructor = self._reconstructor_config = self._optics = None
        self._camera_info = self._pending = self._ready = None
        return refs

    # --- callbacks: store only -------------------------------------------------------------

    def _on_image(self, msg: Image | CompressedImage) -> None:
        with self._cond:
            if not self._active:
                return
            replaced = self._pending is not None
            self._pending = (msg, time.monotonic())
            self._stats.received(replaced)
            self._cond.notify_all()  # two threads wait on this condition

    def _on_camera_info(self, msg: CameraInfo) -> None:
        problem = distortion_problem(msg)
        if problem is not None:
            self._stats.camera_info_refused(problem)
            self._node.get_logger().warning(f"refusing camera_info: {problem}",
                                            throttle_duration_sec=LOG_THROTTLE_S)
        self._camera_info = (msg, problem)

    def _on_incompatible_qos(self, info) -> None:
        self._stats.incompatible(int(info.total_count_change))
        policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
        topic = self._subscriptions[0].topic_name
        self._node.get_logger().warning(
            f"a publisher on {topic} offers an incompatible QoS ({policy}): the input is "
            f"reliable because FastDDS loses best-effort frames above 0.5 MB; for a "
            f"best-effort camera set qos_overrides.{topic}.subscription.reliability:="
            f"best_effort")

    # --- threads ---------------------------------------------------------------------------

    def _reconstruct_loop(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                msg, received = self._pending
                self._pending = None
                self._busy = True
            frame = self._guarded("reconstruction", self._reconstruct, msg, received)
            if frame is not None:
                with self._cond:  # wait for the publish slot (one frame in flight)
                    self._cond.wait_for(lambda: self._ready is None)
                    self._ready = frame
                    self._cond.notify_all()

    def _publish_loop(self) -> None:
        while True:
            with self._cond:  # on close, the frame being reconstructed is still published
                while self._ready is None and not (self._stopping and not self._busy):
                    self._cond.wait()
                if self._ready is None:
                    return
                frame = self._ready  # the slot stays taken until published (set_active waits)
            self._guarded("publishing", self._publish_frame, frame)
            with self._cond:
                self._ready = None
                self._cond.notify_all()

    def _guarded(self, what: str, stage, *args):
        """``stage(*args)``, or None after logging and counting its failure: a bad frame is
        skipped, any other error is reported (as ``what`` failed) and the node keeps running."""
        try:
            return stage(*args)
        except FrameError as err:
            self._stats.rejected(str(err))
            self._node.get_logger().warning(f"skipping frame: {err}",
                                            throttle_duration_sec=LOG_THROTTLE_S)
        except Exception as err:  # noqa: BLE001 - the node must survive any one frame
            if self._stopping or not self._node.context.ok():
                return None
            self._stats.failed(f"{type(err).__name__}: {err}")
            self._node.get_logger().error(
                f"{what} failed: {type(err).__name__}: {err}",
                throttle_duration_sec=LOG_THROTTLE_S)
        return None

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
            self._reconstructor = None  # free the old one (and its GPU memory) first
            self._reconstructor = Reconstructor(self._optics.bank, config)
            self._reconstructor_config = config
        return self._reconstructor

    def warm_up(self, channels: int = 3) -> float | None:
        """Reconstruct one textured frame of the working size (model build, CUDA graph capture)
        so the first real frame of that size runs at steady-state speed.

        Returns:
            Seconds it took, or None when the camera model gives no working size.
        """
        size = self._optics.size
        if size is None:
            return None
        settings = self._settings.current
        reconstructor = self._ensure_reconstructor(settings)
        rng = np.random.default_rng(0)
        shape = (size[1], size[0], channels)
        started = time.monotonic()
        reconstructor(rng.uniform(0.2, 0.8, shape).astype(np.float32))
        self._warm_key = (shape, self._reconstructor_config)
        return time.monotonic() - started

    def _decode(self, msg: Image | CompressedImage, settings: NodeSettings) -> DecodedFrame:
        """The message as intensities; ``FrameError`` if it cannot be decoded."""
        try:
            if isinstance(msg, CompressedImage):
                decoded = decode_compressed(msg.data)
                if decoded.codec == "jpeg" and not self._warned_jpeg:
                    self._warned_jpeg = True
                    self._node.get_logger().warning(
                        "input is JPEG: its lossy 8x8-block compression changes the local "
                        "blur that depth is measured from; expect worse depth than from raw "
                        "or PNG frames")
                pixels, encoding = decoded.pixels, decoded.encoding
            else:
                pixels, encoding = imgmsg_to_array(msg), msg.encoding
            intensities = image_to_float(pixels, encoding, settings.bayer_pattern)
        except ValueError as err:
            what = (f"compressed image ({msg.format!r})" if isinstance(msg, CompressedImage)
                    else f"{msg.width}x{msg.height} {msg.encoding!r} image")
            raise FrameError(f"{what}: {err}") from err
        return DecodedFrame(intensities, intensities.shape[1], intensities.shape[0])

    def _coded(self, frame: DecodedFrame, settings: NodeSettings) -> np.ndarray:
        """The binned frame at the working resolution; ``FrameError`` if the size is wrong."""
        try:
            coded = bin_image(frame.intensities, settings.binning)
        except ValueError as err:
            raise FrameError(f"{frame.width}x{frame.height} image: {err}") from err
        expected = self._optics.size
        if expected is not None and (coded.shape[1], coded.shape[0]) != expected:
            raise FrameError(
                f"image is {frame.width}x{frame.height} px, binned by {settings.binning} to "
                f"{coded.shape[1]}x{coded.shape[0]}, but the camera model expects "
                f"{expected[0]}x{expected[1]} px (check binning / camera_file)"
            )
        return coded

    def _intrinsics(self, frame: DecodedFrame, settings: NodeSettings, width: int,
                    height: int) -> np.ndarray | None:
        """K at the working resolution from camera_info (preferred) or the camera model.

        Raises:
            FrameError: the newest camera_info was refused (lens distortion).
        """
        stored, input_K = self._camera_info, None
        if stored is not None:
            info, problem = stored
            if problem is not None:
                raise FrameError(problem)
            try:
                input_K = input_intrinsics(info, frame.width, frame.height)
            except ValueError as err:
                self._node.get_logger().warning(f"ignoring camera_info: {err}",
                                                throttle_duration_sec=10.0)
        return working_intrinsics(input_K, settings.binning, self._optics.fx, width, height)

    def _reconstruct(self, msg: Image | CompressedImage, received: float) -> ReconstructedFrame:
        """Decode and reconstruct one image (the reconstruct thread's stage)."""
        settings = self._settings.current
        started = time.monotonic()
        frame = self._decode(msg, settings)
        coded = self._coded(frame, settings)
        height, width = coded.shape[:2]
        K = self._intrinsics(frame, settings, width, height)
        decode_s = time.monotonic() - started
        reconstructor = self._ensure_reconstructor(settings)
        key = (coded.shape if coded.ndim == 3 else (*coded.shape, 1), self._reconstructor_config)
        warmup = key != self._warm_key
        try:
            result = reconstructor(coded)
        except ValueError as err:
            raise FrameError(str(err)) from err
        self._warm_key = key
        return ReconstructedFrame(msg.header, settings, result, K, received, warmup, decode_s)

    def _publish_frame(self, frame: ReconstructedFrame) -> None:
        """Publish one frame and count it (the publish thread's stage)."""
        started = time.monotonic()
        self._publish(frame.header, frame.settings, frame.result, frame.K)
        finished = time.monotonic()
        latency = finished - frame.received
        if frame.warmup:
            height, width = np.shape(frame.result.depth)
            self._node.get_logger().info(
                f"warm-up frame ({width}x{height}, {frame.settings.method} on "
                f"{frame.settings.device}): {frame.result.seconds * 1e3:.0f} ms compute, "
                f"{latency * 1e3:.0f} ms latency; excluded from the latency statistics")
        self._stats.published(latency, float(frame.result.seconds), warmup=frame.warmup,
                              decode_s=frame.decode_s, publish_s=finished - started)

    def _publish(self, input_header: Header, settings: NodeSettings, result,
                 K: np.ndarray | None) -> None:
        """Publish one frame's outputs (``outputs.frame_outputs``) with the input's stamp and
        frame_id."""
        frame = frame_outputs(result, K, output_settings(settings))
        width, height = frame.size
        header = Header(stamp=input_header.stamp,
                        frame_id=settings.frame_id or input_header.frame_id)
        out = self._outputs
        out["depth/image"].publish(array_to_imgmsg(frame.depth, "32FC1", header))
        if settings.publish_uncertainty:
            out["depth/uncertainty"].publish(array_to_imgmsg(frame.uncertainty, "32FC1", header))
        if settings.publish_aif:
            out["aif/image"].publish(array_to_imgmsg(frame.aif_pixels, frame.aif_encoding, header))
        if frame.K is None:
            self._node.get_logger().warning(
                "no intrinsics (no camera_info and the PSF bank has no focal length): "
                "camera_info and points are not published", throttle_duration_sec=10.0)
            return
        info = rectified_camera_info(header, width, height, frame.K)
        out["depth/camera_info"].publish(info)
        if settings.publish_aif:
            out["aif/camera_info"].publish(info)
        if frame.cloud is not None:
            out["points"].publish(cloud_to_msg(pack_points(frame.cloud), header))

    # --- diagnostics -----------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """One DiagnosticArray with the node's status (also while inactive)."""
        settings = self._settings.current
        gpu_mb = None
        if settings.device.startswith("cuda"):
            import torch

            gpu_mb = torch.cuda.memory_allocated(torch.device(settings.device)) / 2**20
        reconstructor = self._reconstructor
        execution = ("not started" if reconstructor is None
                     else "cuda graph" if reconstructor.graphed else "eager")
        status = diagnostic_status(self._stats.snapshot(),
                                   f"{self._node.get_name()}: reconstruction", settings.device,
                                   settings.method, execution, gpu_mb, active=self._active)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub_diag.publish(array)
