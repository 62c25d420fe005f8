# SPDX-License-Identifier: Apache-2.0
"""Frame statistics of the depth node and their diagnostic_msgs/DiagnosticStatus form.

``FrameStats`` is shared by the subscription callbacks (frames in, drops) and the frame
threads (outputs, latency, bad frames); every method takes its lock, and every container is
bounded.
The first frame after start, or after the working size or reconstructor changes, is a warm-up
frame (model build, CUDA graph capture): it counts as an output but stays out of the latency
and compute statistics, which describe the steady state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

#: outputs within this many seconds count towards the published rate
RATE_WINDOW_S = 10.0
#: latency percentiles are over this many most recent (non-warm-up) outputs
LATENCY_WINDOW = 512
#: a bad frame keeps the status at WARN for this many seconds
WARN_HOLD_S = 5.0


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of ``FrameStats``.

    Attributes:
        frames_in: images received.
        frames_out: images reconstructed and published.
        dropped: images replaced by a newer one before the reconstruct thread took them.
        lost: images DDS reported lost before they reached the node (message_lost event).
        bad_frames: images rejected (encoding, size, data, NaN/Inf, refused camera_info, ...).
        errors: unexpected failures while reconstructing.
        bad_camera_info: camera_info messages refused (lens distortion).
        incompatible_publishers: times an input publisher's QoS did not match the subscription.
        warmup_frames: outputs that were warm-up frames (excluded from the latency statistics).
        warmup_ms: compute time of the last warm-up frame in milliseconds (NaN if none).
        rate_hz: outputs per second over the last ``RATE_WINDOW_S`` seconds.
        latency_ms: last receive-to-publish time in milliseconds of a steady-state frame (NaN
            before the first one).
        latency_p50_ms, latency_p95_ms, latency_max_ms: over the last ``LATENCY_WINDOW``
            steady-state frames (NaN before the first one).
        compute_ms: last steady-state reconstruction time in milliseconds.
        last_error: the most recent rejection or failure ("" if none).
        seconds_since_error: monotonic seconds since ``last_error`` (inf if none).
    """

    frames_in: int
    frames_out: int
    dropped: int
    lost: int
    bad_frames: int
    errors: int
    bad_camera_info: int
    incompatible_publishers: int
    warmup_frames: int
    warmup_ms: float
    rate_hz: float
    latency_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    compute_ms: float
    decode_ms: float
    publish_ms: float
    last_error: str
    seconds_since_error: float


