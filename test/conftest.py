# SPDX-License-Identifier: Apache-2.0
"""pytest setup shared by every test.

DDS must never leave loopback here, and concurrent test runs must not see each other's topics:
before anything can import rclpy, this pins discovery to localhost and picks a ROS domain from
the pid (1..200). Subprocesses inherit the environment, and ``PYTHONPATH`` gets the checkout so
they import this source tree even without ``pip install -e``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pytest  # noqa: E402


class RosRunner:
    """An rclpy context plus a multi-threaded executor spinning in a background thread.

    Attributes:
        context: the rclpy Context every node of the test module must use.
        executor: add nodes with ``add(node)``; it spins until the module's tests finish.
    """

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._nodes: list = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def add(self, node):
        """Spin ``node`` in the background; it is destroyed at teardown. Returns ``node``."""
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def remove(self, node) -> None:
        """Stop spinning and destroy ``node``."""
        self.executor.remove_node(node)
        self._nodes.remove(node)
        node.destroy_node()

    def close(self) -> None:
        for node in list(self._nodes):
            self.remove(node)
        self.executor.shutdown(timeout_sec=5.0)
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)


@pytest.fixture(scope="module")
def ros() -> Iterator[RosRunner]:
    """A live rclpy context on loopback (real DDS) for one test module."""
    runner = RosRunner()
    yield runner
    runner.close()
