# SPDX-License-Identifier: Apache-2.0
"""Raw camera encodings with cv_bridge/OpenCV semantics, checked against known pixel values:
Bayer demosaicing (8/16 bit, four patterns, pattern override), YUV 4:2:2, the integer and 16-bit
colour encodings, out-of-range float input and CompressedImage (PNG/JPEG) payloads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import mosaic, to_yuv422

from codedap_depth.image_codec import (
    BAYER_PATTERNS,
    bayer_pattern_of,
    decode_compressed,
    demosaic_bilinear,
    image_to_float,
    yuv422_to_rgb,
)


def test_demosaic_rggb_by_hand() -> None:
    """A 4x4 RGGB mosaic; every interior value worked out from OpenCV's bilinear rules."""
    raw = np.array([[10, 200, 30, 45],
                    [77, 60, 9, 80],
                    [90, 13, 110, 250],
                    [131, 140, 7, 160]], np.uint8)
    rgb = demosaic_bilinear(raw, "rggb").astype(int)
    # (1, 1) is a blue site: G from the 4 edge neighbours, R from the 4 diagonals
    assert rgb[1, 1].tolist() == [(10 + 30 + 90 + 110 + 2) >> 2, (200 + 13 + 77 + 9 + 2) >> 2,
                                  60]
    # (1, 2) is green in a G-B row: B from the row, R from the column
    assert rgb[1, 2].tolist() == [(30 + 110 + 1) >> 1, 9, (60 + 80 + 1) >> 1]
    # (2, 1) is green in an R-G row: R from the row, B from the column
    assert rgb[2, 1].tolist() == [(90 + 110 + 1) >> 1, 13, (60 + 140 + 1) >> 1]
    # (2, 2) is a red site
    assert rgb[2, 2].tolist() == [110, (9 + 7 + 13 + 250 + 2) >> 2,
                                  (60 + 80 + 140 + 160 + 2) >> 2]
    # the border copies its inner neighbour, as OpenCV does
    np.testing.assert_array_equal(rgb[0], rgb[1])
    np.testing.assert_array_equal(rgb[:, 0], rgb[:, 1])
    np.testing.assert_array_equal(rgb[3, 3], rgb[2, 2])


def test_demosaic_rounds_like_opencv() -> None:
    """Halves round up: (1 + 2 + 1) >> 1 = 2 for a pair, (a+b+c+d+2) >> 2 for four."""
    raw = np.array([[0, 1, 0], [2, 0, 3], [0, 0, 0]], np.uint8)  # GRBG: centre is green
    assert demosaic_bilinear(raw, "grbg")[1, 1].tolist() == [(1 + 0 + 1) >> 1, 0,
                                                              (2 + 3 + 1) >> 1]


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_pattern_recovers_flat_colour_and_linear_ramps(pattern: str, dtype) -> None:
    full = np.iinfo(dtype).max
    flat = np.empty((6, 8, 3), dtype)
    flat[...] = np.array([0.8, 0.3, 0.1]) * full // 1
    np.testing.assert_array_equal(demosaic_bilinear(mosaic(flat, pattern), pattern), flat)
    # a ramp in x and y (even steps) is reproduced exactly away from the border
    y, x = np.mgrid[0:8, 0:10]
    ramp = np.stack([4 * x + 2 * y, 100 + 2 * x, 200 - 4 * y], axis=-1).astype(dtype)
    out = demosaic_bilinear(mosaic(ramp, pattern), pattern)
    np.testing.assert_array_equal(out[1:-1, 1:-1], ramp[1:-1, 1:-1])


