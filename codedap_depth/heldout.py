# SPDX-License-Identifier: Apache-2.0
"""Held-out RGB-D scenes: real photos with real sensor depth, from pinned Debian packages.

**Never pick a setting with these scenes.** Tune on :data:`codedap_depth.scenes.SCENES`; this
set is run once per reported result. ``heldout_manifest.json`` pins, for every scene, the
package, its exact version, the path inside it and the sha256 of each original file;
``python tools/fetch_heldout.py`` puts those files under the data folder. Nothing here
downloads anything.

* ``pcl_milk``: Kinect v1 organized cloud from PCL's tutorial data (Debian ``python3-pcl``).
* ``mrpt_shelf``: OpenNI2 range scan, MRPT's RGB-D test recording (Debian ``mrpt-common``).
* ``visp_castel``: Creative SR300 frame of ViSP's castel sequence (Debian
  ``visp-images-data``), depth registered onto the colour camera with the pinned calibration.

Each scene is decoded from the original bytes with numpy alone (no pickle, no PCL, MRPT or
ViSP). As for the dev scenes, inverse depth is mapped affinely onto the working range and
unknown depth stays NaN.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from codedap_depth.scenes import Scene, _as_rgb01, _fit, scene_from_inverse

#: The pinned scenes: package, version, paths, sha256, units, sensor, licence.
MANIFEST_PATH = Path(__file__).with_name("heldout_manifest.json")
#: Where ``tools/fetch_heldout.py`` puts the files unless told otherwise.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".heldout_data"
FETCH_HINT = "run `python tools/fetch_heldout.py` (or set CODEDAP_HELDOUT_DATA)"
#: A decoded frame: ([H, W, 3] or [H, W] uint8 image, [H, W] float32 metres, 0 = unknown).
Decoded = tuple[np.ndarray, np.ndarray]
Decoder = Callable[[dict[str, bytes], dict[str, Any]], Decoded]


def load_manifest() -> dict[str, Any]:
    """The held-out manifest as a dict (see ``heldout_manifest.json``)."""
    return json.loads(MANIFEST_PATH.read_text())


#: Scene names, in manifest order.
HELDOUT_SCENES: tuple[str, ...] = tuple(s["name"] for s in load_manifest()["scenes"])


def resolve_data_dir(override: str | Path | None = None) -> Path:
    """``override``, else ``$CODEDAP_HELDOUT_DATA``, else ``.heldout_data/`` in the repo."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get("CODEDAP_HELDOUT_DATA", DEFAULT_DATA_DIR))


def verified_bytes(path: Path, sha256: str) -> bytes:
    """The bytes of ``path``, after checking them against ``sha256`` (hex).

    Raises:
        FileNotFoundError: ``path`` is missing (the message says how to fetch it).
        ValueError: the file's sha256 differs (the message names the file).
    """
    if not path.is_file():
        raise FileNotFoundError(f"held-out file {path} is missing: {FETCH_HINT}")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ValueError(
            f"held-out file {path} has sha256 {actual}, the manifest pins {sha256}: "
            f"delete it and {FETCH_HINT}"
        )
    return data


