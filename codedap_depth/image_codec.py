# SPDX-License-Identifier: Apache-2.0
"""Pure-numpy codecs for sensor_msgs payloads, shared by the ROS node and the bag tools.

Nothing here imports ROS: every function works on the plain fields of a message (``encoding``,
``height``, ``width``, ``step``, ``is_bigendian``, ``data``), so ``messages.py`` (the message
descriptions rclpy and rosbags build from) and the readers of both share one implementation.

Images follow cv_bridge semantics: ``decode_image`` is ``imgmsg_to_cv2(msg, "passthrough")``
(rows may be padded, ``step`` >= ``width * bytes_per_pixel``; big-endian data is byte-swapped
to native order) and ``encode_image`` is ``cv2_to_imgmsg(array, encoding)`` (the array is
labelled, never reordered; no row padding; native byte order). Supported encodings are the
keys of ``ENCODINGS``; ``image_to_float`` turns any of them into intensities the way
``cv_bridge.imgmsg_to_cv2(msg, "rgb8")`` (or ``"mono8"``) would: Bayer mosaics are demosaiced
bilinearly (``demosaic_bilinear``, OpenCV's ``COLOR_Bayer*2RGB``) and YUV 4:2:2 is converted
with BT.601 (``yuv422_to_rgb``, OpenCV's ``COLOR_YUV2RGB_UYVY`` / ``_YUY2``). ``decode_compressed``
reads the payload of a ``sensor_msgs/CompressedImage`` (PNG or JPEG, with Pillow).

Point clouds use the project's organised PointCloud2 layout: float32
``x, y, z`` at bytes 0, 4, 8, ``rgb`` at 16 holding the bits of ``0x00RRGGBB``, optional
``sigma`` at 20, ``point_step`` 32, little-endian, NaN points where depth is invalid.

Pixel conventions: pixel (u, v) has its centre at integer coordinates, u to the right, v down;
intrinsics ``K`` are the usual 3x3 pinhole matrix in pixels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from codedap_depth.geometry import backproject

#: Bayer colour-filter patterns: the colours of the top-left 2x2 block, row by row
BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
#: encoding -> (numpy dtype without byte order, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "8UC1": ("u1", 1),
    "16UC1": ("u2", 1),
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "8UC3": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
    "yuv422": ("u1", 2),
    "yuv422_yuy2": ("u1", 2),
    **{f"bayer_{p}8": ("u1", 1) for p in BAYER_PATTERNS},
    **{f"bayer_{p}16": ("u2", 1) for p in BAYER_PATTERNS},
    "32FC1": ("f4", 1),
}
#: encodings whose pixels are single intensities (the AIF of such a camera is published mono8)
MONO_ENCODINGS = frozenset({"mono8", "mono16", "8UC1", "16UC1", "32FC1"})
#: three- or four-channel encodings stored blue first; ``8UC3`` carries no channel order and is
#: taken in OpenCV's order (BGR), as ``cv2.imwrite`` would
_BGR_ENCODINGS = frozenset({"bgr8", "bgra8", "bgr16", "bgra16", "8UC3"})
_HOST_BIGENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class ImageData:
    """The payload fields of a ``sensor_msgs/Image`` (no header).

    Attributes:
        encoding: one of ``ENCODINGS``.
        height, width: pixels.
        step: bytes per row including padding.
        is_bigendian: byte order of multi-byte pixels in ``data``.
        data: ``step * height`` bytes.
    """

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: bool
    data: bytes


def bytes_per_pixel(encoding: str) -> int:
    """Bytes per pixel of ``encoding``; ``ValueError`` naming the supported ones if unknown."""
    if encoding not in ENCODINGS:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    kind, channels = ENCODINGS[encoding]
    return np.dtype(kind).itemsize * channels


def decode_image(
    encoding: str, height: int, width: int, step: int, data: bytes | memoryview | np.ndarray,
    is_bigendian: bool = False,
) -> np.ndarray:
    """Decode an image payload into a native-endian array (cv_bridge ``passthrough``).

    Args:
        encoding: one of ``ENCODINGS``.
        height, width: pixels; both must be positive.
        step: bytes per row (>= ``width * bytes_per_pixel``; any extra bytes are row padding).
        data: exactly ``step * height`` bytes.
        is_bigendian: byte order of multi-byte pixels.

    Returns:
        A new writable array, [H, W] for one channel or [H, W, C], dtype uint8, uint16 or
        float32 according to the encoding.

    Raises:
        ValueError: unknown encoding, empty image, ``step`` too small, or ``data`` of the wrong
            length (truncated, or longer than ``step * height`` which means a wrong ``step``).

    >>> decode_image("mono16", 1, 2, 4, b"\\x01\\x00\\x00\\x02", is_bigendian=True).tolist()
    [[256, 2]]
    """
    bpp = bytes_per_pixel(encoding)
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image ({width}x{height} px)")
    if step < width * bpp:
        raise ValueError(
            f"step {step} is smaller than width * bytes_per_pixel = {width} * {bpp} for "
            f"{encoding}"
        )
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    raw = raw.reshape(-1).view(np.uint8)
    expected = step * height
    if raw.size < expected:
        raise ValueError(
            f"image data truncated: {raw.size} bytes for {width}x{height} {encoding} with step "
            f"{step} (expected {expected})"
        )
    if raw.size > expected:
        raise ValueError(
            f"image data has {raw.size} bytes but step * height = {step} * {height} = "
            f"{expected}; the step is probably wrong"
        )
    kind, channels = ENCODINGS[encoding]
    rows = np.ascontiguousarray(raw.reshape(height, step)[:, : width * bpp])
    order = ">" if is_bigendian else "<"
    pixels = rows.view(np.dtype(order + kind)).astype(np.dtype(kind), copy=True)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return pixels.reshape(shape)


def encode_image(
    array: np.ndarray, encoding: str, *, step: int | None = None, bigendian: bool = _HOST_BIGENDIAN
) -> ImageData:
    """Encode ``array`` as an image payload (cv_bridge ``cv2_to_imgmsg``).

    Args:
        array: [H, W] or [H, W, C] with the dtype and channel count of ``encoding``; the data is
            labelled with ``encoding``, never converted or reordered.
        encoding: one of ``ENCODINGS``.
        step: bytes per row; ``None`` packs rows tightly, a larger value zero-pads each row.
        bigendian: write multi-byte pixels big-endian (default: the host order, as cv_bridge).

    Raises:
        ValueError: unknown encoding, dtype or channel count not matching it, empty array, or a
            ``step`` smaller than a row.
    """
    bpp = bytes_per_pixel(encoding)
    kind, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1 and channels == 1:
        array = array[..., 0]
    shape_ok = array.ndim == 2 if channels == 1 else array.ndim == 3 and array.shape[2] == channels
    if not shape_ok:
        raise ValueError(
            f"{encoding} needs an array with {channels} channel(s), got shape {array.shape}"
        )
    want = np.dtype(kind)
    if (array.dtype.kind, array.dtype.itemsize) != (want.kind, want.itemsize):
        raise ValueError(f"{encoding} needs dtype {np.dtype(kind)}, got {array.dtype}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot encode an empty image ({width}x{height} px)")
    row_bytes = width * bpp
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than a row ({row_bytes} bytes)")
    order = ">" if bigendian else "<"
    rows = np.ascontiguousarray(array, dtype=np.dtype(order + kind)).view(np.uint8)
    rows = rows.reshape(height, row_bytes)
    if step > row_bytes:
        rows = np.pad(rows, ((0, 0), (0, step - row_bytes)))
    return ImageData(encoding, height, width, step, bool(bigendian), rows.tobytes())


def bayer_pattern_of(encoding: str, override: str = "") -> str | None:
    """The Bayer pattern to demosaic ``encoding`` with, or None for a non-mosaic image.

    Args:
        encoding: the message's encoding.
        override: one of ``BAYER_PATTERNS`` for drivers that mislabel their mosaic (a wrong
            ``bayer_*`` pattern, or a raw sensor image labelled ``mono8``/``mono16``/``8UC1``/
            ``16UC1``); "" keeps the label.

    Raises:
        ValueError: ``override`` is not a pattern, or is set for an encoding that cannot be a
            mosaic (colour, YUV or float images).
    """
    if override and override not in BAYER_PATTERNS:
        raise ValueError(f"bayer pattern must be one of {', '.join(BAYER_PATTERNS)} (or empty), "
                         f"got {override!r}")
    labelled = encoding.startswith("bayer_")
    if not override:
        return encoding[6:10] if labelled else None
    if not (labelled or (encoding in MONO_ENCODINGS and encoding != "32FC1")):
        raise ValueError(f"bayer_pattern {override!r} is set but {encoding} images are not a "
                         f"raw mosaic (only bayer_* and integer mono encodings can be)")
    return override


def demosaic_bilinear(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaic of a Bayer mosaic, exactly as OpenCV's ``COLOR_Bayer*2RGB``.

    At each pixel the missing colours are the rounded mean of the nearest samples of that
    colour: the 4 edge neighbours ``(n + s + w + e + 2) >> 2`` (green at red/blue sites), the 4
    diagonal ones ``(... + 2) >> 2`` (blue at red sites and red at blue sites), or the 2 row or
    column neighbours ``(a + b + 1) >> 1`` (red and blue at green sites). The outermost rows and
    columns copy their inner neighbour, as OpenCV does. This is what cv_bridge returns for
    ``imgmsg_to_cv2(msg, "rgb8")`` on ``bayer_<pattern>8`` (cv_bridge maps ``bayer_rggb8`` to
    OpenCV's ``BayerBG``, which names the same layout from its second row).

    Args:
        raw: [H, W] uint8 or uint16 mosaic, H and W >= 3.
        pattern: one of ``BAYER_PATTERNS`` (colours of the top-left 2x2 block).

    Returns:
        [H, W, 3] RGB of ``raw``'s dtype.

    >>> demosaic_bilinear(np.array([[10, 20, 10], [30, 40, 30], [10, 20, 10]], np.uint8),
    ...                   "rggb")[1, 1].tolist()
    [10, 25, 40]
    """
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"bayer pattern must be one of {', '.join(BAYER_PATTERNS)}")
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a Bayer mosaic is [H, W] uint8/uint16, got {raw.shape} {raw.dtype}")
    height, width = raw.shape
    if height < 3 or width < 3:
        raise ValueError(f"a {width}x{height} Bayer image is too small to demosaic (min 3x3)")
    p = raw.astype(np.int64)
    centre = p[1:-1, 1:-1]
    cross = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + 2) >> 2
    diagonal = (p[:-2, :-2] + p[:-2, 2:] + p[2:, :-2] + p[2:, 2:] + 2) >> 2
    row_pair = (p[1:-1, :-2] + p[1:-1, 2:] + 1) >> 1
    column_pair = (p[:-2, 1:-1] + p[2:, 1:-1] + 1) >> 1
    index = {"r": 0, "g": 1, "b": 2}
    out = np.empty((height - 2, width - 2, 3), dtype=np.int64)
    for dy in (0, 1):
        for dx in (0, 1):
            # interior pixel (1 + i, 1 + j) has parity ((1 + dy) % 2, (1 + dx) % 2)
            here = pattern[2 * ((1 + dy) % 2) + (1 + dx) % 2]
            along_row = pattern[2 * ((1 + dy) % 2) + dx % 2]
            along_column = pattern[2 * (dy % 2) + (1 + dx) % 2]
            site = (slice(dy, None, 2), slice(dx, None, 2))
            out[site + (index[here],)] = centre[site]
            if here == "g":
                out[site + (index[along_row],)] = row_pair[site]
                out[site + (index[along_column],)] = column_pair[site]
            else:
                out[site + (index["g"],)] = cross[site]
                other = "b" if here == "r" else "r"
                out[site + (index[other],)] = diagonal[site]
    return np.pad(out, ((1, 1), (1, 1), (0, 0)), mode="edge").astype(raw.dtype)


