# SPDX-License-Identifier: Apache-2.0
"""The codedap-depth command: psf, simulate, reconstruct (classical), errors."""

import json
import subprocess
import sys

import numpy as np

from codedap_depth.cli import main
from codedap_depth.imageio import read_image
from codedap_depth.optics import load_bank


def test_psf_then_simulate_motorcycle_writes_the_three_files(tmp_path):
    bank_path = tmp_path / "bank.npz"
    assert main(["psf", "--out", str(bank_path), "--figure", str(tmp_path / "bank.png")]) == 0
    bank = load_bank(bank_path)
    assert bank.num_depths == 16 and bank.fx is not None
    out = tmp_path / "sim"
    args = ["simulate", "--scene", "motorcycle", "--psf", str(bank_path), "--noise", "0.01",
            "--size", "96x64", "--seed", "3", "--out", str(out)]
    assert main(args) == 0
    coded = read_image(out / "coded.png")
    depth = np.load(out / "depth_gt.npy", allow_pickle=False)
    aif = read_image(out / "aif_gt.png")
    assert coded.shape == (64, 96, 3) and aif.shape == (64, 96, 3)
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    assert np.isnan(depth).any() and np.nanmin(depth) >= bank.depths[0] - 1e-4
    # a 16-bit capture: many more than 256 levels
    assert len(np.unique(coded)) > 1000
    assert json.loads((out / "capture.json").read_text())["noise_sigma"] == 0.01


def test_reconstruct_classical_writes_outputs_and_metrics(tmp_path):
    bank_path = tmp_path / "bank.npz"
    main(["psf", "--out", str(bank_path)])
    sim = tmp_path / "sim"
    main(["simulate", "--scene", "layered", "--psf", str(bank_path), "--noise", "0.005",
          "--size", "96x72", "--out", str(sim)])
    out = tmp_path / "rec"
    code = main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path), "--method",
                 "classical", "--gt-depth", str(sim / "depth_gt.npy"), "--gt-aif",
                 str(sim / "aif_gt.png"), "--out", str(out)])
    assert code == 0
    for name in ("depth.npy", "uncertainty.npy", "aif.png", "points.ply", "figure.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("method", "noise_sigma", "steps", "samples", "depth_absrel", "depth_rmse_m",
                "depth_mae_m", "delta1", "aif_psnr_db", "aif_ssim", "seconds", "device"):
        assert key in metrics
    assert np.isfinite(metrics["depth_absrel"]) and metrics["samples"] == 1
    header = (out / "points.ply").read_bytes()[:200].decode("ascii", "replace")
    assert "element vertex 6912" in header  # 96 * 72 finite points


def test_errors_are_one_line_and_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    result = subprocess.run(
        [sys.executable, "-m", "codedap_depth.cli", "simulate", "--scene", "layered", "--psf",
         str(missing), "--noise", "0.01", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "nope.npz" in result.stderr and "Traceback" not in result.stderr


def test_help_explains_units():
    result = subprocess.run([sys.executable, "-m", "codedap_depth.cli", "simulate", "--help"],
                            capture_output=True, text=True, check=True)
    assert "metres" in result.stdout and "[0, 1] intensities" in result.stdout


def test_reconstruct_dps_end_to_end(tmp_path):
    bank_path = tmp_path / "bank.npz"
    main(["psf", "--out", str(bank_path)])
    sim = tmp_path / "sim"
    main(["simulate", "--scene", "slanted", "--psf", str(bank_path), "--noise", "0.01",
          "--size", "64x48", "--out", str(sim)])
    out = tmp_path / "dps"
    code = main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path), "--method",
                 "dps", "--steps", "3", "--samples", "2", "--gt-depth",
                 str(sim / "depth_gt.npy"), "--out", str(out)])
    assert code == 0
    depth = np.load(out / "depth.npy", allow_pickle=False)
    uncertainty = np.load(out / "uncertainty.npy", allow_pickle=False)
    assert depth.shape == (48, 64) and np.isfinite(depth).all()
    assert np.all(uncertainty >= 0) and uncertainty.max() > 0  # two samples differ
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "dps" and metrics["steps"] == 3 and metrics["samples"] == 2


def test_reconstruct_known_depth_writes_the_aif_and_refuses_bad_maps(tmp_path, capsys):
    bank_path = tmp_path / "bank.npz"
    main(["psf", "--out", str(bank_path)])
    sim = tmp_path / "sim"
    main(["simulate", "--scene", "layered", "--psf", str(bank_path), "--noise", "0.01",
          "--size", "64x48", "--out", str(sim)])
    truth = np.load(sim / "depth_gt.npy", allow_pickle=False)
    out = tmp_path / "known"
    code = main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path), "--steps", "2",
                 "--known-depth", str(sim / "depth_gt.npy"), "--gt-aif", str(sim / "aif_gt.png"),
                 "--out", str(out)])
    assert code == 0
    assert np.allclose(np.load(out / "depth.npy", allow_pickle=False), truth, rtol=1e-5)
    assert json.loads((out / "metrics.json").read_text())["aif_psnr_db"] > 15
    for name, bad, message in (("small.npy", truth[:-2], "frame's size"),
                               ("zero.npy", np.where(truth > 2, 0.0, truth), "positive metres")):
        np.save(tmp_path / name, bad.astype(np.float32))
        capsys.readouterr()
        code = main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path),
                     "--known-depth", str(tmp_path / name), "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code == 2 and name in err and message in err and err.count("\n") == 1


def test_eval_writes_figures_unless_told_not_to(tmp_path):
    args = ["eval", "--suite", "quick", "--methods", "classical", "--noise", "0.01",
            "--seeds", "1", "--size", "64x48"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--no-figures", "--out", str(tmp_path / "b")]) == 0
    rows_a = json.loads((tmp_path / "a" / "results.json").read_text())
    rows_b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [r["depth_absrel"] for r in rows_a] == [r["depth_absrel"] for r in rows_b]
    assert len(list((tmp_path / "a" / "figures").glob("*.png"))) == len(rows_a)
    assert not (tmp_path / "b" / "figures").exists()
