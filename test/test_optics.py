# SPDX-License-Identifier: Apache-2.0
"""Optics: thin-lens blur, masks, PSF synthesis, bank format v1 validation."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, real_coded_file

from codedap_depth.optics import (
    BankFormatError,
    PSFBank,
    depth_discrimination,
    geometric_psf,
    load_bank,
    load_camera,
    make_mask,
    save_bank,
    synthesize_bank,
)

CAMERA = load_camera(REPO / "config" / "camera.yaml")


def measured_diameter(psf: np.ndarray) -> float:
    """Diameter of a uniform disk with the PSF's second moment (pixel box variance removed)."""
    size = psf.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    cy, cx = (psf * yy).sum(), (psf * xx).sum()
    r2 = (psf * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum() - 2 / 12
    return float(np.sqrt(8 * max(r2, 0.0)))


def test_default_camera_blur_grows_from_about_2_to_about_18_px():
    d = CAMERA.bank_depths()
    c = CAMERA.blur_diameter_px(d)
    assert np.all(np.diff(c) > 0)
    assert 1.5 <= c[0] <= 2.5 and 15 <= c[-1] <= 20
    assert d[0] == pytest.approx(CAMERA.near) and d[-1] == pytest.approx(CAMERA.far)
    assert np.allclose(np.diff(1 / d), np.diff(1 / d)[0])  # uniform in inverse depth


def test_geometric_psf_diameter_matches_thin_lens_within_half_pixel():
    camera = dataclasses.replace(CAMERA, mask="open", psf_size=25)
    bank = synthesize_bank(camera)
    expected = camera.blur_diameter_px(bank.depths.astype(np.float64))
    for k in range(bank.num_depths):
        assert abs(measured_diameter(bank.psfs[k, 0]) - expected[k]) < 0.5, k


def test_psfs_sum_to_one_and_are_point_flipped_across_focus():
    mask = make_mask("coded13")
    assert not np.array_equal(mask, mask[::-1, ::-1])  # asymmetric, so the flip is visible
    near = geometric_psf(mask, 11.0, 15, flipped=False)
    far = geometric_psf(mask, 11.0, 15, flipped=True)
    assert np.allclose(far, near[::-1, ::-1])
    assert not np.allclose(far, near)
    # a bank straddling the focus plane flips between its sides
    # inverse depths symmetric about focus (1/0.3 and 1/0.9 around 1/0.45): equal blur sizes
    straddle = dataclasses.replace(CAMERA, near=0.3, far=0.9, num_depths=5)
    bank = synthesize_bank(straddle)
    assert np.allclose(bank.psfs.sum(axis=(-1, -2)), 1, atol=1e-5)
    diameters = straddle.blur_diameter_px(bank.depths.astype(np.float64))
    assert diameters[0] == pytest.approx(diameters[-1], rel=1e-4) and diameters[0] > 9
    near_side, far_side = bank.psfs[0, 0], bank.psfs[-1, 0]
    corr_flip = np.corrcoef(near_side[::-1, ::-1].ravel(), far_side.ravel())[0, 1]
    corr_same = np.corrcoef(near_side.ravel(), far_side.ravel())[0, 1]
    assert corr_flip > 0.99 and corr_same < 0.8


def test_fourier_psfs_agree_with_geometric_at_large_defocus():
    camera = dataclasses.replace(CAMERA, num_depths=3, near=1.0, far=5.0)
    fourier = synthesize_bank(dataclasses.replace(camera, psf_model="fourier"))
    geometric = synthesize_bank(camera)
    assert fourier.psfs.shape == (3, 3, 21, 21) and fourier.wavelengths.shape == (3,)
    assert np.allclose(fourier.psfs.sum(axis=(-1, -2)), 1, atol=1e-5)
    for k in range(3):
        corr = np.corrcoef(fourier.psfs[k, 1].ravel(), geometric.psfs[k, 0].ravel())[0, 1]
        assert corr > 0.9


def test_coded_mask_discriminates_depth_better_than_open_aperture():
    diameters = np.linspace(2, 18, 9)
    coded = depth_discrimination(make_mask("coded13"), diameters)
    open_ = depth_discrimination(make_mask("open"), diameters)
    assert coded > 1.5 * open_


def test_mask_from_png(tmp_path: Path):
    from skimage.io import imsave

    png = tmp_path / "mask.png"
    image = np.zeros((9, 9), np.uint8)
    image[2:7, 1:4] = 255
    imsave(png, image, check_contrast=False)
    mask = make_mask(str(png))
    assert mask.shape == (9, 9) and mask.max() == 1.0 and mask.sum() == 15
    with pytest.raises(FileNotFoundError, match="nope.png"):
        make_mask(str(tmp_path / "nope.png"))


def test_bank_round_trip(tmp_path: Path):
    bank = synthesize_bank(CAMERA)
    path = tmp_path / "bank.npz"
    save_bank(bank, path)
    loaded = load_bank(path)
    assert np.array_equal(loaded.psfs, bank.psfs) and np.array_equal(loaded.depths, bank.depths)
    assert loaded.focal_length == CAMERA.focal_length and loaded.fx == pytest.approx(CAMERA.fx)


def _valid_arrays() -> dict:
    psfs = np.full((3, 1, 5, 5), 1 / 25, np.float32)
    return {"psfs": psfs, "depths": np.array([1.0, 2.0, 3.0], np.float32)}


def _bad(**changes):
    arrays = _valid_arrays()
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _negative() -> np.ndarray:
    psfs = _valid_arrays()["psfs"].copy()
    psfs[1, 0, 0, 0] = -0.01
    psfs[1, 0, 0, 1] += 0.01
    return psfs


def _nan() -> np.ndarray:
    psfs = _valid_arrays()["psfs"].copy()
    psfs[0, 0, 2, 2] = np.nan
    return psfs


@pytest.mark.parametrize(
    ("arrays", "rule"),
    [
        (_bad(psfs=None), "missing required key 'psfs'"),
        (_bad(depths=None), "missing required key 'depths'"),
        (_bad(psfs=np.full((3, 5, 5), 1 / 25, np.float32)), "rank 4"),
        (_bad(psfs=np.full((3, 2, 5, 5), 1 / 25, np.float32)), "channel count"),
        (_bad(psfs=np.full((3, 1, 4, 4), 1 / 16, np.float32)), "odd size"),
        (_bad(psfs=_nan()), "NaN or Inf"),
        (_bad(psfs=_negative()), "negative"),
        (_bad(psfs=np.full((3, 1, 5, 5), 1 / 20, np.float32)), "sum to 1"),
        (_bad(depths=np.array([1.0, 3.0, 2.0], np.float32)), "strictly increasing"),
        (_bad(depths=np.array([1.0, 2.0], np.float32)), "shape \\[3\\]"),
        (_bad(depths=np.array([-1.0, 2.0, 3.0], np.float32)), "finite and positive"),
        (
            _bad(psfs=np.full((1, 1, 5, 5), 1 / 25, np.float32), depths=np.ones(1, np.float32)),
            "at least 2 depth layers",
        ),
        (_bad(focal_length=np.array([0.01, 0.02])), "'focal_length' must be a positive"),
        (_bad(psfs=np.full((3, 1, 5, 5), 1, np.int32)), "float array"),
    ],
)
def test_every_bank_rule_rejects_with_file_and_rule(tmp_path: Path, arrays: dict, rule: str):
    path = tmp_path / "broken_bank.npz"
    np.savez(path, **arrays)
    with pytest.raises(BankFormatError, match=rule) as err:
        load_bank(path)
    assert str(path) in str(err.value)


def test_pickled_object_array_is_rejected(tmp_path: Path):
    path = tmp_path / "pickled.npz"
    arrays = _valid_arrays()
    arrays["psfs"] = np.array([arrays["psfs"], None], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(BankFormatError, match="pickled object arrays") as err:
        load_bank(path)
    assert str(path) in str(err.value)


def test_missing_and_garbage_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_bank(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(BankFormatError, match="garbage.npz: not an .npz"):
        load_bank(garbage)


def test_save_refuses_an_invalid_bank(tmp_path: Path):
    bad = PSFBank(psfs=np.ones((2, 1, 3, 3), np.float32), depths=np.array([1, 2], np.float32))
    with pytest.raises(BankFormatError, match="sum to 1"):
        save_bank(bad, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_real_calibrated_bank_loads():
    bank = load_bank(real_coded_file("psfs_29.npz"))
    assert bank.num_depths == 8 and bank.channels == 1 and bank.size == 11
    assert np.all(np.diff(bank.depths) > 0)


def test_camera_file_errors_name_the_file(tmp_path: Path):
    bad = tmp_path / "cam.yaml"
    bad.write_text("focal_length: 0.016\nwhat: 1\n")
    with pytest.raises(ValueError, match="cam.yaml.*unknown camera keys"):
        load_camera(bad)
    bad.write_text((REPO / "config" / "camera.yaml").read_text().replace("far: 5.0", "far: 0.1"))
    with pytest.raises(ValueError, match="cam.yaml.*near"):
        load_camera(bad)