#: OpenCV's fixed-point BT.601 (limited range) YUV -> RGB coefficients, scaled by 2**20
_BT601_Y, _BT601_VR, _BT601_UG, _BT601_VG, _BT601_UB = (
    1220542, 1673527, -409993, -852492, 2116026)
_BT601_SHIFT = 20
#: yuv encoding -> (channel holding luma, channel holding the alternating U/V samples)
_YUV422_LAYOUTS = {"yuv422": (1, 0), "yuv422_yuy2": (0, 1)}


def yuv422_to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """YUV 4:2:2 -> RGB8 with BT.601 limited range, exactly as OpenCV's fixed-point converter.

    ``yuv422`` is UYVY (bytes ``U0 Y0 V0 Y1`` per pixel pair) and ``yuv422_yuy2`` is YUYV
    (``Y0 U0 Y1 V0``), as cv_bridge maps them to ``COLOR_YUV2RGB_UYVY`` / ``_YUY2``. Each
    channel is ``(max(Y - 16, 0) * 1.164 + c * (U|V - 128) + 0.5) >> 20`` in 2**20 fixed
    point, clipped to [0, 255].

    Args:
        pixels: [H, W, 2] uint8 as ``decode_image`` returns it; W even.
        encoding: ``yuv422`` or ``yuv422_yuy2``.

    Returns:
        [H, W, 3] uint8 RGB.

    >>> yuv422_to_rgb(np.array([[[128, 235], [128, 16]]], np.uint8), "yuv422").tolist()
    [[[255, 255, 255], [0, 0, 0]]]
    """
    luma_channel, chroma_channel = _YUV422_LAYOUTS[encoding]
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 2 or pixels.shape[1] % 2:
        raise ValueError(f"{encoding} needs an even width, got {pixels.shape[1]} px")
    luma = pixels[..., luma_channel].astype(np.int64)
    chroma = pixels[..., chroma_channel].astype(np.int64) - 128
    u = np.repeat(chroma[:, 0::2], 2, axis=1)
    v = np.repeat(chroma[:, 1::2], 2, axis=1)
    y = np.maximum(luma - 16, 0) * _BT601_Y
    half = 1 << (_BT601_SHIFT - 1)
    rgb = np.stack([
        y + half + _BT601_VR * v,
        y + half + _BT601_VG * v + _BT601_UG * u,
        y + half + _BT601_UB * u,
    ], axis=-1) >> _BT601_SHIFT
    return np.clip(rgb, 0, 255).astype(np.uint8)


