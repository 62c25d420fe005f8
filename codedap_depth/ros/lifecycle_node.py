# SPDX-License-Identifier: Apache-2.0
"""The managed (lifecycle) ``codedap_depth`` node, driven over the ``lifecycle_msgs`` services.

========================  ================================================================
transition                what happens
========================  ================================================================
configure                 check parameters, load the PSF bank and camera model, build the
                          reconstructor (the prior goes onto ``device``), create the topics;
                          on CUDA also reconstruct one frame of the working size (CUDA graph
                          capture) so the first real frame is not a warm-up
activate                  start taking images and publishing
deactivate                stop taking images; waits for the frame in progress
cleanup                   destroy the topics, release reconstructor, prior and bank (on
                          CUDA, also the cuBLAS workspaces, cuFFT plans and allocator cache);
                          the log says whether all of it was freed
shutdown                  as cleanup, from any state
========================  ================================================================

A failed configure (bad file, bad parameters) logs one line and leaves the node unconfigured.
Parameters stay declared across cleanup/configure, so a reconfigure picks up changed values.
"""

from __future__ import annotations

import gc

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from codedap_depth.ros.depth_node import NODE_NAME, checked_settings, ready_message
from codedap_depth.ros.diagnostics import FrameStats
from codedap_depth.ros.runtime import DepthRuntime
from codedap_depth.ros.settings import LiveSettings, StartupError


class LifecycleDepthNode(LifecycleNode):
    """``DepthNode`` as a managed node: nothing is loaded until ``configure``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._runtime: DepthRuntime | None = None
        self._settings: LiveSettings | None = None
        self._watching = False
        self.get_logger().info("unconfigured: waiting for the configure transition")

    @property
    def runtime(self) -> DepthRuntime | None:
        """What the node holds while configured (None when unconfigured)."""
        return self._runtime

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._settings is None:  # declared once; kept across cleanup/configure
                self._settings = checked_settings(self)
            self._runtime = DepthRuntime(self, self._settings, FrameStats(), managed=True)
        except StartupError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        if not self._watching:
            self._settings.watch()
            self._watching = True
        message = ready_message(self._runtime, self._settings)
        if self._settings.current.device.startswith("cuda"):
            seconds = self._runtime.warm_up()
            if seconds is not None:
                message += f"; warmed up (CUDA graph captured) in {seconds:.2f} s"
        self.get_logger().info(f"configured: {message}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._runtime.set_active(True)
        self.get_logger().info("active: publishing")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._runtime.set_active(False)
        self.get_logger().info("inactive: not processing images")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release("shut down")
        return TransitionCallbackReturn.SUCCESS

    def _release(self, what: str) -> None:
        """Close the runtime and report whether its objects (and GPU memory) were freed."""
        runtime, self._runtime = self._runtime, None
        if runtime is None:
            return
        device = self._settings.current.device
        refs = runtime.close()
        del runtime
        gc.collect()
        alive = [name for name, ref in refs.items() if ref() is not None]
        message = (f"{what}: released {', '.join(refs)}" if not alive
                   else f"{what}: still referenced after release: {', '.join(alive)}")
        if device.startswith("cuda"):
            import torch

            from codedap_depth.graphed import release_cuda_caches

            if not alive:  # no graph left that replays into the cached workspaces
                release_cuda_caches(torch.device(device))
            allocated = torch.cuda.memory_allocated(torch.device(device)) / 2**20
            message += f"; {allocated:.1f} MB of GPU memory still allocated"
        (self.get_logger().info if not alive else self.get_logger().warning)(message)

    def destroy_node(self) -> None:
        """Release the runtime if still configured, then destroy the node."""
        self._release("destroyed")
        super().destroy_node()
