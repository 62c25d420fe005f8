# SPDX-License-Identifier: Apache-2.0
"""Scenes (real geometry and texture), simulation, metrics."""

import numpy as np
import pytest
from helpers import REPO

from codedap_depth.metrics import depth_metrics, psnr, ssim, uncertainty_calibration
from codedap_depth.optics import load_camera, synthesize_bank
from codedap_depth.scenes import OPENCV_DATA, fill_unknown, load_scene, scene_from_files
from codedap_depth.simulate import simulate_capture

RANGE = (0.5, 5.0)


def test_motorcycle_keeps_invalid_pixels_nan_and_maps_inverse_depth_to_range():
    scene = load_scene("motorcycle", RANGE, (160, 120))
    assert scene.rgb.shape == (120, 160, 3) and scene.depth.shape == (120, 160)
    assert 0 <= scene.rgb.min() and scene.rgb.max() <= 1
    finite = np.isfinite(scene.depth)
    assert 0.005 < (~finite).mean() < 0.3  # Middlebury's occluded/unknown pixels stay NaN
    assert scene.depth[finite].min() == pytest.approx(0.5, rel=1e-3)
    assert scene.depth[finite].max() == pytest.approx(5.0, rel=1e-3)


def test_aloe_scene_or_a_message_on_how_to_get_it():
    if not (OPENCV_DATA / "aloeGT.png").is_file():
        with pytest.raises(FileNotFoundError, match="opencv-doc"):
            load_scene("aloe", RANGE, (64, 48))
        pytest.skip("Debian opencv-doc not installed: checked the error message instead")
    scene = load_scene("aloe", RANGE, (128, 96))
    finite = np.isfinite(scene.depth)
    assert 0.0 < (~finite).mean() < 0.3 and scene.depth[finite].min() >= 0.5 - 1e-4


@pytest.mark.parametrize("name", ["layered", "slanted"])
def test_photo_textured_scenes(name):
    scene = load_scene(name, (0.8, 4.0), (96, 72))
    assert np.isfinite(scene.depth).all()
    assert scene.depth.min() == pytest.approx(0.8, rel=1e-3)
    assert scene.depth.max() == pytest.approx(4.0, rel=1e-3)
    assert scene.rgb.std() > 0.05  # real texture, not flat


def test_unknown_scene_and_bad_range():
    with pytest.raises(ValueError, match="unknown scene"):
        load_scene("kitchen", RANGE, (32, 32))
    with pytest.raises(ValueError, match="near < far"):
        load_scene("layered", (3.0, 1.0), (32, 32))


def test_scene_from_files_validates(tmp_path):
    from codedap_depth.imageio import write_png8

    write_png8(tmp_path / "rgb.png", np.random.default_rng(0).random((40, 50, 3)))
    np.save(tmp_path / "depth.npy", np.full((40, 50), 2.0, np.float32))
    scene = scene_from_files(tmp_path / "rgb.png", tmp_path / "depth.npy", (25, 20))
    assert scene.rgb.shape == (20, 25, 3) and np.allclose(scene.depth, 2.0)
    np.save(tmp_path / "bad.npy", np.full((40, 49), 2.0, np.float32))
    with pytest.raises(ValueError, match="bad.npy"):
        scene_from_files(tmp_path / "rgb.png", tmp_path / "bad.npy", (25, 20))


def test_fill_unknown_uses_nearest_known_value():
    depth = np.array([[1.0, np.nan, np.nan, 3.0]], np.float32)
    assert np.array_equal(fill_unknown(depth), [[1.0, 1.0, 3.0, 3.0]])


def test_simulated_capture_is_blurred_noisy_and_quantised():
    camera = load_camera(REPO / "config" / "camera.yaml")
    bank = synthesize_bank(camera)
    scene = load_scene("layered", (0.5, 5.0), (96, 72))
    coded = simulate_capture(scene, bank, 0.01, seed=1)
    assert coded.shape == (72, 96, 3) and coded.dtype == np.float32
    assert np.allclose(coded * 65535, np.round(coded * 65535), atol=1e-2)
    assert psnr(coded, scene.rgb) < 25  # visibly blurred
    again = simulate_capture(scene, bank, 0.01, seed=1)
    assert np.array_equal(coded, again)


def test_depth_metrics_on_known_errors():
    gt = np.array([[1.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1.1, 2.0], [2.0, 7.0]])
    m = depth_metrics(pred, gt)
    assert m.absrel == pytest.approx((0.1 + 0 + 0.5) / 3)
    assert m.mae_m == pytest.approx((0.1 + 0 + 2.0) / 3)
    assert m.rmse_m == pytest.approx(np.sqrt((0.01 + 0 + 4.0) / 3))
    assert m.delta1 == pytest.approx(2 / 3) and m.coverage == 1.0
    missing = depth_metrics(np.array([[np.nan, 2.0], [4.0, 1.0]]), gt)
    assert missing.coverage == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no finite"):
        depth_metrics(pred, np.full((2, 2), np.nan))


def test_uncertainty_calibration_on_known_errors():
    gt = np.ones((4, 5))
    pred = gt + np.linspace(-1, 1, 20).reshape(4, 5) ** 3  # errors of all sizes
    error = np.abs(pred - gt)
    tracking = uncertainty_calibration(pred, error, gt)  # std = |error|: rank 1, all inside
    assert tracking.spearman == pytest.approx(1.0) and tracking.within_2std == 1.0
    half = uncertainty_calibration(pred, np.where(error > np.median(error), 0.0, error), gt)
    assert half.within_2std == pytest.approx(0.5)  # the larger errors are outside 0 std
    assert np.isnan(uncertainty_calibration(pred, np.zeros_like(gt), gt).spearman)
    with pytest.raises(ValueError, match="shapes differ"):
        uncertainty_calibration(pred, error[:2], gt)
    with pytest.raises(ValueError, match="no finite pixel"):
        uncertainty_calibration(pred, error, np.full_like(gt, np.nan))
    unscored = uncertainty_calibration(np.full_like(gt, np.nan), error, gt)  # as depth_metrics
    assert np.isnan(unscored.spearman) and np.isnan(unscored.within_2std)


def test_image_metrics():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    assert psnr(image, image) == float("inf")
    noisy = np.clip(image + 0.1 * rng.standard_normal(image.shape), 0, 1)
    assert 18 < psnr(noisy, image) < 22
    assert ssim(image, image) == pytest.approx(1.0)
    slightly = np.clip(image + 0.02 * rng.standard_normal(image.shape), 0, 1)
    assert ssim(noisy, image) < ssim(slightly, image) < 1.0