def image_to_float(array: np.ndarray, encoding: str, bayer_pattern: str = "") -> np.ndarray:
    """Decoded pixels -> float32 intensities in [0, 1]: [H, W] for mono, [H, W, 3] RGB otherwise.

    Integer encodings are divided by their full scale (255 or 65535); BGR(A) is reordered to
    RGB and alpha dropped; Bayer mosaics are demosaiced (``demosaic_bilinear``) and YUV 4:2:2
    converted (``yuv422_to_rgb``) first. ``32FC1`` must already hold intensities in [0, 1].

    Args:
        array: as ``decode_image`` returns it for ``encoding``.
        encoding: one of ``ENCODINGS``.
        bayer_pattern: Bayer pattern override (see ``bayer_pattern_of``); "" keeps the label.

    Raises:
        ValueError: unknown encoding, a bad ``bayer_pattern``, NaN/Inf in a float image, or a
            float image with values outside [0, 1] (e.g. 0-255 data labelled ``32FC1``).
    """
    bytes_per_pixel(encoding)
    if encoding == "32FC1":
        return _checked_float(np.asarray(array, dtype=np.float32))
    values = np.asarray(array)
    pattern = bayer_pattern_of(encoding, bayer_pattern)
    if pattern is not None:
        values = demosaic_bilinear(values, pattern)
    elif encoding in _YUV422_LAYOUTS:
        values = yuv422_to_rgb(values, encoding)
    scale = 65535.0 if values.dtype == np.uint16 else 255.0
    values = values.astype(np.float32) / np.float32(scale)
    if encoding in _BGR_ENCODINGS:
        values = values[..., 2::-1]
    elif values.ndim == 3:
        values = values[..., :3]
    return np.ascontiguousarray(values)


