# SPDX-License-Identifier: Apache-2.0
"""Held-out RGB-D scenes: manifest rules, file checks, decoders, and the real data if fetched."""

import gzip
import hashlib
import json
import re
import struct

import numpy as np
import pytest
from helpers import REPO

from codedap_depth.heldout import (
    DECODERS,
    HELDOUT_SCENES,
    decode_mrpt_rangescan,
    decode_pcd,
    load_heldout_scene,
    load_manifest,
    lzf_decompress,
    register_depth,
    resolve_data_dir,
)
from codedap_depth.scenes import SCENES

RANGE = (0.5, 5.0)
MANIFEST = load_manifest()
NOT_FETCHED = "held-out data not fetched: run `python tools/fetch_heldout.py`"


def test_manifest_pins_every_file_and_says_what_the_depth_is():
    assert "never used to pick" in MANIFEST["rule"]
    assert [s["name"] for s in MANIFEST["scenes"]] == list(HELDOUT_SCENES)
    assert 3 <= len(HELDOUT_SCENES) <= 5 and not set(HELDOUT_SCENES) & set(SCENES)
    for scene in MANIFEST["scenes"]:
        assert scene["kind"] == "deb" and scene["package"] and scene["version"]
        assert scene["format"] in DECODERS
        assert set(scene["files"]) >= {"colour", "depth"}
        for spec in scene["files"].values():
            assert re.fullmatch(r"[0-9a-f]{64}", spec["sha256"]) and spec["bytes"] > 0
            assert not spec["path"].startswith("/") and ".." not in spec["path"]
        for key in ("depth_units", "sensor", "licence", "why_real_depth"):
            assert len(scene[key]) > 20, f"{scene['name']}: {key} says too little"
        assert "middlebury" not in json.dumps(scene).lower()
        assert scene["valid_fraction"] >= 0.5


def test_no_held_out_file_is_a_prior_training_photo():
    prior = json.loads((REPO / "codedap_depth" / "prior" / "manifest.json").read_text())
    prior_sha = {p["sha256"] for p in prior["photos"] + prior["dropped"]}
    ours = {spec["sha256"] for s in MANIFEST["scenes"] for spec in s["files"].values()}
    assert not ours & prior_sha
    prior_packages = {source["package"] for source in prior["sources"].values()}
    assert not {s["package"] for s in MANIFEST["scenes"]} & prior_packages


def test_manifest_installs_with_the_package():
    assert "heldout_manifest.json" in (REPO / "setup.py").read_text()


def test_missing_file_says_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python tools/fetch_heldout\.py"):
        load_heldout_scene(HELDOUT_SCENES[0], RANGE, (32, 24), data_dir=tmp_path)


def test_wrong_sha256_names_the_file(tmp_path):
    scene = MANIFEST["scenes"][0]
    path = tmp_path / scene["package"] / scene["files"]["colour"]["path"]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the pinned file")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*sha256"):
        load_heldout_scene(scene["name"], RANGE, (32, 24), data_dir=tmp_path)


def test_unknown_scene():
    with pytest.raises(ValueError, match="unknown held-out scene"):
        load_heldout_scene("motorcycle", RANGE, (32, 24))


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CODEDAP_HELDOUT_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"


def test_lzf_literals_and_overlapping_back_references():
    # literal "abc", then copy 6 bytes from 3 back (overlapping), then 9 + 7 bytes from 1 back
    stream = b"\x02abc" + bytes([4 << 5, 2]) + bytes([7 << 5, 7, 0])
    assert lzf_decompress(stream, 9 + 16) == b"abcabcabc" + b"c" * 16
    with pytest.raises(ValueError, match="corrupt"):
        lzf_decompress(stream, 30)
    with pytest.raises(ValueError, match="corrupt"):
        lzf_decompress(bytes([1 << 5, 5]), 3)


def _literal_lzf(raw: bytes) -> bytes:
    """An LZF stream of literal runs only (valid, not compressed)."""
    return b"".join(
        bytes([len(raw[i : i + 32]) - 1]) + raw[i : i + 32] for i in range(0, len(raw), 32)
    )


def test_pcd_decoder_reads_an_organized_cloud():
    height, width = 3, 4
    z = -np.linspace(0.5, 2.0, height * width, dtype="<f4")  # optical axis along -z
    z[5] = np.nan
    rgba = np.arange(height * width, dtype="<u4") * 0x010203
    raw = b"".join(a.tobytes() for a in (z * 0.1, z * 0.2, z, rgba))
    body = _literal_lzf(raw)
    header = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z rgba\nSIZE 4 4 4 4\nTYPE F F F U\n"
        f"COUNT 1 1 1 1\nWIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {height * width}\nDATA binary_compressed\n"
    ).encode()
    rgb, depth = decode_pcd(header + struct.pack("<II", len(body), len(raw)) + body)
    assert rgb.shape == (height, width, 3) and depth.shape == (height, width)
    np.testing.assert_allclose(depth.ravel(), np.nan_to_num(-z, nan=0.0))
    assert rgb.reshape(-1, 3)[7].tolist() == [7, 14, 21]