def test_bayer_encodings_demosaic_in_image_to_float() -> None:
    rgb = np.zeros((4, 6, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32768, 0
    for pattern in BAYER_PATTERNS:
        values = image_to_float(mosaic(rgb, pattern), f"bayer_{pattern}16")
        np.testing.assert_allclose(values, np.broadcast_to([1.0, 32768 / 65535, 0.0], (4, 6, 3)),
                                   rtol=1e-6)
    eight = image_to_float(mosaic(np.full((4, 4, 3), [255, 0, 51], np.uint8), "gbrg"),
                           "bayer_gbrg8")
    np.testing.assert_allclose(eight[2, 2], [1.0, 0.0, 0.2], rtol=1e-6)


def test_bayer_pattern_override_for_mislabelled_drivers() -> None:
    scene = np.full((4, 4, 3), [200, 100, 20], np.uint8)
    raw = mosaic(scene, "grbg")
    wrong = image_to_float(raw, "bayer_rggb8")  # the driver says rggb, the sensor is grbg
    assert not np.allclose(wrong[2, 2], [200 / 255, 100 / 255, 20 / 255])
    for label in ("bayer_rggb8", "mono8", "8UC1"):
        fixed = image_to_float(raw, label, bayer_pattern="grbg")
        np.testing.assert_allclose(fixed[2, 2], [200 / 255, 100 / 255, 20 / 255], rtol=1e-6)
    assert bayer_pattern_of("bayer_bggr16") == "bggr" and bayer_pattern_of("mono8") is None
    with pytest.raises(ValueError, match="not a raw mosaic"):
        image_to_float(np.zeros((4, 4, 3), np.uint8), "rgb8", bayer_pattern="rggb")
    with pytest.raises(ValueError, match="must be one of"):
        bayer_pattern_of("bayer_rggb8", "rgbg")
    with pytest.raises(ValueError, match="too small"):
        demosaic_bilinear(np.zeros((2, 8), np.uint8), "rggb")


def bt601(y: int, u: int, v: int) -> list[int]:
    """The BT.601 limited-range formula in floating point (rounded, clipped)."""
    c, d, e = max(y - 16, 0), u - 128, v - 128
    rgb = [1.164 * c + 1.596 * e, 1.164 * c - 0.391 * d - 0.813 * e, 1.164 * c + 2.018 * d]
    return [int(np.clip(np.floor(x + 0.5), 0, 255)) for x in rgb]


def test_yuv422_layouts_and_known_colours() -> None:
    # two pixels sharing chroma (U, V) = (90, 240) -- BT.601 red -- with lumas 81 and 145
    uyvy = np.array([[[90, 81], [240, 145]]], np.uint8)  # U0 Y0 V0 Y1
    yuyv = np.array([[[81, 90], [145, 240]]], np.uint8)  # Y0 U0 Y1 V0
    expected = [bt601(81, 90, 240), bt601(145, 90, 240)]
    for pixels, encoding in ((uyvy, "yuv422"), (yuyv, "yuv422_yuy2")):
        rgb = yuv422_to_rgb(pixels, encoding).astype(int)
        assert np.abs(rgb[0] - np.array(expected)).max() <= 1, (encoding, rgb, expected)
    assert yuv422_to_rgb(uyvy, "yuv422")[0, 0].tolist() == [254, 0, 0]  # fixed point, exact
    grey = np.array([[[128, 16], [128, 235], [128, 126], [128, 5]]], np.uint8)
    assert yuv422_to_rgb(grey, "yuv422")[0].tolist() == [[0] * 3, [255] * 3, [128] * 3, [0] * 3]
    values = image_to_float(yuyv, "yuv422_yuy2")
    assert values.shape == (1, 2, 3) and values.dtype == np.float32
    with pytest.raises(ValueError, match="even width"):
        yuv422_to_rgb(np.zeros((2, 3, 2), np.uint8), "yuv422")


def test_yuv422_round_trip_of_a_colour_image() -> None:
    rgb = np.random.default_rng(2).integers(30, 220, size=(4, 8, 3)).astype(np.uint8)
    rgb[:, 1::2] = rgb[:, 0::2]  # one colour per pixel pair: 4:2:2 keeps it
    for encoding in ("yuv422", "yuv422_yuy2"):
        back = yuv422_to_rgb(to_yuv422(rgb, encoding), encoding).astype(int)
        assert np.abs(back - rgb).max() <= 2, encoding


def test_integer_and_16bit_colour_encodings() -> None:
    assert image_to_float(np.array([[65535, 0]], np.uint16), "16UC1").tolist() == [[1.0, 0.0]]
    np.testing.assert_allclose(image_to_float(np.array([[255, 51]], np.uint8), "8UC1"),
                               [[1.0, 0.2]])
    bgr = np.array([[[0, 0, 255]]], np.uint8)  # OpenCV order: red
    assert image_to_float(bgr, "8UC3").tolist() == [[[1.0, 0.0, 0.0]]]
    rgb16 = np.array([[[65535, 0, 13107]]], np.uint16)
    np.testing.assert_allclose(image_to_float(rgb16, "rgb16"), [[[1.0, 0.0, 0.2]]])
    np.testing.assert_allclose(image_to_float(rgb16[..., ::-1], "bgr16"), [[[1.0, 0.0, 0.2]]])


def test_float_input_outside_unit_range_is_reported_not_clipped() -> None:
    ok = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(image_to_float(ok, "32FC1"), ok)
    with pytest.raises(ValueError, match=r"\[0, 1\] but 2 pixel\(s\) do not .*range 0 to 255"):
        image_to_float(np.array([[0.0, 255.0, 128.0]], np.float32), "32FC1")
    with pytest.raises(ValueError, match="1 pixel"):
        image_to_float(np.array([[-0.01, 0.5]], np.float32), "32FC1")


def png_bytes(pixels: np.ndarray) -> bytes:
    import png

    buf = io.BytesIO()
    greyscale = pixels.ndim == 2
    planes = 1 if greyscale else pixels.shape[2]
    writer = png.Writer(pixels.shape[1], pixels.shape[0], greyscale=greyscale,
                        alpha=planes == 4, bitdepth=pixels.dtype.itemsize * 8)
    writer.write(buf, pixels.reshape(pixels.shape[0], -1).tolist())
    return buf.getvalue()


@pytest.mark.parametrize(("shape", "dtype", "encoding"), [
    ((5, 7), np.uint8, "mono8"), ((5, 7), np.uint16, "mono16"),
    ((5, 7, 3), np.uint8, "rgb8"), ((5, 7, 3), np.uint16, "rgb16"),
])
def test_png_compressed_images_are_lossless(shape, dtype, encoding) -> None:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    decoded = decode_compressed(png_bytes(pixels))
    assert (decoded.encoding, decoded.codec) == (encoding, "png")
    assert decoded.pixels.dtype == dtype
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_jpeg_and_bad_compressed_data() -> None:
    from PIL import Image as PILImage

    flat = np.full((16, 16, 3), [200, 40, 90], np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(flat).save(buf, format="JPEG", quality=95)
    decoded = decode_compressed(np.frombuffer(buf.getvalue(), np.uint8))
    assert (decoded.encoding, decoded.codec, decoded.pixels.shape) == ("rgb8", "jpeg",
                                                                       (16, 16, 3))
    assert np.abs(decoded.pixels.astype(int) - flat).max() <= 4  # lossy, but close
    with pytest.raises(ValueError, match="empty"):
        decode_compressed(b"")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_compressed(b"\x89PNG\r\n\x1a\n" + bytes(30))
    buf = io.BytesIO()
    PILImage.fromarray(flat).save(buf, format="BMP")
    with pytest.raises(ValueError, match="BMP, expected PNG or JPEG"):
        decode_compressed(buf.getvalue())
