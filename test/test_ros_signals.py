# SPDX-License-Identifier: Apache-2.0
"""SIGINT and SIGTERM at any moment end the node with status 0 and no traceback: as soon as
``main`` has installed its handlers (the modules are still importing), while the node is being
built (1.5 s later), idle and twice in a row, and mid-frame. (Before ``main`` runs, the interpreter
itself is starting, a window of about 0.1 s that no Python program can cover.)

All node processes run at once (each in its own namespace) to keep the wall time short. The
mid-frame nodes use a 320x240 working size, where one classical frame takes about a second on
one CPU thread, and get the signal 0.3 s after the frame is sent."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import REPO, Probe, start_node, wait_until_matched, write_setup

#: (name, signal, when): seconds after main installed its handlers, "frame" or "twice"
#: (idle, then a second signal at once)
CASES = [
    ("int_importing", signal.SIGINT, 0.0),
    ("term_importing", signal.SIGTERM, 0.0),
    ("int_building", signal.SIGINT, 1.5),
    ("term_twice", signal.SIGTERM, "twice"),
    ("int_frame", signal.SIGINT, "frame"),
    ("term_frame", signal.SIGTERM, "frame"),
]


def handlers_installed(proc: subprocess.Popen, timeout: float = 30.0) -> float:
    """Monotonic time at which the process catches SIGTERM (``SigCgt`` in /proc): ``main`` has
    installed its handlers (Python itself only catches SIGINT)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines()
                          if line.startswith("SigCgt:")), 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            return time.monotonic()
        time.sleep(0.002)
    pytest.fail(f"pid {proc.pid} installed no SIGTERM handler in {timeout} s")


def rcl_loaded(proc: subprocess.Popen) -> bool:
    """Whether the process has mapped rcl's shared library (rclpy is imported)."""
    return "librcl.so" in Path(f"/proc/{proc.pid}/maps").read_text()


def wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in the log:\n{path.read_text()[-2000:]}")
        time.sleep(0.05)


def test_signals_at_any_moment_exit_cleanly(ros, tmp_path) -> None:
    from codedap_depth.ros.image_conversion import array_to_imgmsg

    camera = str(REPO / "config" / "camera.yaml")  # 320x240 working size
    procs = {}
    started = time.monotonic()

    def start(name: str, when) -> subprocess.Popen:
        extra = {"camera_file": camera, "binning": 1} if when == "frame" else {}
        (tmp_path / name).mkdir()
        files = write_setup(tmp_path / name, **extra)
        procs[name] = (start_node(files, f"/sig_{name}"), files)
        return procs[name][0]

    try:
        # one at a time, so that the signal lands while the node's modules are still importing
        for name, signum, when in CASES:
            if when == 0.0:
                proc = start(name, when)
                handlers_installed(proc)
                assert not rcl_loaded(proc), f"{name}: rclpy was loaded before the handlers"
                proc.send_signal(signum)
        for name, _, when in CASES:
            if when != 0.0:
                start(name, when)
        for name, signum, when in CASES:
            if isinstance(when, float) and when > 0:
                proc = procs[name][0]
                time.sleep(max(0.0, handlers_installed(proc) + when - time.monotonic()))
                proc.send_signal(signum)
        for name, signum, when in CASES:
            proc, files = procs[name]
            if when == "twice":
                wait_for_log(files["log"], "ready:", proc)
                proc.send_signal(signum)
                proc.send_signal(signum)
            elif when == "frame":
                wait_for_log(files["log"], "ready:", proc)
                probe = Probe(ros, f"/sig_{name}")
                wait_until_matched(probe, proc, files["log"])
                frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
                probe.publish(array_to_imgmsg(frame, "rgb8"), sec=1)
                time.sleep(0.3)
                proc.send_signal(signum)
                ros.remove(probe.node)
        for name, _, when in CASES:
            proc, files = procs[name]
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"{name}: still running 60 s after the signal")
            log = files["log"].read_text()
            assert proc.returncode == 0, (name, proc.returncode, log[-2000:])
            assert "Traceback" not in log and "Error" not in log, (name, log[-2000:])
            if when == "frame":  # the frame finished during shutdown, and it outlasted the 0.3 s
                match = re.search(r"warm-up frame \(320x240, classical on cpu\): (\d+) ms", log)
                assert match and int(match.group(1)) > 400, (name, log[-2000:])
    finally:  # a failed assertion must not leave nodes running
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print(f"{len(CASES)} signalled node processes in {time.monotonic() - started:.1f} s")
