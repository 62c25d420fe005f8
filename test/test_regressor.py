# SPDX-License-Identifier: Apache-2.0
"""The U-Net regressor (``--method unet``): shipped weights, CLI, eval, bag eval, the node, other
banks, bad weights files, and that the trained network beats a constant on a dev scene."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from codedap_depth.cli import main
from codedap_depth.metrics import depth_metrics
from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.paths import share_file
from codedap_depth.pipeline import METHODS, ReconstructionConfig, Reconstructor
from codedap_depth.regressor import UNetConfig, load_regressor
from codedap_depth.regressor.loading import (
    CONFIG_FILE,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    load_network,
    save_weights,
)
from codedap_depth.regressor.model import DepthUNet
from codedap_depth.scenes import load_scene
from codedap_depth.simulate import simulate_capture

NEAR, FAR = 0.5, 5.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small frames run far faster on one thread; restore the setting for other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bank():
    return synthesize_bank(load_camera(share_file("config/camera.yaml")))


@pytest.fixture(scope="module")
def unet(bank) -> Reconstructor:
    return Reconstructor(bank, ReconstructionConfig(method="unet"))


def test_shipped_weights_load_offline_and_run_on_any_size() -> None:
    weights = WEIGHTS_DIR / WEIGHTS_FILE
    assert weights.stat().st_size < 16 * 2**20
    record = json.loads((WEIGHTS_DIR / "training.json").read_text())
    assert record["card"] == "NVIDIA H200" and record["train_photos"] == 68
    assert record["val_mae_v_ema"] < 0.1  # a constant v = 0.5 scores 0.25 on uniform depths
    regressor = load_regressor("cpu")
    assert (regressor.config.near, regressor.config.far) == (NEAR, FAR)
    for height, width in ((37, 53), (48, 64)):  # padded to 16 px and cropped back
        frame = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        out = regressor(frame)
        assert out.depth.shape == out.uncertainty.shape == (height, width)
        assert out.aif.shape == (height, width, 3)
        assert np.all((out.depth >= NEAR - 1e-4) & (out.depth <= FAR + 1e-4))
        assert np.all(np.isfinite(out.uncertainty)) and np.all(out.uncertainty > 0)
    mono = regressor(torch.rand(1, 1, 48, 64))
    assert mono.aif.shape == (48, 64, 1)


def test_unet_beats_a_constant_on_simulated_dev_scenes(bank, unet) -> None:
    """160x120, noise 0.01: AbsRel of the regressor against the constant mid-range inverse
    depth (the best constant guess without the image)."""
    constant = 2.0 / (1.0 / NEAR + 1.0 / FAR)
    ratios = []
    for name in ("layered", "slanted"):
        scene = load_scene(name, (NEAR, FAR), (160, 120))
        rec = unet(simulate_capture(scene, bank, 0.01, seed=0))
        ours = depth_metrics(rec.depth, scene.depth).absrel
        trivial = depth_metrics(np.full_like(scene.depth, constant), scene.depth).absrel
        assert ours < trivial, (name, ours, trivial)
        ratios.append(ours / trivial)
        # the uncertainty is a depth std in metres: larger where the error is larger
        error = np.abs(rec.depth - scene.depth)
        wide = rec.uncertainty > np.median(rec.uncertainty)
        assert error[wide].mean() > error[~wide].mean(), name
    assert np.mean(ratios) < 0.7, ratios


def test_reconstruct_unet_through_the_cli(tmp_path) -> None:
    bank_path = tmp_path / "bank.npz"
    assert main(["psf", "--out", str(bank_path)]) == 0
    sim = tmp_path / "sim"
    assert main(["simulate", "--scene", "layered", "--psf", str(bank_path), "--noise", "0.01",
                 "--size", "96x72", "--out", str(sim)]) == 0
    out = tmp_path / "rec"
    assert main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path), "--method",
                 "unet", "--gt-depth", str(sim / "depth_gt.npy"), "--gt-aif",
                 str(sim / "aif_gt.png"), "--out", str(out)]) == 0
    for name in ("depth.npy", "uncertainty.npy", "aif.png", "points.ply", "figure.png"):
        assert (out / name).is_file(), name
    depth = np.load(out / "depth.npy", allow_pickle=False)
    assert depth.shape == (72, 96) and np.all((depth >= NEAR - 1e-4) & (depth <= FAR + 1e-4))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "unet" and metrics["steps"] == 0 and metrics["samples"] == 1
    assert np.isfinite(metrics["depth_absrel"]) and metrics["aif_psnr_db"] > 10


def test_unet_refuses_a_known_depth(tmp_path, capsys) -> None:
    bank_path = tmp_path / "bank.npz"
    main(["psf", "--out", str(bank_path)])
    sim = tmp_path / "sim"
    main(["simulate", "--scene", "slanted", "--psf", str(bank_path), "--noise", "0.01",
          "--size", "64x48", "--out", str(sim)])
    capsys.readouterr()
    code = main(["reconstruct", str(sim / "coded.png"), "--psf", str(bank_path), "--method",
                 "unet", "--known-depth", str(sim / "depth_gt.npy"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "needs method dfd-dps, not 'unet'" in err and "depth_gt.npy" in err


def test_eval_and_bag_eval_run_unet(tmp_path) -> None:
    from codedap_depth.bags.cli import cli_main
    from codedap_depth.evaluation import parse_methods, run_eval

    assert "unet" in METHODS
    bank = synthesize_bank(load_camera(share_file("config/camera.yaml")))
    rows = run_eval(bank, ("layered",), (64, 48), parse_methods("unet", 4), [0.01], [0], 1,
                    "cpu", tmp_path / "eval")
    assert [(r["method"], r["steps"]) for r in rows] == [("unet", 0)]
    assert np.isfinite(rows[0]["depth_absrel"]) and np.isfinite(rows[0]["uncertainty_spearman"])
    bag = tmp_path / "bag"
    assert cli_main(["make", "--out", str(bag), "--frames", "2", "--size", "64x48"]) == 0
    out = tmp_path / "bag_eval"
    assert cli_main(["eval", str(bag), "--out", str(out), "--method", "unet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == "unet" and report["frames"] == 2
    assert all(np.isfinite(r["depth_absrel"]) for r in report["rows"])


def test_other_banks_still_run_and_are_ignored(bank, unet) -> None:
    """camera_b (17 px PSFs, other focus and mask) and an 8-layer bank: the regressor takes the
    image alone, so the same frame gives the same answer whatever bank comes with it."""
    camera_b = synthesize_bank(load_camera(share_file("config/camera_b.yaml")))
    fewer = synthesize_bank(replace(load_camera(share_file("config/camera.yaml")), num_depths=8))
    assert (camera_b.size, fewer.num_depths) == (17, 8) != (bank.size, bank.num_depths)
    scene = load_scene("slanted", (NEAR, FAR), (80, 64))
    coded = simulate_capture(scene, camera_b, 0.01, seed=0)
    reference = unet(coded)
    for other in (camera_b, fewer):
        rec = Reconstructor(other, ReconstructionConfig(method="unet"))(coded)
        assert rec.depth.shape == (64, 80) and np.all(np.isfinite(rec.depth))
        np.testing.assert_array_equal(rec.depth, reference.depth)
        np.testing.assert_array_equal(rec.uncertainty, reference.uncertainty)


def _copy_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copy(WEIGHTS_DIR / name, folder / name)
    return folder


def test_bad_weights_files_fail_with_a_message_naming_the_file(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    missing = _copy_weights(tmp_path / "a")
    (missing / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=f"missing: .*{missing.name}/{WEIGHTS_FILE}"):
        load_network("cpu", missing)

    (tmp_path / "b").mkdir()
    truncated = _copy_weights(tmp_path / "b")
    data = (truncated / WEIGHTS_FILE).read_bytes()
    (truncated / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="unreadable") as err:
        load_network("cpu", truncated)
    assert str(truncated / WEIGHTS_FILE) in str(err.value)

    (tmp_path / "c").mkdir()
    shapes = _copy_weights(tmp_path / "c")  # weights of a narrower network, same config.json
    save_weights(tmp_path / "narrow", DepthUNet(UNetConfig(channels=(16, 32, 48, 64, 80))),
                 UNetConfig())
    shutil.copy(tmp_path / "narrow" / WEIGHTS_FILE, shapes / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="does not match config.json") as err:
        load_network("cpu", shapes)
    assert str(shapes / WEIGHTS_FILE) in str(err.value) and "other shapes" in str(err.value)

    (tmp_path / "d").mkdir()
    keys = _copy_weights(tmp_path / "d")  # one level fewer: missing names
    save_weights(tmp_path / "short", DepthUNet(UNetConfig(channels=(32, 64, 96, 128))),
                 UNetConfig())
    shutil.copy(tmp_path / "short" / WEIGHTS_FILE, keys / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="missing") as err:
        load_network("cpu", keys)
    assert str(keys / WEIGHTS_FILE) in str(err.value)

    (tmp_path / "e").mkdir()
    config = _copy_weights(tmp_path / "e")
    (config / CONFIG_FILE).write_text('{"channels": [32, 64], "bogus": 1}')
    with pytest.raises(ValueError, match="not a valid UNetConfig") as err:
        load_network("cpu", config)
    assert str(config / CONFIG_FILE) in str(err.value)
    (config / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        load_network("cpu", config)


def test_node_runs_unet_over_dds(ros, tmp_path) -> None:
    from ros_helpers import (
        MAX_DEPTH,
        MIN_DEPTH,
        WORK,
        Probe,
        coded_capture,
        rgb_frame,
        send_camera_info,
        start_node,
        stop_node,
        wait_until_matched,
        write_setup,
    )

    from codedap_depth.image_codec import decode_image

    files = write_setup(tmp_path, method="unet")
    proc = start_node(files, "/unet")
    try:
        probe = Probe(ros, "/unet", log_path=files["log"])
        wait_until_matched(probe, proc, files["log"])
        send_camera_info(probe)
        probe.publish(rgb_frame(coded_capture(files["raw"])), sec=7)
        out = probe.wait_outputs(7, timeout=60)
        msg = out["depth/image"]
        width, height = WORK
        assert (msg.encoding, msg.width, msg.height) == ("32FC1", width, height)
        depth = decode_image("32FC1", height, width, msg.step, msg.data, bool(msg.is_bigendian))
        valid = np.isfinite(depth)
        assert valid.any() and depth[valid].min() >= MIN_DEPTH and depth[valid].max() <= MAX_DEPTH
        assert "unet on cpu" in files["log"].read_text()
    finally:
        stop_node(proc, files)
