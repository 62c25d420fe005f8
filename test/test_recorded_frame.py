# SPDX-License-Identifier: Apache-2.0
"""Refactors keep behaviour: one recorded frame through every method, CPU, fixed seed.

``test/data/recorded_frame.npz`` holds a simulated coded frame (the ``layered`` scene, 96x64,
default camera, noise 0.01, seed 0) and what ``pipeline.Reconstructor`` returned for it when
it was recorded. Re-record only for an intended change of results, and say so in the commit:
``python test/test_recorded_frame.py --record``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.pipeline import METHODS, ReconstructionConfig, Reconstructor

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "test" / "data" / "recorded_frame.npz"
#: Methods recorded (``dps`` is the slow reference sampler, not a product path).
RECORDED = tuple(m for m in METHODS if m != "dps")
OUTPUTS = ("depth", "aif", "uncertainty")
NOISE_SIGMA = 0.01


def reconstruct(coded: np.ndarray, method: str) -> dict[str, np.ndarray]:
    """The outputs of ``method`` for ``coded`` on the CPU, seed 0, the noise level given."""
    bank = synthesize_bank(load_camera(REPO / "config" / "camera.yaml"))
    config = ReconstructionConfig(method=method, device="cpu", seed=0, noise_sigma=NOISE_SIGMA)
    rec = Reconstructor(bank, config)(coded)
    return {name: getattr(rec, name) for name in OUTPUTS}


@pytest.fixture(scope="module")
def recording() -> dict[str, np.ndarray]:
    with np.load(RECORDING, allow_pickle=False) as data:
        return dict(data)


@pytest.mark.parametrize("method", RECORDED)
def test_outputs_equal_the_recording(recording, method):
    outputs = reconstruct(recording["coded"], method)
    for name, value in outputs.items():
        np.testing.assert_allclose(value, recording[f"{method}/{name}"], rtol=1e-4, atol=1e-4,
                                   err_msg=f"{method} {name} differs from the recording")


def record() -> None:
    """Simulate the frame and write every recorded method's outputs."""
    from codedap_depth.evaluation import load_eval_scene
    from codedap_depth.simulate import simulate_capture

    bank = synthesize_bank(load_camera(REPO / "config" / "camera.yaml"))
    scene = load_eval_scene("layered", (float(bank.depths[0]), float(bank.depths[-1])),
                            (96, 64))
    coded = simulate_capture(scene, bank, NOISE_SIGMA, seed=0)
    arrays = {"coded": coded}
    for method in RECORDED:
        arrays |= {f"{method}/{k}": v for k, v in reconstruct(coded, method).items()}
    RECORDING.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(RECORDING, **arrays)
    print(f"wrote {RECORDING} ({RECORDING.stat().st_size} bytes): {sorted(arrays)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python test/test_recorded_frame.py --record")
    record()
