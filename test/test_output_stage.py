# SPDX-License-Identifier: Apache-2.0
"""The output stage (``outputs.frame_outputs``): what it computes, and that the node (over real
DDS) and ``bag eval`` (offline, rosbags) publish the same messages for the same frame."""

from __future__ import annotations

import math
import sys

import numpy as np
import yaml
from ros_helpers import RAW, write_setup
from rosbags.rosbag2 import Reader

from codedap_depth.names import OUTPUT_TOPICS
from codedap_depth.outputs import KEEP_ALL, OutputSettings, frame_outputs, working_intrinsics
from codedap_depth.pipeline import Reconstruction

K = np.array([[100.0, 0.0, 0.5], [0.0, 100.0, 0.5], [0.0, 0.0, 1.0]])
SETTINGS = OutputSettings(min_depth=0.5, max_depth=5.0, max_relative_uncertainty=0.25,
                          cloud_stride=1, cloud=True)


def reconstruction(depth, sigma, aif) -> Reconstruction:
    return Reconstruction(np.asarray(depth, np.float32), np.asarray(aif, np.float32),
                          np.asarray(sigma, np.float32), 0.0, 0.01, [])


def test_depth_range_uncertainty_filter_aif_and_cloud() -> None:
    nan = math.nan
    rec = reconstruction([[0.4, 1.0], [6.0, 2.0]], [[0.1, 0.2], [0.1, 1.0]],
                         np.full((2, 2, 3), 0.5))
    out = frame_outputs(rec, K, SETTINGS)
    np.testing.assert_array_equal(out.depth, [[nan, 1.0], [nan, 2.0]])  # outside 0.5..5: NaN
    np.testing.assert_array_equal(out.uncertainty, np.float32([[nan, 0.2], [nan, 1.0]]))
    assert out.depth.dtype == out.uncertainty.dtype == np.float32
    assert out.aif_encoding == "rgb8" and out.aif_pixels.dtype == np.uint8
    assert np.all(out.aif_pixels == 128) and out.size == (2, 2)
    # sigma/depth = 0.5 at (1, 1): above 0.25, so that point is dropped; (0, 1) is kept
    z = out.cloud.xyz[..., 2]
    np.testing.assert_array_equal(z, [[nan, 1.0], [nan, nan]])
    np.testing.assert_allclose(out.cloud.xyz[0, 1], [(1 - 0.5) / 100, (0 - 0.5) / 100, 1.0],
                               rtol=1e-6)
    np.testing.assert_array_equal(out.cloud.sigma, out.uncertainty)
    assert np.all(out.cloud.rgb == 128)


def test_no_intrinsics_or_no_cloud_and_mono() -> None:
    rec = reconstruction(np.ones((3, 4)), np.zeros((3, 4)), np.full((3, 4, 1), 1.0))
    assert frame_outputs(rec, None, SETTINGS).cloud is None
    off = OutputSettings(0.5, 5.0, 0.25, 1, cloud=False)
    assert frame_outputs(rec, K, off).cloud is None
    out = frame_outputs(rec, K, KEEP_ALL)
    assert out.aif_encoding == "mono8" and out.aif_pixels.shape == (3, 4)
    assert out.cloud.xyz.shape == (3, 4, 3) and np.all(out.cloud.rgb == 255)
    strided = frame_outputs(rec, K, OutputSettings(0.0, 10.0, 1.0, 2, True))
    assert strided.cloud.xyz.shape == (2, 2, 3)


def test_working_intrinsics_prefer_the_input_then_the_focal_length() -> None:
    K_input = np.array([[200.0, 0.0, 63.5], [0.0, 200.0, 47.5], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(working_intrinsics(K_input, 2, 50.0, 64, 48),
                               [[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    np.testing.assert_allclose(working_intrinsics(None, 2, 50.0, 64, 48),
                               [[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    assert working_intrinsics(None, 2, None, 64, 48) is None


def recorded(bag) -> dict[tuple[str, int], object]:
    """(topic, header stamp ns) -> the rclpy message, for the node's output topics."""
    from rclpy.serialization import deserialize_message

    from codedap_depth.bags.rosbag import TYPESTORE, stamp_ns
    from codedap_depth.ros.messages import message_class

    messages = {}
    with Reader(bag) as reader:
        wanted = [c for c in reader.connections
                  if c.topic.removeprefix("/camera/") in OUTPUT_TOPICS]
        for conn, _, raw in reader.messages(connections=wanted):
            stamp = stamp_ns(TYPESTORE.deserialize_cdr(raw, conn.msgtype))
            messages[(conn.topic, stamp)] = deserialize_message(bytes(raw),
                                                                message_class(conn.msgtype))
    return messages


def test_one_frame_through_the_node_and_bag_eval_gives_identical_outputs(tmp_path) -> None:
    """The same bag frames into the node (its own process, played over DDS, outputs recorded)
    and through ``bag eval``: every output message is identical, field by field (pixel and
    point data to the byte)."""
    import torch

    from codedap_depth.bags.demo_bag import make_demo_bag
    from codedap_depth.bags.evaluate import evaluate_bag
    from codedap_depth.optics import load_camera, save_bank, synthesize_bank
    from codedap_depth.parameters import output_settings, settings_of
    from codedap_depth.pipeline import ReconstructionConfig
    from codedap_depth.ros.session import run_node_session

    bank = tmp_path / "bank.npz"
    files = write_setup(tmp_path, psf_file=str(bank))
    save_bank(synthesize_bank(load_camera(files["work"])), bank)
    bag = tmp_path / "input"
    make_demo_bag(bag, storage="mcap", frames=2, size=RAW, hz=1.0,
                  camera=load_camera(files["raw"]))
    values = next(iter(yaml.safe_load(files["params"].read_text()).values()))["ros__parameters"]
    settings = settings_of(values)
    assert settings.min_depth > 0 and settings.max_relative_uncertainty < 1  # masking applies

    threads = torch.get_num_threads()
    torch.set_num_threads(settings.cpu_threads)  # as the node
    try:
        evaluate_bag(bag, tmp_path / "eval", ReconstructionConfig(method="classical"),
                     binning=settings.binning, psf_file=bank, outputs=output_settings(settings))
    finally:
        torch.set_num_threads(threads)
    command = [sys.executable, "-m", "codedap_depth.ros.node", "--params", str(files["params"]),
               "--ros-args", "-r", "__ns:=/camera"]
    session = run_node_session(bag, tmp_path / "node", command, files["log"],
                               namespace="/camera", progress=lambda text: None)
    assert session.node_returncode == 0

    offline, live = recorded(tmp_path / "eval" / "outputs"), recorded(tmp_path / "node")
    stamps = {stamp for _, stamp in live}
    assert stamps and stamps <= {stamp for _, stamp in offline}
    assert {topic for topic, _ in live} == {f"/camera/{t}" for t in OUTPUT_TOPICS}
    for key, data in live.items():
        assert offline[key] == data, key
    depth = next(k for k in live if k[0] == "/camera/depth/image")
    assert len(live[depth].data) == 64 * 48 * 4  # a real frame, not an empty message
    assert np.isnan(np.frombuffer(bytes(live[depth].data), np.float32)).any()  # masked
