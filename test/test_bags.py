# SPDX-License-Identifier: Apache-2.0
"""``bag make`` -> ``bag eval`` round trip, sqlite3 and MCAP (rosbags; no ROS needed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from codedap_depth.bags.cli import cli_main
from codedap_depth.bags.rosbag import (
    TYPESTORE,
    bag_custom_data,
    decode_image_msg,
    read_frames,
    read_messages,
    stamp_ns,
)
from codedap_depth.names import OUTPUT_TOPICS
from codedap_depth.optics import camera_for_size, camera_from_yaml

SIZE = (64, 48)
FRAMES = 4
METRIC_KEYS = {"scene", "method", "noise_sigma", "steps", "samples", "depth_absrel",
               "depth_rmse_m", "depth_mae_m", "delta1", "aif_psnr_db", "aif_ssim", "seconds",
               "device"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small frames run far faster on one thread; restore the setting for other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def made(request, tmp_path_factory) -> tuple[str, Path]:
    bag = tmp_path_factory.mktemp(request.param) / "demo_bag"
    assert cli_main(["make", "--out", str(bag), "--storage", request.param, "--frames",
                     str(FRAMES), "--size", f"{SIZE[0]}x{SIZE[1]}", "--noise", "0.01"]) == 0
    return request.param, bag


def test_make_writes_the_documented_layout(made) -> None:
    storage, bag = made
    assert list(bag.glob("*.mcap" if storage == "mcap" else "*.db3"))
    with Reader(bag) as reader:
        topics = {t: (i.msgtype, i.msgcount) for t, i in reader.topics.items()}
        assert topics == {
            "/camera/image_raw": ("sensor_msgs/msg/Image", FRAMES),
            "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", FRAMES),
            "/camera/depth_gt": ("sensor_msgs/msg/Image", FRAMES),
            "/camera/aif_gt": ("sensor_msgs/msg/Image", FRAMES),
        }
        stamps: dict[str, list[int]] = {}
        for conn, log_time, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            assert stamp_ns(msg) == log_time and msg.header.frame_id == "camera_optical_frame"
            stamps.setdefault(conn.topic, []).append(stamp_ns(msg))
            if conn.topic == "/camera/image_raw":
                assert (msg.encoding, msg.width, msg.height) == ("rgb8", *SIZE)
            if conn.topic == "/camera/depth_gt":
                depth = decode_image_msg(msg)
                assert msg.encoding == "32FC1" and depth.shape == SIZE[::-1]
                finite = depth[np.isfinite(depth)]
                assert finite.size and finite.min() >= 0.5 - 1e-4 and finite.max() <= 5.0 + 1e-3
    assert len({tuple(s) for s in stamps.values()}) == 1, "all topics share the frame stamps"
    assert np.all(np.diff(stamps["/camera/image_raw"]) == 200_000_000)  # 5 Hz
    custom = bag_custom_data(bag)
    camera = camera_from_yaml(custom["codedap_depth.camera"], "bag")
    assert (camera.width, camera.height) == SIZE
    assert json.loads(custom["codedap_depth.scenes"]) == ["motorcycle"] * 2 + ["layered"] * 2


def test_consecutive_frames_pan_across_the_scene(made) -> None:
    frames = list(read_frames(made[1]))
    assert [f.index for f in frames] == list(range(FRAMES))
    first, second = frames[0].depth_gt, frames[1].depth_gt
    # the crop window slides 3 px: frame 1 column x is frame 0 column x + 3
    np.testing.assert_array_equal(second[:, :-3], first[:, 3:])
    assert not np.array_equal(frames[0].pixels, frames[1].pixels)
    assert frames[0].K is not None and frames[0].K[0, 2] == pytest.approx((SIZE[0] - 1) / 2)


def test_eval_round_trip_metrics_and_outputs(made, tmp_path) -> None:
    from codedap_depth.metrics import depth_metrics
    from codedap_depth.optics import load_camera, synthesize_bank
    from codedap_depth.outputs import frame_outputs
    from codedap_depth.parameters import NodeSettings, output_settings
    from codedap_depth.paths import share_file
    from codedap_depth.pipeline import ReconstructionConfig, Reconstructor

    storage, bag = made
    out = tmp_path / "eval"
    assert cli_main(["eval", str(bag), "--out", str(out), "--method", "classical"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["frames"] == FRAMES and report["method"] == "classical"
    rows = report["rows"]
    assert [r["scene"] for r in rows] == ["motorcycle"] * 2 + ["layered"] * 2
    for row in rows:
        assert METRIC_KEYS <= set(row)
        assert row["noise_sigma"] == 0.01 and row["device"] == "cpu"
        assert 0 < row["depth_absrel"] < 5 and 0 <= row["delta1"] <= 1
        assert row["aif_psnr_db"] > 10 and row["coverage"] > 0
    assert report["mean"]["depth_rmse_m"] == pytest.approx(
        np.mean([r["depth_rmse_m"] for r in rows]))
    assert (out / "figure.png").stat().st_size > 10_000

    # independent check of frame 0: reconstruct it directly, apply the node's output stage with
    # its defaults (config/params.yaml) and score against the bag's GT
    frame = next(iter(read_frames(bag)))
    camera = camera_for_size(load_camera(share_file("config/camera.yaml")), *SIZE)
    result = frame_outputs(
        Reconstructor(synthesize_bank(camera), ReconstructionConfig(method="classical"))(
            frame.pixels.astype(np.float32) / 255), None, output_settings(NodeSettings()))
    expected = depth_metrics(result.depth, frame.depth_gt)
    assert rows[0]["depth_absrel"] == pytest.approx(expected.absrel, rel=1e-5)

    # the output bag carries the node's topics with the input stamps
    output = out / "outputs"
    assert list(output.glob("*.mcap" if storage == "mcap" else "*.db3"))
    with Reader(output) as reader:
        counts = Counter(conn.topic for conn, _, _ in reader.messages())
    assert counts == {f"/camera/{t}": FRAMES for t in OUTPUT_TOPICS}
    depths = list(read_frames(output, "/camera/depth/image"))
    assert [d.stamp_ns for d in depths] == [f.stamp_ns for f in read_frames(bag)]
    assert depths[0].encoding == "32FC1" and not np.any(depths[0].pixels == 0)
    np.testing.assert_allclose(depths[0].pixels, result.depth, rtol=1e-6)
    _, cloud = next(read_messages(output, "/camera/points"))
    assert (cloud.point_step, cloud.height, cloud.width) == (32, SIZE[1], SIZE[0])
    assert [(f.name, f.offset) for f in cloud.fields][:4] == [("x", 0), ("y", 4), ("z", 8),
                                                              ("rgb", 16)]
    _, aif = next(read_messages(output, "/camera/aif/image"))
    assert aif.encoding == "rgb8"


def test_eval_errors_are_reported_not_raised(tmp_path, made, capsys) -> None:
    assert cli_main(["eval", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert cli_main(["eval", str(made[1]), "--out", str(tmp_path / "o2"), "--method",
                     "classical", "--topic", "/camera/depth"]) == 2
    assert "no Image or CompressedImage topic '/camera/depth'" in capsys.readouterr().err
    assert cli_main(["eval", str(made[1]), "--out", str(tmp_path / "o3"), "--method",
                     "classical", "--binning", "3"]) == 2
    assert "smaller than the 21 px PSF" in capsys.readouterr().err  # 21x16 px after binning
    assert cli_main(["make", "--out", str(made[1])]) == 2  # exists: never overwritten


def test_compressed_bags_read_like_raw_ones(made, tmp_path) -> None:
    """``bag make --compressed`` writes PNG CompressedImage frames (image_transport layout);
    ``read_frames`` and ``bag eval`` read them with the same pixels as the raw bag."""
    storage, raw_bag = made
    bag = tmp_path / "compressed"
    assert cli_main(["make", "--out", str(bag), "--storage", storage, "--frames", str(FRAMES),
                     "--size", f"{SIZE[0]}x{SIZE[1]}", "--noise", "0.01", "--compressed"]) == 0
    with Reader(bag) as reader:
        assert reader.topics["/camera/image_raw/compressed"].msgtype == \
            "sensor_msgs/msg/CompressedImage"
        assert "/camera/image_raw" not in reader.topics
    frames, raw = list(read_frames(bag)), list(read_frames(raw_bag))
    assert [f.stamp_ns for f in frames] == [f.stamp_ns for f in raw]
    for frame, reference in zip(frames, raw, strict=True):
        assert frame.encoding == "rgb8" and frame.K is not None and frame.depth_gt is not None
        np.testing.assert_array_equal(frame.pixels, reference.pixels)
    _, msg = next(read_messages(bag, "/camera/image_raw/compressed"))
    assert msg.format == "rgb8; png compressed rgb8"
    out = tmp_path / "eval"
    assert cli_main(["eval", str(bag), "--out", str(out), "--method", "classical",
                     "--max-frames", "1"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["frames"] == 1 and 0 < report["rows"][0]["depth_absrel"] < 5