class FrameStats:
    """Thread-safe counters for the node's frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames_in = self._frames_out = self._dropped = self._bad = self._errors = 0
        self._lost = self._bad_info = self._incompatible = self._warmups = 0
        self._out_times: deque[float] = deque(maxlen=512)
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._latency_ms = self._compute_ms = self._warmup_ms = float("nan")
        self._decode_ms = self._publish_ms = float("nan")
        self._last_error = ""
        self._error_time = -float("inf")

    def received(self, replaced_pending: bool) -> None:
        """An image arrived; ``replaced_pending`` if it displaced one the reconstruct thread had
        not taken."""
        with self._lock:
            self._frames_in += 1
            self._dropped += int(replaced_pending)

    def lost(self, count: int) -> None:
        """DDS reported ``count`` more images lost in transport."""
        with self._lock:
            self._lost += count

    def published(self, latency_s: float, compute_s: float, warmup: bool = False, *,
                  decode_s: float = float("nan"), publish_s: float = float("nan")) -> None:
        """A frame's outputs went out ``latency_s`` after it arrived: ``compute_s`` in the
        reconstructor, ``decode_s`` decoding and binning the input before it, ``publish_s``
        packing and publishing the outputs after it. A ``warmup`` frame counts as an output
        but not in the latency and stage statistics."""
        with self._lock:
            self._frames_out += 1
            self._out_times.append(time.monotonic())
            if warmup:
                self._warmups += 1
                self._warmup_ms = compute_s * 1e3
                return
            self._latency_ms, self._compute_ms = latency_s * 1e3, compute_s * 1e3
            self._decode_ms, self._publish_ms = decode_s * 1e3, publish_s * 1e3
            self._latencies_ms.append(self._latency_ms)

    def camera_info_refused(self, reason: str) -> None:
        """A camera_info message was refused (e.g. lens distortion)."""
        with self._lock:
            self._bad_info += 1
            self._last_error, self._error_time = reason, time.monotonic()

    def incompatible(self, count: int) -> None:
        """``count`` more input publishers offered a QoS the subscription cannot match."""
        with self._lock:
            self._incompatible += count
            self._last_error = "an input publisher has an incompatible QoS (see the log)"
            self._error_time = time.monotonic()

    def rejected(self, reason: str) -> None:
        """A frame was bad input."""
        with self._lock:
            self._bad += 1
            self._last_error, self._error_time = reason, time.monotonic()

    def failed(self, reason: str) -> None:
        """Reconstruction failed unexpectedly on a frame."""
        with self._lock:
            self._errors += 1
            self._last_error, self._error_time = reason, time.monotonic()

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of the counters."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._out_times if now - t <= RATE_WINDOW_S]
            if len(recent) >= 2:
                rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)
            else:
                rate = 0.0
            if self._latencies_ms:
                p50, p95 = np.percentile(np.array(self._latencies_ms), [50, 95])
                peak = max(self._latencies_ms)
            else:
                p50 = p95 = peak = float("nan")
            return StatsSnapshot(
                frames_in=self._frames_in,
                frames_out=self._frames_out,
                dropped=self._dropped,
                lost=self._lost,
                bad_frames=self._bad,
                errors=self._errors,
                bad_camera_info=self._bad_info,
                incompatible_publishers=self._incompatible,
                warmup_frames=self._warmups,
                warmup_ms=self._warmup_ms,
                rate_hz=rate,
                latency_ms=self._latency_ms,
                latency_p50_ms=float(p50),
                latency_p95_ms=float(p95),
                latency_max_ms=float(peak),
                compute_ms=self._compute_ms,
                decode_ms=self._decode_ms,
                publish_ms=self._publish_ms,
                last_error=self._last_error,
                seconds_since_error=now - self._error_time,
            )


def diagnostic_status(
    stats: StatsSnapshot, name: str, device: str, method: str, execution: str,
    gpu_memory_mb: float | None, active: bool = True,
) -> DiagnosticStatus:
    """The node's DiagnosticStatus: OK, WARN within ``WARN_HOLD_S`` of a bad frame or error.

    Keys: ``rate_hz, latency_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, compute_ms,
    decode_ms, publish_ms`` (the last frame's stages: reconstructor, input decoding and
    binning, output packing and publishing), ``warmup_frames, warmup_ms, frames_in,
    frames_out, dropped_frames, lost_frames, bad_frames, bad_camera_info,
    incompatible_publishers, errors, last_error, device, method, execution`` (``cuda graph``
    or ``eager``), ``active`` (false while a lifecycle node is inactive) and ``gpu_memory_mb``
    on CUDA.
    """
    recent_problem = stats.seconds_since_error <= WARN_HOLD_S
    level = DiagnosticStatus.WARN if recent_problem else DiagnosticStatus.OK
    if recent_problem:
        message = f"rejected/failed frame: {stats.last_error}"
    elif not active:
        message = "inactive (lifecycle): not processing images"
    elif stats.frames_out == 0:
        message = "waiting for images"
    else:
        message = f"{stats.rate_hz:.2f} Hz, {stats.latency_ms:.0f} ms latency"
    values = {
        "rate_hz": f"{stats.rate_hz:.3f}",
        "latency_ms": f"{stats.latency_ms:.1f}",
        "latency_p50_ms": f"{stats.latency_p50_ms:.1f}",
        "latency_p95_ms": f"{stats.latency_p95_ms:.1f}",
        "latency_max_ms": f"{stats.latency_max_ms:.1f}",
        "compute_ms": f"{stats.compute_ms:.1f}",
        "decode_ms": f"{stats.decode_ms:.1f}",
        "publish_ms": f"{stats.publish_ms:.1f}",
        "warmup_frames": str(stats.warmup_frames),
        "warmup_ms": f"{stats.warmup_ms:.1f}",
        "frames_in": str(stats.frames_in),
        "frames_out": str(stats.frames_out),
        "dropped_frames": str(stats.dropped),
        "lost_frames": str(stats.lost),
        "bad_frames": str(stats.bad_frames),
        "bad_camera_info": str(stats.bad_camera_info),
        "incompatible_publishers": str(stats.incompatible_publishers),
        "errors": str(stats.errors),
        "last_error": stats.last_error,
        "device": device,
        "method": method,
        "execution": execution,
        "active": str(active).lower(),
    }
    if gpu_memory_mb is not None:
        values["gpu_memory_mb"] = f"{gpu_memory_mb:.1f}"
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=device,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
