# SPDX-License-Identifier: Apache-2.0
"""The benchmark's code path on the CPU (tiny sizes; its numbers come from the GPU)."""

import dataclasses
import json

import pytest
import torch
from helpers import REPO

from codedap_depth.bench import run_bench
from codedap_depth.graphed import CapturedCall
from codedap_depth.optics import load_camera
from codedap_depth.pipeline import DEFAULT_STEPS


def test_bench_writes_speed_and_quality_tables(tmp_path):
    from codedap_depth.prior import load_prior

    camera = dataclasses.replace(load_camera(REPO / "config" / "camera.yaml"), width=64,
                                 height=48)
    result = run_bench(camera, load_prior("cpu"), "cpu", [(64, 48)], [2], [1], [2], [2],
                       tmp_path, parts=("speed", "quality", "stages"), seeds=1, reference_steps=3,
                       quality_scenes=("layered",))
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["device"].startswith("CPU") and saved["bf16_matmul_tflops"] is None
    (row,) = saved["speed"]
    assert (row["size"], row["steps"], row["cg_iterations"], row["path"]) == ("64x48", 2, 2,
                                                                              "eager")
    assert row["ms_per_frame"] > 0 and row["fps"] == pytest.approx(1000 / row["ms_per_frame"])
    reference, fast = saved["quality"]
    assert (reference["steps"], fast["steps"]) == (3, 2)
    assert reference["absrel_vs_reference"] == 1.0
    assert fast["absrel_vs_reference"] == pytest.approx(
        fast["depth_absrel"] / reference["depth_absrel"])
    assert (tmp_path / "quality_vs_steps.png").stat().st_size > 10_000
    assert result["speed"] == saved["speed"]
    stages = saved["stages"]
    assert stages["steps"] == DEFAULT_STEPS and all(stages[k] > 0 for k in (
        "frame_ms", "device_ms", "network_ms", "image_step_ms", "depth_step_ms"))


def test_captured_call_needs_cuda_tensors():
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors"):
        CapturedCall(lambda a: 2 * a, torch.zeros(3))