def _mrpt_object(name: str, version: int) -> bytes:
    return bytes([0x80 | len(name)]) + name.encode() + bytes([version])


def test_mrpt_decoder_reads_range_image_and_raw_colour():
    depth_mm = np.array([[0, 1000, 2000], [1500, 0, 2500]], "<u2")
    bgr = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    scan = (
        _mrpt_object("mrpt::obs::CObservation3DRangeScan", 9)
        + struct.pack("<f", 5.0)
        + _mrpt_object("mrpt::poses::CPose3D", 3)
        + bytes(96)
        + b"\x88"
        + struct.pack("<?I", True, 2)
        + bytes(2 * 16)  # two points: x, y, z float32 + column, row uint16
        + struct.pack("<?fII", True, 0.001, 2, 3)
        + depth_mm.tobytes()
        + struct.pack("<?", True)
        + _mrpt_object("mrpt::img::CImage", 9)
        + struct.pack("<??ii", False, True, -3, -2)
        + bgr.tobytes()
    )
    rgb, depth = decode_mrpt_rangescan(gzip.compress(scan))
    np.testing.assert_allclose(depth, depth_mm * 0.001, rtol=1e-6)
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    with pytest.raises(ValueError, match="expected mrpt::obs::CObservation3DRangeScan"):
        decode_mrpt_rangescan(gzip.compress(_mrpt_object("mrpt::obs::CObservation2D", 9)))


def test_registration_with_identical_cameras_is_the_identity():
    camera = {"fx": 50.0, "fy": 50.0, "cx": 15.5, "cy": 11.5, "inverse_brown_conrady": [0] * 5}
    depth = np.random.default_rng(0).uniform(0.5, 2.0, (24, 32)).astype(np.float32)
    depth[3, 4] = 0.0
    out = register_depth(depth, camera, camera, np.eye(4), depth.shape)
    np.testing.assert_allclose(out, depth, rtol=1e-6)


def test_registration_moves_a_plane_by_the_baseline_disparity():
    camera = {"fx": 100.0, "fy": 100.0, "cx": 31.5, "cy": 23.5, "inverse_brown_conrady": [0] * 5}
    depth = np.zeros((48, 64), np.float32)
    depth[:, 10:30] = 1.0
    depth_M_colour = np.eye(4)
    depth_M_colour[0, 3] = -0.05  # colour camera 5 cm to the left: points shift 5 px right
    out = register_depth(depth, camera, camera, depth_M_colour, depth.shape)
    assert np.flatnonzero(out[20] > 0).tolist() == list(range(15, 35))


def _real_data_present(scene: dict) -> bool:
    root = resolve_data_dir() / scene["package"]
    return all((root / spec["path"]).is_file() for spec in scene["files"].values())


@pytest.mark.parametrize("scene", MANIFEST["scenes"], ids=HELDOUT_SCENES)
def test_real_scene_loads_with_dense_depth_in_range(scene):
    if not _real_data_present(scene):
        pytest.skip(NOT_FETCHED)
    loaded = load_heldout_scene(scene["name"], RANGE, (320, 240))
    assert loaded.rgb.shape == (240, 320, 3) and loaded.depth.shape == (240, 320)
    assert loaded.rgb.dtype == np.float32 and 0 <= loaded.rgb.min() < loaded.rgb.max() <= 1
    finite = np.isfinite(loaded.depth)
    assert finite.mean() >= 0.5
    assert finite.mean() == pytest.approx(scene["valid_fraction"], abs=0.02)
    assert loaded.depth[finite].min() == pytest.approx(RANGE[0], rel=1e-3)
    assert loaded.depth[finite].max() == pytest.approx(RANGE[1], rel=1e-3)


def test_sha256_in_manifest_matches_the_fetched_bytes():
    present = [s for s in MANIFEST["scenes"] if _real_data_present(s)]
    if not present:
        pytest.skip(NOT_FETCHED)
    for scene in present:
        for spec in scene["files"].values():
            data = (resolve_data_dir() / scene["package"] / spec["path"]).read_bytes()
            assert len(data) == spec["bytes"]
            assert hashlib.sha256(data).hexdigest() == spec["sha256"]


def test_eval_runs_the_held_out_suite(tmp_path):
    """``codedap-depth eval --suite heldout`` scores every held-out scene like the dev ones,
    with the median relative error beside AbsRel."""
    if not all(_real_data_present(s) for s in MANIFEST["scenes"]):
        pytest.skip(NOT_FETCHED)
    from codedap_depth.cli import main

    assert main(["eval", "--suite", "heldout", "--methods", "classical", "--noise", "0.01",
                 "--seeds", "1", "--size", "64x48", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["scene"] for r in rows] == list(HELDOUT_SCENES)
    for row in rows:
        assert 0 <= row["depth_median_rel"] <= 2 * row["depth_absrel"]  # Markov
        assert np.isfinite(row["aif_psnr_db"])
    assert "median rel." in (tmp_path / "results.md").read_text()