def load_heldout_scene(
    name: str,
    depth_range: tuple[float, float],
    size: tuple[int, int],
    data_dir: str | Path | None = None,
) -> Scene:
    """Held-out scene ``name`` at ``size = (width, height)`` px over ``depth_range`` metres.

    Same conventions as :func:`codedap_depth.scenes.load_scene`: rgb [H, W, 3] float32 in
    [0, 1]; depth [H, W] float32 metres with the sensor's inverse depth mapped affinely onto
    ``[1 / far, 1 / near]``, NaN where the sensor had no reading; centre-crop/resize with
    nearest-neighbour depth. ``data_dir`` defaults to :func:`resolve_data_dir`. Every file is
    checked against its manifest sha256 before it is decoded.
    """
    entries = {s["name"]: s for s in load_manifest()["scenes"]}
    if name not in entries:
        raise ValueError(f"unknown held-out scene {name!r}; choose from {list(entries)}")
    entry = entries[name]
    root = resolve_data_dir(data_dir) / entry["package"]
    files = {
        role: verified_bytes(root / spec["path"], spec["sha256"])
        for role, spec in entry["files"].items()
    }
    rgb8, depth_m = DECODERS[entry["format"]](files, entry)
    with np.errstate(divide="ignore"):
        inverse = np.where(depth_m > 0, 1.0 / depth_m, np.nan).astype(np.float32)
    rgb = _fit(_as_rgb01(rgb8), size)
    return scene_from_inverse(name, rgb, _fit(inverse, size, nearest=True), depth_range)


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Inflate LZF ``data`` (liblzf format, as in PCD ``binary_compressed``) to ``size`` bytes."""
    out = bytearray(size)
    i = o = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            n = ctrl + 1
            out[o : o + n] = data[i : i + n]
            i, o = i + n, o + n
            continue
        n = ctrl >> 5  # back-reference: length n + 2, offset from the low 5 bits + next byte
        if n == 7:
            n += data[i]
            i += 1
        ref = o - ((ctrl & 31) << 8) - data[i] - 1
        i += 1
        n += 2
        if ref < 0:
            raise ValueError("corrupt LZF stream: back-reference before the start")
        if ref + n <= o:
            out[o : o + n] = out[ref : ref + n]
        else:  # overlapping copy repeats the last bytes
            for k in range(n):
                out[o + k] = out[ref + k]
        o += n
    if o != size:
        raise ValueError(f"corrupt LZF stream: {o} bytes out, header says {size}")
    return bytes(out)


def decode_pcd(data: bytes) -> Decoded:
    """An organized ``binary_compressed`` PCD with x y z and rgb(a) as (rgb uint8, depth m).

    Returns ``([H, W, 3] uint8, [H, W] float32 metres = |z|, 0 where unknown)``.
    """
    header: dict[str, list[str]] = {}
    pos = 0
    while "DATA" not in header:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode("ascii").strip()
        pos = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key] = values
    width, height = int(header["WIDTH"][0]), int(header["HEIGHT"][0])
    fields = header["FIELDS"]
    colour = "rgba" if "rgba" in fields else "rgb"
    if header["DATA"] != ["binary_compressed"] or height == 1 or not {"z", colour} <= set(fields):
        raise ValueError(f"need an organized binary_compressed PCD with z, rgb(a): {header}")
    packed, raw = struct.unpack_from("<II", data, pos)
    body = lzf_decompress(data[pos + 8 : pos + 8 + packed], raw)
    offset, columns = 0, {}
    for field, nbytes in zip(fields, header["SIZE"], strict=True):
        count = width * height
        columns[field] = body[offset : offset + int(nbytes) * count]
        offset += int(nbytes) * count
    z = np.frombuffer(columns["z"], "<f4").reshape(height, width)
    c = np.frombuffer(columns[colour], "<u4").reshape(height, width)
    rgb = np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], axis=-1).astype(np.uint8)
    return rgb, np.nan_to_num(np.abs(z), nan=0.0).astype(np.float32)


class _Archive:
    """A cursor over an MRPT binary archive (little endian, objects end with 0x88)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated MRPT archive")
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values[0] if len(values) == 1 else values

    def begin(self, class_name: str) -> int:
        """Read an object header of ``class_name``; returns its serialization version."""
        n = self.unpack("B") & 0x7F
        found = self.take(n).decode("ascii")
        if found != class_name:
            raise ValueError(f"MRPT archive: expected {class_name}, found {found}")
        return self.unpack("B")

    def end(self) -> None:
        if self.unpack("B") != 0x88:
            raise ValueError("MRPT archive: missing end-of-object marker")


def decode_mrpt_rangescan(data: bytes) -> Decoded:
    """The first ``CObservation3DRangeScan`` (v9, v10) of a gzip rawlog as (rgb uint8, depth m).

    Reads the uint16 range image times ``rangeUnits`` and the raw-BGR intensity image; the
    points, calibration and labels that follow are not needed.
    """
    arc = _Archive(gzip.decompress(data))
    version = arc.begin("mrpt::obs::CObservation3DRangeScan")
    if version not in (9, 10):  # v9 made the range image uint16 x rangeUnits
        raise ValueError(f"CObservation3DRangeScan serialization v{version} is not supported")
    arc.unpack("f")  # maxRange
    arc.begin("mrpt::poses::CPose3D")
    arc.take(12 * 8)  # sensor pose: translation + rotation matrix
    arc.end()
    if arc.unpack("?"):  # points3D x, y, z float32 + pixel indices uint16
        arc.take(arc.unpack("I") * (3 * 4 + 2 * 2))
    has_range, units = arc.unpack("?f")
    if not has_range:
        raise ValueError("MRPT range scan without a range image")
    rows, cols = arc.unpack("II")
    depth = np.frombuffer(arc.take(rows * cols * 2), "<u2").reshape(rows, cols) * units
    if not arc.unpack("?"):
        raise ValueError("MRPT range scan without an intensity image")
    arc.begin("mrpt::img::CImage")
    external, colour, width, height = arc.unpack("??ii")
    if external or not colour or width >= 0 or height >= 0:
        raise ValueError("MRPT image is not stored inline as raw colour")
    bgr = np.frombuffer(arc.take(width * height * 3), np.uint8).reshape(-height, -width, 3)
    return bgr[..., ::-1], depth.astype(np.float32)