def _checked_float(values: np.ndarray) -> np.ndarray:
    """A float32 intensity image, unchanged; ``ValueError`` for NaN/Inf or values outside
    [0, 1] (reported, never clipped: a 0-255 image would otherwise read as saturated)."""
    finite = np.isfinite(values)
    if not finite.all():
        raise ValueError(f"32FC1 image contains {int(np.count_nonzero(~finite))} NaN/Inf "
                         f"pixel(s)")
    outside = int(np.count_nonzero((values < 0.0) | (values > 1.0)))
    if outside:
        raise ValueError(
            f"32FC1 intensities must lie in [0, 1] but {outside} pixel(s) do not (range "
            f"{float(values.min()):.4g} to {float(values.max()):.4g}); scale the image or "
            f"publish it as mono8/mono16"
        )
    return values


@dataclass(frozen=True)
class CompressedPixels:
    """A decoded ``sensor_msgs/CompressedImage``.

    Attributes:
        pixels: [H, W] or [H, W, C] array as ``decode_image`` would give for ``encoding``.
        encoding: ``mono8``, ``mono16``, ``rgb8``, ``rgba8`` or ``rgb16``.
        codec: ``png`` or ``jpeg`` (from the data, not the message's ``format`` string).
    """

    pixels: np.ndarray
    encoding: str
    codec: str


