# SPDX-License-Identifier: Apache-2.0
"""RGB-D test scenes with real geometry and real texture.

Every scene's inverse depth is mapped affinely onto a working range ``[near, far]`` metres, so
the same scene serves any camera. Unknown ground truth stays NaN.

* ``motorcycle``: Middlebury 2014 (``skimage.data.stereo_motorcycle``), left view + GT
  disparity (disparity is proportional to inverse depth).
* ``aloe``: Middlebury 2006 Aloe from Debian's ``opencv-doc`` (``aloeL.jpg`` + ``aloeGT.png``,
  0 = unknown).
* ``layered``: three fronto-parallel photo-textured layers (far wall: astronaut, mid card:
  coffee, near disk: chelsea) with occlusion boundaries.
* ``slanted``: one photo (rocket) on a plane slanted from the near to the far end of the range.

The photo textures (``rocket``, ``coffee``, ``chelsea``, ``astronaut`` from ``skimage.data``) are
held out of the diffusion prior's training set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
from skimage.io import imread
from skimage.transform import resize

#: Where Debian's opencv-doc puts the Aloe pair; override with CODEDAP_OPENCV_DATA.
OPENCV_DATA = Path(
    os.environ.get("CODEDAP_OPENCV_DATA", "/usr/share/doc/opencv-doc/examples/data")
)


@dataclass(frozen=True)
class Scene:
    """An RGB-D scene at the working resolution.

    Attributes:
        name: scene name.
        rgb: [H, W, 3] float32 all-in-focus image, [0, 1] intensities.
        depth: [H, W] float32 metres along the optical axis, NaN where unknown.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray


def load_scene(name: str, depth_range: tuple[float, float], size: tuple[int, int]) -> Scene:
    """Build scene ``name`` at ``size = (width, height)`` px over ``depth_range`` metres."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; choose from {sorted(SCENES)}")
    rgb, inverse = SCENES[name](size)
    return scene_from_inverse(name, rgb, inverse, depth_range)


def scene_from_inverse(
    name: str, rgb: np.ndarray, inverse: np.ndarray, depth_range: tuple[float, float]
) -> Scene:
    """A scene from an image and its relative inverse depth, mapped onto ``depth_range`` metres.

    Args:
        name: scene name.
        rgb: [H, W, 3] float32 image, [0, 1] intensities, already at the working size.
        inverse: [H, W] relative inverse depth (any positive affine scale, NaN = unknown).
        depth_range: ``(near, far)`` metres; the finite ``inverse`` range is mapped onto
            ``[1 / far, 1 / near]``.
    """
    near, far = depth_range
    if not 0 < near < far:
        raise ValueError(f"depth range must satisfy 0 < near < far, got {depth_range}")
    return Scene(name=name, rgb=rgb, depth=_to_metres(inverse, near, far))


def scene_from_files(rgb_path: str | Path, depth_path: str | Path, size: tuple[int, int]) -> Scene:
    """A user scene: an RGB image file and a ``.npy`` depth map in metres (NaN = unknown)."""
    rgb = _as_rgb01(imread(rgb_path))
    depth = np.load(depth_path, allow_pickle=False)
    if depth.ndim != 2 or depth.shape != rgb.shape[:2]:
        raise ValueError(
            f"{depth_path}: depth must be [H, W] matching {rgb_path} ({rgb.shape[:2]}), "
            f"got {depth.shape}"
        )
    finite = depth[np.isfinite(depth)]
    if finite.size == 0 or np.any(finite <= 0):
        raise ValueError(f"{depth_path}: depth must hold positive metres (NaN = unknown)")
    rgb, depth = _fit(rgb, size), _fit(depth.astype(np.float32), size, nearest=True)
    return Scene(name=Path(rgb_path).stem, rgb=rgb, depth=depth)


def fill_unknown(depth: np.ndarray) -> np.ndarray:
    """Depth with NaNs replaced by the nearest known value (for rendering, not for scoring)."""
    from scipy.ndimage import distance_transform_edt

    unknown = ~np.isfinite(depth)
    if not unknown.any():
        return depth
    if unknown.all():
        raise ValueError("depth map has no known pixel")
    index = distance_transform_edt(unknown, return_distances=False, return_indices=True)
    return depth[tuple(index)]


def _to_metres(inverse: np.ndarray, near: float, far: float) -> np.ndarray:
    """Affine map of relative inverse depth (NaN kept) onto [1/far, 1/near], then to metres."""
    finite = inverse[np.isfinite(inverse)]
    lo, hi = float(finite.min()), float(finite.max())
    unit = (inverse - lo) / max(hi - lo, 1e-12)
    return (1.0 / (1.0 / far + unit * (1.0 / near - 1.0 / far))).astype(np.float32)


def _as_rgb01(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0 if image.dtype == np.uint8 else 1.0
    image = image.astype(np.float32) / scale
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def _fit(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to cover ``size = (W, H)`` keeping the aspect ratio, then centre-crop."""
    width, height = size
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    out = resize(
        image,
        (new_h, new_w) + image.shape[2:],
        order=0 if nearest else 1,
        anti_aliasing=not nearest,
        preserve_range=True,
    ).astype(np.float32)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return out[top : top + height, left : left + width]


def _motorcycle(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    left, _, disparity = skimage.data.stereo_motorcycle()
    disparity = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
    return _fit(_as_rgb01(left), size), _fit(disparity, size, nearest=True)


def _aloe(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    left, truth = OPENCV_DATA / "aloeL.jpg", OPENCV_DATA / "aloeGT.png"
    if not (left.is_file() and truth.is_file()):
        raise FileNotFoundError(
            f"Aloe scene needs {left} and {truth}: install Debian's opencv-doc "
            "(`sudo apt-get install opencv-doc`) or point CODEDAP_OPENCV_DATA at a folder "
            "holding aloeL.jpg and aloeGT.png"
        )
    disparity = imread(truth).astype(np.float32)
    disparity[disparity == 0] = np.nan
    return _fit(_as_rgb01(imread(left)), size), _fit(disparity, size, nearest=True)


def _layered(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    rgb = _fit(_as_rgb01(skimage.data.astronaut()), size)
    inverse = np.full((height, width), 0.0, np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    card = (xx > 0.08 * width) & (xx < 0.6 * width) & (yy > 0.15 * height) & (yy < 0.85 * height)
    rgb[card] = _fit(_as_rgb01(skimage.data.coffee()), size)[card]
    inverse[card] = 0.45
    disk = (xx - 0.68 * width) ** 2 + (yy - 0.55 * height) ** 2 < (0.3 * height) ** 2
    rgb[disk] = _fit(_as_rgb01(skimage.data.chelsea()), size)[disk]
    inverse[disk] = 1.0
    return rgb, inverse


def _slanted(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    rgb = _fit(_as_rgb01(skimage.data.rocket()), size)
    inverse = np.tile(np.linspace(1.0, 0.0, width, dtype=np.float32), (height, 1))
    return rgb, inverse


SCENES: dict[str, Callable[[tuple[int, int]], tuple[np.ndarray, np.ndarray]]] = {
    "motorcycle": _motorcycle,
    "aloe": _aloe,
    "layered": _layered,
    "slanted": _slanted,
}
