# SPDX-License-Identifier: Apache-2.0
"""The benchmark's code path on the CPU (tiny sizes; its numbers come from the GPU)."""

import dataclasses
import json

import pytest
import torch
from helpers import REPO

from codedap_depth.graphed import CapturedCall
from codedap_depth.optics import load_camera
from codedap_depth.pipeline import DEFAULT_STEPS
from codedap_depth.tools.bench import run_bench


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


def test_halves_benchmark_isolates_image_and_depth(monkeypatch):
    """``benchmarks/halves.py`` on one tiny scene: every part writes its rows, the baselines
    carry their tuned gradient std, and the layer-quantisation floor is the smallest error."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import halves

    from codedap_depth.optics import synthesize_bank
    from codedap_depth.prior import load_prior
    from codedap_depth.scenes import load_scene

    bank = synthesize_bank(load_camera(REPO / "config" / "camera.yaml"))
    scene = load_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])), (64, 48))
    result = halves.run_parts(["aif", "floors", "evidence", "full", "uncertainty"], [scene],
                              bank, [0.01], 1, [2], load_prior("cpu"), "cpu")
    methods = {(r["method"], r["steps"]) for r in result["aif"]}
    assert methods == {("wiener", 0), ("least-squares", 0), ("dfd-dps", 2)}
    assert all(r["gradient_sigma"] in halves.GRADIENT_SIGMAS for r in result["aif"]
               if r["method"] != "dfd-dps")
    floors = {r["method"]: r["depth_absrel"] for r in result["floors"]}
    assert floors["true depth on layers"] < floors["depth from true AIF"]
    assert {r["method"] for r in result["full"]} == {"classical", "dfd-dps"}
    assert "| layered | 0.01 | dfd-dps | 2 |  |  | 1 |" in halves.table(result["full"],
                                                                    halves.COLUMNS["full"])
    oracle = [r for r in result["evidence"] if r["method"] == "oracle-pooled evidence"]
    assert {(r["window"], r["radius"]) for r in oracle} == {
        (w, r) for w in halves.EVIDENCE_WINDOWS for r in halves.EVIDENCE_RADII}
    assert all(0 <= r["depth_absrel"] < 10 and 0 <= r["delta1"] <= 1 for r in oracle)
    given = [r for r in result["evidence"] if r["method"] == "dfd-dps given the floor depth"]
    best = min(oracle, key=lambda r: r["depth_absrel"])
    assert [(r["steps"], r["window"], r["radius"]) for r in given] == [
        (2, best["window"], best["radius"])]
    assert given[0]["aif_psnr_db"] > 10
    shipped, sampled = result["uncertainty"]
    assert (shipped["samples"], sampled["samples"]) == (1, halves.UNCERTAINTY_SAMPLES)
    for calibration in (shipped, sampled):
        assert calibration["mean_std_m"] > 0  # the layer posterior's spread, even for 1 sample
        assert -1 <= calibration["spearman_std_error"] <= 1
        assert 0 <= calibration["within_2std"] <= 1
