# SPDX-License-Identifier: Apache-2.0
"""The managed (lifecycle) node: transitions over the standard lifecycle_msgs services from this
(separate) process, publishing only while active, and cleanup releasing what configure loaded."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest
import yaml
from ros_helpers import (
    Probe,
    coded_capture,
    rgb_frame,
    start_node,
    stop_node,
    wait_until_matched,
    write_setup,
)

NS = "/lc"
SERVICE = f"{NS}/codedap_depth"


def parameters(files: dict[str, Path], **changes) -> list:
    from rclpy.parameter import Parameter

    values = next(iter(yaml.safe_load(files["params"].read_text()).values()))["ros__parameters"]
    values.update(changes)
    return [Parameter(name, value=value) for name, value in values.items()]


def test_configure_loads_and_cleanup_releases_the_model_objects(ros, tmp_path) -> None:
    """In this process: after cleanup nothing holds the reconstructor, the prior network or the
    PSF bank (on CUDA the same path empties the allocator; the log reports the memory)."""
    from lifecycle_msgs.msg import State
    from rclpy.lifecycle import TransitionCallbackReturn

    from codedap_depth.ros.lifecycle_node import LifecycleDepthNode

    files = write_setup(tmp_path)
    node = LifecycleDepthNode(context=ros.context,
                              parameter_overrides=parameters(files, method="dfd-dps"))
    try:
        assert node.runtime is None
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        runtime = node.runtime
        held = [runtime.reconstructor, runtime.reconstructor.prior, runtime.optics.bank]
        assert all(obj is not None for obj in held)
        refs = [weakref.ref(obj) for obj in held]
        del runtime, held
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        gc.collect()
        assert node.runtime is None
        assert [ref() for ref in refs] == [None, None, None]
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    finally:
        node.destroy_node()


def test_failed_configure_stays_unconfigured(ros, tmp_path) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    from codedap_depth.ros.lifecycle_node import LifecycleDepthNode

    files = write_setup(tmp_path)
    missing = tmp_path / "missing.npz"
    node = LifecycleDepthNode(context=ros.context,
                              parameter_overrides=parameters(files, psf_file=str(missing)))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.runtime is None
    finally:
        node.destroy_node()


class LifecycleClient:
    """The standard lifecycle_msgs services of the node, called from this process."""

    def __init__(self, node) -> None:
        from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState

        self.change = node.create_client(ChangeState, f"{SERVICE}/change_state")
        self.get = node.create_client(GetState, f"{SERVICE}/get_state")
        self.transitions = node.create_client(GetAvailableTransitions,
                                              f"{SERVICE}/get_available_transitions")
        for client in (self.change, self.get, self.transitions):
            assert client.wait_for_service(timeout_sec=60), client.srv_name

    @staticmethod
    def _call(client, request, timeout: float = 60.0):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                pytest.fail(f"{client.srv_name} did not answer in {timeout} s")
            time.sleep(0.01)
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self.get, GetState.Request()).current_state.label

    def available(self) -> set[str]:
        from lifecycle_msgs.srv import GetAvailableTransitions

        result = self._call(self.transitions, GetAvailableTransitions.Request())
        return {t.transition.label for t in result.available_transitions}

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self.change, request).success


@pytest.fixture(scope="module")
def lifecycle_process(tmp_path_factory):
    files = write_setup(tmp_path_factory.mktemp("lifecycle"))
    proc = start_node(files, NS, "--lifecycle")
    yield proc, files
    stop_node(proc, files)


def no_output_for(probe: Probe, sec: int, seconds: float = 1.0) -> bool:
    time.sleep(seconds)
    return probe.outputs_for(sec) == {}


def test_transitions_over_the_lifecycle_services(ros, lifecycle_process) -> None:
    from lifecycle_msgs.msg import Transition

    proc, files = lifecycle_process
    probe = Probe(ros, NS, log_path=files["log"])
    client = LifecycleClient(probe.node)
    coded = coded_capture(files["raw"])
    assert client.state() == "unconfigured"
    assert probe.node.count_publishers(f"{NS}/depth/image") == 0, "nothing exists before configure"

    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == "inactive"
    wait_until_matched(probe, proc, files["log"])
    assert probe.next_diagnostics()["active"] == "false"
    probe.publish(rgb_frame(coded), sec=10)
    assert no_output_for(probe, 10), "an inactive node must not publish"

    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == "active"
    assert {"deactivate", "shutdown"} <= client.available()
    probe.publish(rgb_frame(coded), sec=11)
    out = probe.wait_outputs(11)
    assert out["depth/image"].encoding == "32FC1"
    assert probe.next_diagnostics()["active"] == "true"

    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == "inactive"
    probe.publish(rgb_frame(coded), sec=12)
    assert no_output_for(probe, 12)

    assert client.transition(Transition.TRANSITION_CLEANUP)
    assert client.state() == "unconfigured"
    log = files["log"].read_text()
    assert "cleaned up: released reconstructor, PSF bank" in log, log[-2000:]  # classical
    deadline = time.monotonic() + 10
    while probe.node.count_publishers(f"{NS}/depth/image") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert probe.node.count_publishers(f"{NS}/depth/image") == 0, "cleanup destroys the topics"

    # configure again: the same node comes back and works
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    wait_until_matched(probe, proc, files["log"])
    probe.publish(rgb_frame(coded), sec=13)
    probe.wait_outputs(13)
    assert client.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert client.state() == "finalized"
    assert "shut down: released" in files["log"].read_text()
    assert proc.poll() is None  # finalized but running until SIGINT; stop_node checks status 0
