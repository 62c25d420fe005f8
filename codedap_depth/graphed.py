# SPDX-License-Identifier: Apache-2.0
"""CUDA-graph replay of a fixed-shape function: the real-time path of the reconstruction.

Eager PyTorch launches every small kernel of a frame from Python (tens of thousands for the
warm start and the sampler), so at robot frame sizes the GPU waits on the host.
``CapturedCall`` runs the function once eagerly on a side stream (cuFFT plans, cuDNN
algorithms, allocator pools), captures a second run into a CUDA graph, and for every later call
copies the arguments into the graph's static input buffers and replays it: one launch.

The function must only read its tensor arguments (whose shapes are then fixed), never wait for
the device (no ``.item()``, no host copies) and take no decisions from tensor values.

Memory: cuBLAS keeps a workspace (32 MiB on Hopper) for every stream it has run on, for the
life of the process, and counts it as allocated. All captures therefore share one side stream
per device (``capture_stream``), and ``release_cuda_caches`` frees those workspaces once no
graph is left (the lifecycle node's cleanup).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, TypeVar

import torch

Output = TypeVar("Output")


class CapturedCall(Generic[Output]):
    """``fn(*tensors)`` captured in a CUDA graph at the shapes of ``example``.

    Args:
        fn: the function; its output's tensors become the graph's static outputs.
        example: CUDA tensors with the shapes, dtypes and device of every later call's
            arguments (their values are used for the warm-up and capture runs).
    """

    def __init__(self, fn: Callable[..., Output], *example: torch.Tensor) -> None:
        device = example[0].device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need CUDA tensors, got tensors on {device}")
        self.inputs = [t.clone() for t in example]
        side = capture_stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            fn(*self.inputs)  # warm-up: plans, algorithms and memory pools exist before capture
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=side):
            self.output = fn(*self.inputs)

    def __call__(self, *args: torch.Tensor) -> Output:
        """Copy ``args`` into the static inputs and replay. The output's tensors are the graph's
        own buffers, overwritten by the next call: read or copy them before that."""
        if len(args) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} tensors, got {len(args)}")
        for static, arg in zip(self.inputs, args, strict=True):
            if arg.shape != static.shape:
                raise ValueError(f"captured for shape {tuple(static.shape)}, "
                                 f"got {tuple(arg.shape)}")
            static.copy_(arg)
        self.graph.replay()
        return self.output


@functools.cache
def capture_stream(device: torch.device) -> torch.cuda.Stream:
    """The one side stream on which every ``CapturedCall`` on ``device`` warms up and captures
    (a new stream per capture would leave a cuBLAS workspace behind each time)."""
    return torch.cuda.Stream(device)


def release_cuda_caches(device: torch.device) -> None:
    """Give ``device``'s cached memory back: cuBLAS workspaces, cuFFT plans and the caching
    allocator's free blocks. Only when no ``CapturedCall`` on the device is alive: a graph
    replays into the workspaces it was captured with."""
    torch.cuda.synchronize(device)
    torch._C._cuda_clearCublasWorkspaces()
    index = torch.cuda.current_device() if device.index is None else device.index
    torch.backends.cuda.cufft_plan_cache[index].clear()
    torch.cuda.empty_cache()