#: Pillow image mode -> our encoding for the modes it reads without loss
_PIL_MODES = {"L": "mono8", "I;16": "mono16", "I;16B": "mono16", "RGB": "rgb8", "RGBA": "rgba8"}


def decode_compressed(data: bytes | memoryview | np.ndarray) -> CompressedPixels:
    """Decode PNG or JPEG bytes (image_transport's ``compressed`` transport) with Pillow.

    PNG keeps every bit, 16-bit included (Pillow reduces 16-bit colour PNGs to 8 bits, so those
    are read with pypng). Palette, grey+alpha and 1-bit images become RGB / mono8. JPEG is
    lossy: its 8x8 block artefacts change exactly the local blur a depth-from-defocus method
    measures, so callers should warn about it.

    Raises:
        ValueError: empty data, not a PNG/JPEG stream, or a corrupt one.
    """
    import io

    from PIL import Image as PILImage

    raw = bytes(np.asarray(data, dtype=np.uint8).reshape(-1)) \
        if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise ValueError("compressed image is empty")
    try:
        with PILImage.open(io.BytesIO(raw)) as image:
            codec = (image.format or "").lower()
            if codec not in ("png", "jpeg"):
                raise ValueError(f"compressed image is {image.format or 'unknown'}, expected "
                                 f"PNG or JPEG")
            if codec == "png" and _png_is_16bit_colour(raw):
                return CompressedPixels(_read_png16_colour(raw), "rgb16", codec)
            image.load()
            if image.mode not in _PIL_MODES:
                image = image.convert("L" if image.mode in ("1", "I", "F") else "RGB")
            pixels = np.array(image)
    except (OSError, SyntaxError) as err:  # Pillow's errors for unreadable / corrupt data
        raise ValueError(f"cannot decode compressed image: {err}") from err
    encoding = _PIL_MODES[image.mode]
    return CompressedPixels(pixels.astype(ENCODINGS[encoding][0]), encoding, codec)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of [H, W] or [H, W, 3/4] uint8, or [H, W] uint16 pixels (Pillow, lossless)."""
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return buf.getvalue()


def _png_is_16bit_colour(raw: bytes) -> bool:
    """IHDR bit depth 16 with colour type 2 (RGB) or 6 (RGBA)."""
    return len(raw) > 25 and raw[24] == 16 and raw[25] in (2, 6)


def _read_png16_colour(raw: bytes) -> np.ndarray:
    """[H, W, 3] uint16 of a 16-bit RGB(A) PNG (alpha dropped)."""
    import png

    try:
        width, height, rows, info = png.Reader(bytes=raw).read()
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except png.Error as err:
        raise ValueError(f"cannot decode compressed image: {err}") from err
    planes = info["planes"]
    return np.ascontiguousarray(pixels.reshape(height, width, planes)[..., :3])


def display_encoding(intensities: np.ndarray) -> str:
    """``mono8`` for [H, W] or [H, W, 1] intensities (a mono camera), ``rgb8`` for colour."""
    mono = np.ndim(intensities) == 2 or np.shape(intensities)[-1] == 1
    return "mono8" if mono else "rgb8"


def float_to_image(values: np.ndarray, encoding: str) -> np.ndarray:
    """Float32 intensities in [0, 1] ([H, W], [H, W, 1] or [H, W, 3] RGB) -> ``encoding`` pixels.

    The inverse of ``image_to_float`` up to rounding: values are clipped to [0, 1] and rounded
    to the nearest integer level; an RGB input to a mono encoding is averaged over channels;
    alpha is set opaque. Mosaic and YUV encodings are inputs only (``ValueError``).
    """
    bytes_per_pixel(encoding)
    if encoding.startswith("bayer_") or encoding in _YUV422_LAYOUTS:
        raise ValueError(f"float_to_image does not produce {encoding} (an input-only encoding)")
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    kind, channels = ENCODINGS[encoding]
    if channels == 1 and values.ndim == 3:
        values = values.mean(axis=-1)
    if channels > 1 and values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=-1)
    if encoding == "32FC1":
        return np.clip(values, 0.0, 1.0).astype(np.float32)
    scale = np.iinfo(np.dtype(kind)).max
    levels = np.rint(np.clip(values, 0.0, 1.0) * scale).astype(np.dtype(kind))
    if encoding in _BGR_ENCODINGS:
        levels = levels[..., ::-1]
    if channels == 4:
        alpha = np.full(levels.shape[:2] + (1,), scale, dtype=levels.dtype)
        levels = np.concatenate([levels, alpha], axis=-1)
    return np.ascontiguousarray(levels)


def bin_image(values: np.ndarray, factor: int, *, skip_nan: bool = False) -> np.ndarray:
    """Block-average ``factor`` x ``factor`` pixels ([H, W] or [H, W, C], float32 out).

    Rows and columns that do not fill a whole block (at the bottom and right) are dropped, so
    the output is ``H // factor`` x ``W // factor``. NaN in a block makes that output NaN, or
    with ``skip_nan`` (e.g. ground-truth depth) only blocks without any finite value are NaN.
    """
    if factor < 1:
        raise ValueError(f"binning factor must be >= 1, got {factor}")
    values = np.asarray(values, dtype=np.float32)
    if factor == 1:
        return values
    h, w = values.shape[0] // factor, values.shape[1] // factor
    if h == 0 or w == 0:
        raise ValueError(f"a {values.shape[1]}x{values.shape[0]} image is smaller than one "
                         f"{factor}x{factor} bin")
    cropped = values[: h * factor, : w * factor]
    if not skip_nan:  # strided float32 sums: ~10x faster than a float64 reshape-mean (node path)
        rows = cropped[0::factor].copy()
        for i in range(1, factor):
            rows += cropped[i::factor]
        binned = rows[:, 0::factor].copy()
        for j in range(1, factor):
            binned += rows[:, j::factor]
        binned *= np.float32(1.0 / (factor * factor))
        return binned
    blocks = cropped.reshape(h, factor, w, factor, *values.shape[2:]).astype(np.float64)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def bin_intrinsics(K: np.ndarray, factor: int) -> np.ndarray:
    """Intrinsics after ``bin_image`` by ``factor``.

    Output pixel ``u'`` averages input pixels ``factor*u' .. factor*u' + factor - 1``, whose
    centre is at ``u = factor*u' + (factor - 1)/2``, so ``f' = f / factor`` and
    ``c' = (c + 0.5) / factor - 0.5``.

    >>> bin_intrinsics(np.array([[100., 0, 31.5], [0, 100., 23.5], [0, 0, 1]]), 2)[0].tolist()
    [50.0, 0.0, 15.5]
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    out = K.copy()
    out[0, 0], out[0, 1], out[1, 1] = K[0, 0] / factor, K[0, 1] / factor, K[1, 1] / factor
    out[0, 2] = (K[0, 2] + 0.5) / factor - 0.5
    out[1, 2] = (K[1, 2] + 0.5) / factor - 0.5
    return out


