# SPDX-License-Identifier: Apache-2.0
"""One end-to-end run: start the node process, replay a bag into it, record its outputs.

Used by ``codedap-depth demo``; everything here talks to a real ROS 2 graph (DDS), nothing is
simulated. The node runs as its own process exactly as a user would start it.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from codedap_depth.bags.rosbag import BagWriter
from codedap_depth.names import DIAGNOSTIC_ARRAY, OUTPUT_TOPICS
from codedap_depth.ros.player import PlayResult, play_bag
from codedap_depth.ros.recorder import BagRecorder


class SessionError(RuntimeError):
    """The node did not start or died; the message carries the end of its log."""


@dataclass(frozen=True)
class SessionResult:
    """What happened in a session.

    Attributes:
        played: the frames published (stamps and publish times).
        arrivals: output topic -> [(stamp ns, receive time)], ``time.time()`` clock.
        diagnostics: the node's last diagnostic key/values.
        node_returncode: exit status of the node after SIGINT (0 = clean).
        seconds: wall time from starting the node to stopping it.
    """

    played: PlayResult
    arrivals: dict[str, list[tuple[int, float]]]
    diagnostics: dict[str, str]
    node_returncode: int
    seconds: float


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_node_session(
    bag: str | Path,
    output_bag: str | Path,
    node_command: list[str],
    log_path: str | Path,
    *,
    namespace: str = "/camera",
    storage: str = "mcap",
    rate: float = 1.0,
    hz: float | None = None,
    startup_timeout_s: float = 300.0,
    settle_timeout_s: float = 30.0,
    progress=print,
) -> SessionResult:
    """Start ``node_command``, play ``bag`` into it, record its outputs into ``output_bag``.

    Args:
        bag: input bag (its ``<namespace>/image_raw`` and ``camera_info`` are played).
        output_bag: rosbag2 directory to create with the node's outputs and ``/diagnostics``.
        node_command: argv that starts the node in ``namespace`` (e.g. ``codedap-depth node``).
        log_path: the node's stdout/stderr go here.
        rate, hz: playback speed factor or fixed frame rate (see ``play_bag``).
        startup_timeout_s: how long the node may take to come up (imports, PSFs, weights).
        settle_timeout_s: after playback, how long to wait without any new depth output for
            the last frame's outputs (the input is best effort: the last frame can be lost).
        progress: called with one-line status messages.

    Raises:
        SessionError: the node exited or did not come up in time.
    """
    log_path = Path(log_path)
    topics = {f"{namespace}/{name}": kind for name, kind in OUTPUT_TOPICS.items()}
    topics["/diagnostics"] = DIAGNOSTIC_ARRAY
    depth_topic = f"{namespace}/depth/image"
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    started = time.monotonic()
    with BagWriter(output_bag, storage) as writer, open(log_path, "w") as log:
        recorder = BagRecorder(writer, topics, context=context)
        executor.add_node(recorder)
        spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
        spinner.start()
        node = subprocess.Popen(node_command, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=exit_with_parent)
        try:
            _wait_for_node(node, recorder, log_path, startup_timeout_s)
            progress(f"node up after {time.monotonic() - started:.1f} s; playing {bag}")
            played = play_bag(bag, rate=rate, hz=hz, context=context, wait_s=30.0)
            progress(f"played {played.frames} frames in {played.seconds:.1f} s; waiting for "
                     f"the last outputs")
            last = played.published[-1][0] if played.published else None
            seen, quiet_since = -1, time.monotonic()
            while last is not None and last not in recorder.stamps(depth_topic):
                if node.poll() is not None:
                    raise SessionError(f"node exited with {node.returncode}:\n{_tail(log_path)}")
                if len(recorder.stamps(depth_topic)) != seen:
                    seen, quiet_since = len(recorder.stamps(depth_topic)), time.monotonic()
                if time.monotonic() - quiet_since > settle_timeout_s:
                    progress(f"no output for the last frame after {settle_timeout_s:.0f} s "
                             "without new outputs (lost in transport?); summarising what came")
                    break
                time.sleep(0.1)
            time.sleep(1.5)  # one more diagnostics message with the final counts
        finally:
            returncode = stop_process(node)
            executor.shutdown(timeout_sec=5.0)
            recorder.destroy_node()
            context.try_shutdown()
            spinner.join(timeout=5.0)
    node_diag = next((v for k, v in recorder.diagnostics.items()
                      if k.startswith("codedap_depth")), {})
    return SessionResult(played, {t: list(a) for t, a in recorder.arrivals.items()}, node_diag,
                         returncode, time.monotonic() - started)


def exit_with_parent() -> None:
    """In the node's child process: ask Linux to send it SIGTERM if the demo dies, so a
    killed demo (e.g. a test timeout) leaves no node running."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def _wait_for_node(node: subprocess.Popen, recorder: BagRecorder, log_path: Path,
                   timeout_s: float) -> None:
    """Until the node publishes its first diagnostics (it does once its worker runs)."""
    deadline = time.monotonic() + timeout_s
    while not any(k.startswith("codedap_depth") for k in recorder.diagnostics):
        if node.poll() is not None:
            raise SessionError(f"node exited with {node.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise SessionError(f"node not up after {timeout_s:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.1)


def stop_process(node: subprocess.Popen) -> int:
    """SIGINT (a clean ROS shutdown), then SIGKILL after 20 s; returns the exit status."""
    if node.poll() is None:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    return int(node.returncode)
