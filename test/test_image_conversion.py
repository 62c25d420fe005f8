# SPDX-License-Identifier: Apache-2.0
"""image_codec (pure numpy) and its sensor_msgs wrapper: cv_bridge semantics, errors, binning."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from codedap_depth.image_codec import (
    ENCODINGS,
    bin_image,
    bin_intrinsics,
    decode_image,
    encode_image,
    float_to_image,
    image_to_float,
)


def random_image(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    kind, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if kind == "f4":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(np.dtype(kind)).max + 1, size=shape).astype(kind)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("bigendian", [False, True])
def test_round_trip_every_encoding(encoding: str, bigendian: bool) -> None:
    image = random_image(encoding)
    payload = encode_image(image, encoding, bigendian=bigendian)
    kind, channels = ENCODINGS[encoding]
    assert payload.step == image.shape[1] * channels * np.dtype(kind).itemsize
    assert len(payload.data) == payload.step * payload.height
    decoded = decode_image(payload.encoding, payload.height, payload.width, payload.step,
                           payload.data, payload.is_bigendian)
    assert decoded.dtype == image.dtype and decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, image)
    assert decoded.flags.writeable


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "rgb8", "bgra8", "32FC1"])
def test_padded_rows_are_ignored(encoding: str) -> None:
    image = random_image(encoding, seed=3)
    tight = encode_image(image, encoding)
    padded = encode_image(image, encoding, step=tight.step + 7)
    rows = np.frombuffer(padded.data, np.uint8).reshape(padded.height, padded.step)
    assert np.all(rows[:, tight.step:] == 0)
    garbage = rows.copy()
    garbage[:, tight.step:] = 0xAB
    decoded = decode_image(encoding, padded.height, padded.width, padded.step, garbage.tobytes())
    np.testing.assert_array_equal(decoded, image)


def test_bigendian_mono16_reads_most_significant_byte_first() -> None:
    data = bytes([0x12, 0x34, 0x00, 0x01, 0xFF, 0xFE, 0, 0])  # 3 pixels + 2 bytes padding
    assert decode_image("mono16", 1, 3, 8, data, is_bigendian=True).tolist() == [
        [0x1234, 0x0001, 0xFFFE]
    ]
    assert decode_image("mono16", 1, 3, 8, data, is_bigendian=False).tolist() == [
        [0x3412, 0x0100, 0xFEFF]
    ]


def test_float_bytes_match_ieee754() -> None:
    payload = encode_image(np.array([[1.5, -2.0]], np.float32), "32FC1", bigendian=True)
    assert payload.data == struct.pack(">ff", 1.5, -2.0)
    assert payload.is_bigendian


def test_colour_orders_map_to_rgb() -> None:
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    bgr = rgb[..., ::-1].copy()
    bgra = np.concatenate([bgr, [[[99]]]], axis=-1).astype(np.uint8)
    expected = rgb.astype(np.float32) / 255
    for array, encoding in ((rgb, "rgb8"), (bgr, "bgr8"), (bgra, "bgra8")):
        np.testing.assert_allclose(image_to_float(array, encoding), expected)
    assert float_to_image(expected, "bgr8").tolist() == bgr.tolist()
    assert float_to_image(expected, "bgra8")[0, 0].tolist() == [30, 20, 10, 255]
    assert image_to_float(np.array([[65535, 0]], np.uint16), "mono16").tolist() == [[1.0, 0.0]]


def test_float_intensity_round_trip_within_a_level() -> None:
    values = np.random.default_rng(1).random((4, 6, 3), dtype=np.float32)
    for encoding in ("rgb8", "bgr8", "rgba8"):
        back = image_to_float(float_to_image(values, encoding), encoding)
        assert np.max(np.abs(back - values)) <= 0.5 / 255 + 1e-6
    mono = values.mean(axis=-1)
    back16 = image_to_float(float_to_image(mono, "mono16"), "mono16")
    assert np.max(np.abs(back16 - mono)) <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoding": "nv21"}, "unsupported image encoding 'nv21'"),
        ({"encoding": "8UC4"}, "supported: mono8"),
        ({"data": bytes(4 * 6 * 3 - 1)}, "truncated"),
        ({"data": bytes(4 * 6 * 3 + 6)}, "step is probably wrong"),
        ({"step": 6, "data": bytes(24)}, "step 6 is smaller than width"),
        ({"height": 0, "data": b""}, "empty image"),
        ({"width": 0, "step": 0, "data": b""}, "empty image"),
    ],
)
def test_decode_errors_say_what_is_wrong(kwargs: dict, message: str) -> None:
    fields = {"encoding": "rgb8", "height": 4, "width": 6, "step": 18, "data": bytes(72)}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        decode_image(**fields)


def test_encode_errors() -> None:
    with pytest.raises(ValueError, match="needs dtype uint8"):
        encode_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ValueError, match="3 channel"):
        encode_image(np.zeros((2, 2), np.uint8), "bgr8")
    with pytest.raises(ValueError, match="empty"):
        encode_image(np.zeros((0, 2), np.float32), "32FC1")
    with pytest.raises(ValueError, match="smaller than a row"):
        encode_image(np.zeros((2, 2), np.uint16), "mono16", step=3)
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(np.zeros((2, 2), np.uint8), "nv21")


def test_nan_and_inf_in_float_images_are_rejected() -> None:
    image = np.full((3, 3), 0.5, np.float32)
    image[1, 1] = np.nan
    image[0, 2] = np.inf
    with pytest.raises(ValueError, match="2 NaN/Inf"):
        image_to_float(image, "32FC1")


def test_binning_and_intrinsics_agree_on_pixel_centres() -> None:
    height, width, factor = 12, 18, 3
    u = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
    binned = bin_image(u, factor)
    assert binned.shape == (height // factor, width // factor)
    # The binned pixel u' holds the mean input coordinate, which must be where K' puts it.
    K = np.array([[80.0, 0.0, 8.3], [0.0, 81.0, 5.9], [0.0, 0.0, 1.0]])
    Kb = bin_intrinsics(K, factor)
    rng = np.random.default_rng(0)
    for x, y, z in rng.uniform([-1, -1, 0.5], [1, 1, 5], size=(20, 3)):
        u_in, v_in = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        u_out, v_out = Kb[0, 0] * x / z + Kb[0, 2], Kb[1, 1] * y / z + Kb[1, 2]
        assert u_out == pytest.approx((u_in - (factor - 1) / 2) / factor)
        assert v_out == pytest.approx((v_in - (factor - 1) / 2) / factor)
    np.testing.assert_allclose(binned[0], (np.arange(width // factor) * factor + 1.0))


def test_binning_averages_blocks_and_drops_the_remainder() -> None:
    image = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    binned = bin_image(image, 2)
    assert binned.shape == (2, 3, 3)
    np.testing.assert_allclose(binned[1, 2], image[2:4, 4:6].mean(axis=(0, 1)))
    with pytest.raises(ValueError, match="smaller than one 8x8 bin"):
        bin_image(image, 8)


# --- the sensor_msgs wrapper -------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_imgmsg_round_trip(encoding: str) -> None:
    from std_msgs.msg import Header

    from codedap_depth.ros.image_conversion import array_to_imgmsg, imgmsg_to_array

    image = random_image(encoding, height=3, width=4, seed=7)
    header = Header(frame_id="cam_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = array_to_imgmsg(image, encoding, header, step=64)
    assert (msg.encoding, msg.height, msg.width, msg.step) == (encoding, 3, 4, 64)
    assert len(msg.data) == 3 * 64
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.nanosec == 345
    np.testing.assert_array_equal(imgmsg_to_array(msg), image)


def test_imgmsg_bigendian_and_errors() -> None:
    from sensor_msgs.msg import Image

    from codedap_depth.ros.image_conversion import array_to_imgmsg, imgmsg_to_array

    image = np.array([[1, 258, 65535]], np.uint16)
    msg = array_to_imgmsg(image, "mono16", bigendian=True)
    assert msg.is_bigendian == 1 and bytes(msg.data[:2]) == b"\x00\x01"
    np.testing.assert_array_equal(imgmsg_to_array(msg), image)
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="truncated"):
        imgmsg_to_array(msg)
    with pytest.raises(ValueError, match="empty image"):
        imgmsg_to_array(Image(encoding="rgb8"))


def test_binning_can_skip_unknown_pixels() -> None:
    depth = np.array([[1.0, np.nan, 2.0, 2.0], [3.0, np.nan, 4.0, 2.0]], np.float32)
    assert np.isnan(bin_image(depth, 2)[0, 0])
    np.testing.assert_allclose(bin_image(depth, 2, skip_nan=True), [[2.0, 2.5]])
    assert np.isnan(bin_image(np.full((2, 2), np.nan, np.float32), 2, skip_nan=True)).all()