def centred_intrinsics(fx: float, width: int, height: int) -> np.ndarray:
    """Pinhole ``K`` with square pixels of focal length ``fx`` px and the centre of the image."""
    return np.array(
        [[fx, 0.0, (width - 1) / 2.0], [0.0, fx, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


# --- PointCloud2 --------------------------------------------------------------------------

#: sensor_msgs/PointField datatype code for FLOAT32
FLOAT32 = 7
POINT_STEP = 32
_CLOUD_OFFSETS = {"x": 0, "y": 4, "z": 8, "rgb": 16, "sigma": 20}


@dataclass(frozen=True)
class CloudData:
    """The payload fields of an organised ``sensor_msgs/PointCloud2`` (no header).

    Attributes:
        height, width: points (the image grid after ``stride``).
        fields: ``(name, byte offset)`` pairs, all FLOAT32 with count 1.
        point_step: 32 bytes.
        row_step: ``point_step * width`` bytes.
        data: little-endian, ``row_step * height`` bytes.
    """

    height: int
    width: int
    fields: tuple[tuple[str, int], ...]
    point_step: int
    row_step: int
    data: bytes


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] colours (uint8, or float in [0, 1]) -> uint32 ``0x00RRGGBB`` (PCL's rgb bits)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = np.rint(np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return (r << 16) | (g << 8) | b


@dataclass(frozen=True)
class CloudPoints:
    """An organised point cloud as arrays (what ``pack_points`` packs, or a PLY writer writes).

    Attributes:
        xyz: [h, w, 3] float32 metres in the optical frame (x right, y down, z forward); NaN for
            invalid points.
        rgb: [h, w, 3] uint8 colours (invalid points keep theirs).
        sigma: [h, w] float32 metres, or None (no ``sigma`` field).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    sigma: np.ndarray | None


def cloud_points(
    depth: np.ndarray,
    K: np.ndarray,
    rgb: np.ndarray | None = None,
    *,
    sigma: np.ndarray | None = None,
    stride: int = 1,
    max_relative_uncertainty: float | None = None,
) -> CloudPoints:
    """Back-project a depth map into an organised point cloud.

    Point (u, v) with depth z (metres along the optical axis) is
    ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``, in the optical frame (x right, y down,
    z forward). Invalid points (non-finite or non-positive depth, or
    ``sigma / z > max_relative_uncertainty``) have x = y = z = NaN and keep their colour.

    Args:
        depth: [H, W] metres, NaN = invalid.
        K: 3x3 intrinsics of ``depth``'s pixel grid.
        rgb: [H, W, 3] colours (uint8 or float [0, 1]); ``None`` is white.
        sigma: optional [H, W] metres; kept as the ``sigma`` of each point.
        stride: keep every ``stride``-th row and column (decimation; intrinsics stay those of the
            full grid because the kept pixels keep their coordinates).
        max_relative_uncertainty: drop (NaN) points whose ``sigma / z`` exceeds it; ignored
            without ``sigma``.
    """
    if stride < 1:
        raise ValueError(f"cloud stride must be >= 1, got {stride}")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {depth.shape}")
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    z = depth[::stride, ::stride].astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float32)[::stride, ::stride]
        if max_relative_uncertainty is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                valid &= ~(sigma / z > max_relative_uncertainty)
    z = np.where(valid, z, np.nan)
    # the kept pixels sit every `stride` px: the same pinhole with K scaled by 1/stride
    xyz = backproject(z, np.diag([1 / stride, 1 / stride, 1.0]) @ K)
    if rgb is None:
        colours = np.full((*z.shape, 3), 255, dtype=np.uint8)
    else:
        colours = np.asarray(rgb)[::stride, ::stride]
        if colours.dtype != np.uint8:
            colours = np.rint(np.clip(colours.astype(np.float32), 0.0, 1.0) * 255).astype(
                np.uint8)
    return CloudPoints(xyz.astype(np.float32), colours, sigma)


def pack_points(points: CloudPoints) -> CloudData:
    """The PointCloud2 payload of ``points`` (layout: module docstring, README)."""
    names = ["x", "y", "z", "rgb"] + (["sigma"] if points.sigma is not None else [])
    dtype = np.dtype({
        "names": names,
        "formats": ["<f4", "<f4", "<f4", "<u4"] + (["<f4"] if points.sigma is not None else []),
        "offsets": [_CLOUD_OFFSETS[n] for n in names],
        "itemsize": POINT_STEP,
    })
    height, width = points.xyz.shape[:2]
    packed = np.zeros((height, width), dtype=dtype)
    for i, name in enumerate("xyz"):
        packed[name] = points.xyz[..., i]
    packed["rgb"] = pack_rgb(points.rgb)
    if points.sigma is not None:
        packed["sigma"] = points.sigma
    return CloudData(
        height=height,
        width=width,
        fields=tuple((n, _CLOUD_OFFSETS[n]) for n in names),
        point_step=POINT_STEP,
        row_step=POINT_STEP * width,
        data=packed.tobytes(),
    )


def unpack_cloud(
    fields: dict[str, int], height: int, width: int, point_step: int,
    data: bytes | memoryview | np.ndarray, is_bigendian: bool = False,
) -> dict[str, np.ndarray]:
    """Read FLOAT32 fields of an organised cloud payload into [height, width] arrays.

    Args:
        fields: field name -> byte offset (FLOAT32 fields only); ``rgb`` is returned as the
            uint32 bits, every other field as float32.
    """
    order = ">" if is_bigendian else "<"
    dtype = np.dtype({
        "names": list(fields),
        "formats": [order + ("u4" if n == "rgb" else "f4") for n in fields],
        "offsets": list(fields.values()),
        "itemsize": point_step,
    })
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if raw.size != height * width * point_step:
        raise ValueError(
            f"cloud data has {raw.size} bytes, expected {height} * {width} * {point_step}"
        )
    points = raw.view(dtype).reshape(height, width)
    return {n: points[n].astype(np.uint32 if n == "rgb" else np.float32) for n in fields}