def register_depth(
    depth: np.ndarray,
    depth_camera: dict[str, Any],
    colour_camera: dict[str, Any],
    depth_M_colour: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Depth camera metres re-sampled onto the colour camera's pixel grid.

    Each valid depth pixel is deprojected (with the depth camera's inverse Brown-Conrady
    distortion, as librealsense does), moved into the colour camera by the inverse of
    ``depth_M_colour`` (4x4, metres), and projected with its pixel footprint: it fills the
    colour pixels whose centres fall inside its projected square, keeping the nearest surface.
    Identical cameras give back the input exactly.

    Returns:
        [H, W] float32 depth along the colour camera's axis in metres, 0 where unseen.
    """
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    colour_M_depth = np.linalg.inv(depth_M_colour)
    k1, k2, p1, p2, k3 = depth_camera["inverse_brown_conrady"]
    corners = []
    for half in (-0.5, 0.5):
        x = (u + half - depth_camera["cx"]) / depth_camera["fx"]
        y = (v + half - depth_camera["cy"]) / depth_camera["fy"]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
        points = colour_M_depth[:3, :3] @ np.stack([xd * z, yd * z, z]) + colour_M_depth[:3, 3:]
        cu = colour_camera["fx"] * points[0] / points[2] + colour_camera["cx"]
        cv = colour_camera["fy"] * points[1] / points[2] + colour_camera["cy"]
        corners.append((cu, cv, points[2]))
    (a_u, a_v, z0), (b_u, b_v, z1) = corners
    # colour pixel centres c with a <= c < b on each axis
    u0, v0 = np.ceil(a_u).astype(int), np.ceil(a_v).astype(int)
    u1, v1 = np.ceil(b_u).astype(int) - 1, np.ceil(b_v).astype(int) - 1
    zc = 0.5 * (z0 + z1)
    height, width = shape
    out = np.full(height * width, np.inf)
    if z.size == 0:
        return np.zeros(shape, np.float32)
    for dv in range(int((v1 - v0).max()) + 1):
        for du in range(int((u1 - u0).max()) + 1):
            cu, cv = u0 + du, v0 + dv
            keep = (cu <= u1) & (cv <= v1) & (cu >= 0) & (cv >= 0) & (cu < width) & (cv < height)
            np.minimum.at(out, cv[keep] * width + cu[keep], zc[keep])
    return np.where(np.isfinite(out), out, 0.0).reshape(shape).astype(np.float32)


def decode_visp_sr300(files: dict[str, bytes], entry: dict[str, Any]) -> Decoded:
    """ViSP's SR300 frame pair (PGM image + raw uint16 depth) as (grey uint8, registered m)."""
    grey = np.asarray(Image.open(BytesIO(files["colour"])))
    height, width = struct.unpack_from("<II", files["depth"])
    raw = np.frombuffer(files["depth"], "<u2", height * width, 8).reshape(height, width)
    calib = entry["calibration"]
    depth = register_depth(
        raw * calib["depth_scale_m"],
        calib["depth_intrinsics"],
        calib["colour_intrinsics"],
        np.asarray(calib["depth_M_colour"]),
        grey.shape[:2],
    )
    return grey, depth


def _single_file(decode: Callable[[bytes], Decoded]) -> Decoder:
    """Adapt a decoder of one file holding both colour and depth."""
    return lambda files, entry: decode(files["depth"])


#: Manifest ``format`` -> decoder of the verified files (by role) and the scene's entry.
DECODERS: dict[str, Decoder] = {
    "pcd_organized": _single_file(decode_pcd),
    "mrpt_rawlog_3d": _single_file(decode_mrpt_rangescan),
    "visp_sr300": decode_visp_sr300,
}
