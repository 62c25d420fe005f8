# SPDX-License-Identifier: Apache-2.0
"""Camera model, coded masks, PSF synthesis and the PSF bank file format (v1).

Units: distances in metres, blur sizes in pixels of the *working resolution* (the resolution the
reconstruction runs at), PSFs are non-negative and sum to 1.

Conventions
-----------
* Thin lens: focal length ``f``, f-number ``N`` (aperture diameter ``A = f / N``), focus distance
  ``s``, pixel pitch ``p``. An object at distance ``d`` is blurred to a copy of the mask of
  diameter ``c(d) = A * f / (s - f) * |1 - s / d|`` metres on the sensor, ``c / p`` pixels.
* Objects farther than the focus plane see the mask point-flipped (rotated by 180 degrees)
  relative to objects nearer than it; an asymmetric mask tells the two sides apart.
* A bank holds ``K`` depths uniformly spaced in inverse depth between ``near`` and ``far``.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

#: The project's coded mask: a 13x13 binary pattern, not point-symmetric, chosen by a seeded
#: random search + bit-flip refinement that maximises the smallest Levin-style KL divergence
#: between natural images blurred at neighbouring scales (``depth_discrimination`` scores a
#: mask; the search script was not kept). '#' = open, '.' = opaque; row 0 is the top.
CODED13 = (
    ".###.####.###",
    "#.....####...",
    "#.....#..####",
    "##.###.......",
    "...#........#",
    "..........#.#",
    "..##..##.....",
    "#.......#....",
    "............#",
    ".#...##....##",
    "#####....###.",
    ".#...##..##..",
    "..###.##.#...",
)

BANK_FORMAT_VERSION = 1
_OPTIONAL_SCALARS = ("focal_length", "f_number", "focus_distance", "pixel_pitch")


class BankFormatError(ValueError):
    """A PSF bank file breaks a rule of format v1; the message names the file and the rule."""


@dataclass(frozen=True)
class Camera:
    """Thin-lens coded-aperture camera at the working resolution.

    Attributes:
        focal_length: metres.
        f_number: dimensionless; aperture diameter is ``focal_length / f_number``.
        focus_distance: metres from the lens to the in-focus plane (must exceed the focal length).
        pixel_pitch: metres per pixel at the working resolution (after binning).
        width, height: working resolution in pixels.
        near, far: working depth range in metres.
        num_depths: layers in the synthesised PSF bank.
        mask: ``"open"``, ``"coded13"`` or a path to a greyscale PNG (white = open; relative
            to the camera file when read by ``load_camera``).
        psf_model: ``"geometric"`` or ``"fourier"``.
        psf_size: odd PSF support in pixels.
        wavelengths: metres, one per colour channel (R, G, B); used by the Fourier model.
    """

    focal_length: float
    f_number: float
    focus_distance: float
    pixel_pitch: float
    width: int
    height: int
    near: float
    far: float
    num_depths: int
    mask: str = "coded13"
    psf_model: str = "geometric"
    psf_size: int = 21
    wavelengths: tuple[float, ...] = field(default=(610e-9, 530e-9, 460e-9))

    def __post_init__(self) -> None:
        positive = ("focal_length", "f_number", "focus_distance", "pixel_pitch", "near", "far")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"camera {name} must be a positive number, got {value!r}")
        if self.focus_distance <= self.focal_length:
            raise ValueError("camera focus_distance must exceed focal_length (real image)")
        if not self.near < self.far:
            raise ValueError(f"camera near ({self.near} m) must be below far ({self.far} m)")
        if self.num_depths < 2:
            raise ValueError("camera num_depths must be at least 2")
        if self.psf_size < 3 or self.psf_size % 2 == 0:
            raise ValueError(f"camera psf_size must be odd and >= 3, got {self.psf_size}")
        if self.psf_model not in ("geometric", "fourier"):
            raise ValueError(f"camera psf_model must be geometric or fourier: {self.psf_model}")
        if self.width < 1 or self.height < 1:
            raise ValueError("camera width and height must be positive")

    @property
    def aperture(self) -> float:
        """Aperture diameter in metres."""
        return self.focal_length / self.f_number

    @property
    def fx(self) -> float:
        """Focal length in pixels at the working resolution."""
        return self.focal_length / self.pixel_pitch

    def blur_diameter_px(self, depth: np.ndarray | float) -> np.ndarray:
        """Geometric blur diameter ``c(d) / p`` in pixels for objects at ``depth`` metres."""
        d = np.asarray(depth, dtype=np.float64)
        scale = self.aperture * self.focal_length / (self.focus_distance - self.focal_length)
        return scale * np.abs(1.0 - self.focus_distance / d) / self.pixel_pitch

    def bank_depths(self) -> np.ndarray:
        """``num_depths`` depths in metres, uniform in inverse depth, increasing."""
        inverse = np.linspace(1.0 / self.near, 1.0 / self.far, self.num_depths)
        return (1.0 / inverse).astype(np.float64)


def load_camera(path: str | Path) -> Camera:
    """Read a camera from YAML (keys = ``Camera`` fields); unknown keys are an error."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read camera file ({err.strerror})") from err
    return camera_from_yaml(text, str(path), path.parent)


def camera_from_yaml(text: str, source: str, folder: Path | None = None) -> Camera:
    """A camera from YAML text (``load_camera``'s rules); errors name ``source``. A relative
    mask path is taken relative to ``folder`` (the camera file's) when given."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{source}: camera file must be a YAML mapping")
    known = set(Camera.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{source}: unknown camera keys {sorted(unknown)}; known: "
                         f"{sorted(known)}")
    if "wavelengths" in data:
        data["wavelengths"] = tuple(float(w) for w in data["wavelengths"])
    mask = data.get("mask")
    if (folder is not None and isinstance(mask, str) and mask not in ("open", "coded13")
            and not Path(mask).is_absolute()):
        data["mask"] = str(folder / mask)  # a mask file sits beside its camera file
    try:
        return Camera(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err


def camera_to_yaml(camera: Camera) -> str:
    """The camera as ``load_camera`` YAML."""
    data = dataclasses.asdict(camera)
    data["wavelengths"] = [float(w) for w in camera.wavelengths]
    return yaml.safe_dump(data, sort_keys=False)


def camera_for_size(camera: Camera, width: int, height: int) -> Camera:
    """The same optics and sensor seen at ``width`` x ``height`` px (pixel pitch rescaled).

    Raises:
        ValueError: the aspect ratio differs by more than one pixel.
    """
    if abs(camera.height * width / camera.width - height) > 1.0:
        raise ValueError(f"{width}x{height} px does not keep the camera's "
                         f"{camera.width}x{camera.height} aspect ratio")
    return dataclasses.replace(camera, width=width, height=height,
                               pixel_pitch=camera.pixel_pitch * camera.width / width)


def make_mask(spec: str) -> np.ndarray:
    """A mask transmission pattern in [0, 1], shape [n, n], row 0 at the top.

    Args:
        spec: ``"open"`` (circular aperture), ``"coded13"`` (``CODED13``) or a PNG path.
    """
    if spec == "open":
        n = 65
        yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
        return (xx**2 + yy**2 <= (n / 2) ** 2).astype(np.float64)
    if spec == "coded13":
        return np.array([[c == "#" for c in row] for row in CODED13], dtype=np.float64)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"mask {spec!r} is neither 'open', 'coded13' nor a PNG file")
    from skimage.io import imread

    image = np.asarray(imread(path), dtype=np.float64)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    if image.shape[0] != image.shape[1]:
        raise ValueError(f"{path}: mask image must be square, got {image.shape}")
    peak = image.max()
    if peak <= 0:
        raise ValueError(f"{path}: mask image is fully opaque")
    return image / peak


def geometric_psf(mask: np.ndarray, diameter_px: float, size: int, flipped: bool) -> np.ndarray:
    """Area-integrated geometric PSF: ``mask`` scaled to ``diameter_px``, summing to 1.

    The mask is sampled on a grid ``ss`` times finer than the pixels (``ss`` grows as the blur
    shrinks so every mask cell gets several samples), then box-filtered to pixels.

    Args:
        mask: [n, n] transmission in [0, 1].
        diameter_px: blur diameter in pixels (0 gives a centred delta).
        size: odd output support in pixels.
        flipped: point-flip the mask (objects on the far side of focus).

    Returns:
        [size, size] float64 PSF.
    """
    if size % 2 == 0:
        raise ValueError(f"PSF size must be odd, got {size}")
    if diameter_px > size:
        raise ValueError(f"blur diameter {diameter_px:.1f} px does not fit a {size} px PSF")
    psf = np.zeros((size, size))
    n = mask.shape[0]
    ss = int(min(64, max(8, math.ceil(4 * n / max(diameter_px, 1e-6)))))
    if diameter_px * ss < 1:
        psf[size // 2, size // 2] = 1.0
        return psf
    fine = size * ss
    coords = (np.arange(fine) + 0.5) / ss - size / 2  # pixel units, centre of the PSF at 0
    cols = np.floor(coords / diameter_px * n + n / 2).astype(int)
    inside = (cols >= 0) & (cols < n)
    pattern = mask[::-1, ::-1] if flipped else mask
    hi = np.zeros((fine, fine))
    hi[np.ix_(inside, inside)] = pattern[np.ix_(cols[inside], cols[inside])]
    psf = hi.reshape(size, ss, size, ss).mean(axis=(1, 3))
    total = psf.sum()
    if total <= 0:
        psf[size // 2, size // 2] = 1.0
        return psf
    return psf / total


def fourier_psf(mask: np.ndarray, camera: Camera, depth: float, wavelength: float) -> np.ndarray:
    """Fourier-optics PSF at one wavelength: ``|FFT(pupil)|^2`` resampled to pixels.

    The pupil is the mask amplitude times the defocus phase ``2 pi / lambda * r^2 / 2 *
    (1/d - 1/s)`` (the wave converges to ``1/f - 1/d`` instead of ``1/f - 1/s``). The sensor
    field is sampled ``ss`` times finer than the pixel pitch, with ``ss`` large enough that
    the pupil grid spans twice the aperture, then box-filtered.

    Returns:
        [psf_size, psf_size] float64 PSF summing to 1.
    """
    size = camera.psf_size
    image_distance = 1.0 / (1.0 / camera.focal_length - 1.0 / camera.focus_distance)
    diffraction_px = wavelength * image_distance / camera.aperture / camera.pixel_pitch
    ss = max(2, math.ceil(2 / diffraction_px))
    nfft = 1 << math.ceil(math.log2(2 * size * ss))
    dx = wavelength * image_distance * ss / (camera.pixel_pitch * nfft)  # pupil sample, metres
    coords = (np.arange(nfft) - nfft / 2) * dx
    xx, yy = np.meshgrid(coords, coords)
    n = mask.shape[0]
    cols = np.floor(xx / camera.aperture * n + n / 2).astype(int)
    rows = np.floor(yy / camera.aperture * n + n / 2).astype(int)
    inside = (cols >= 0) & (cols < n) & (rows >= 0) & (rows < n)
    amplitude = np.zeros_like(xx)
    amplitude[inside] = mask[rows[inside], cols[inside]]
    phase = 2 * np.pi / wavelength * (xx**2 + yy**2) / 2 * (1 / depth - 1 / camera.focus_distance)
    field_ = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(amplitude * np.exp(1j * phase))))
    intensity = np.abs(field_) ** 2
    start = nfft // 2 - (size * ss) // 2
    crop = intensity[start : start + size * ss, start : start + size * ss]
    psf = crop.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return psf / psf.sum()


@dataclass(frozen=True)
class PSFBank:
    """A depth-indexed PSF bank (format v1).

    Attributes:
        psfs: float32 [K, C, S, S]; C = 1 applies to every colour channel, C = 3 is R, G, B.
        depths: float32 [K] metres, strictly increasing.
        focal_length, f_number, focus_distance, pixel_pitch: optional metadata (metres / ratio).
        wavelengths: optional float32 [C] metres.
    """

    psfs: np.ndarray
    depths: np.ndarray
    focal_length: float | None = None
    f_number: float | None = None
    focus_distance: float | None = None
    pixel_pitch: float | None = None
    wavelengths: np.ndarray | None = None

    @property
    def num_depths(self) -> int:
        return int(self.psfs.shape[0])

    @property
    def channels(self) -> int:
        return int(self.psfs.shape[1])

    @property
    def size(self) -> int:
        return int(self.psfs.shape[-1])

    @property
    def fx(self) -> float | None:
        """Focal length in pixels, when the bank carries its optics."""
        if self.focal_length is None or self.pixel_pitch is None:
            return None
        return self.focal_length / self.pixel_pitch


def synthesize_bank(camera: Camera) -> PSFBank:
    """PSFs of ``camera`` at ``camera.bank_depths()`` (geometric: C = 1; Fourier: C = 3)."""
    mask = make_mask(camera.mask)
    depths = camera.bank_depths()
    if camera.psf_model == "geometric":
        diameters = camera.blur_diameter_px(depths)
        psfs = [
            [geometric_psf(mask, dia, camera.psf_size, flipped=d > camera.focus_distance)]
            for dia, d in zip(diameters, depths, strict=True)
        ]
    else:
        psfs = [[fourier_psf(mask, camera, d, w) for w in camera.wavelengths] for d in depths]
    return PSFBank(
        psfs=np.asarray(psfs, dtype=np.float32),
        depths=depths.astype(np.float32),
        focal_length=camera.focal_length,
        f_number=camera.f_number,
        focus_distance=camera.focus_distance,
        pixel_pitch=camera.pixel_pitch,
        wavelengths=np.asarray(camera.wavelengths, dtype=np.float32)
        if camera.psf_model == "fourier"
        else None,
    )


def save_bank(bank: PSFBank, path: str | Path) -> None:
    """Write ``bank`` as format v1 ``.npz`` (validated first, so a bad bank is never written)."""
    validate_bank(bank, str(path))
    arrays = {"psfs": bank.psfs.astype(np.float32), "depths": bank.depths.astype(np.float32)}
    for key in _OPTIONAL_SCALARS:
        value = getattr(bank, key)
        if value is not None:
            arrays[key] = np.float64(value)
    if bank.wavelengths is not None:
        arrays["wavelengths"] = bank.wavelengths.astype(np.float32)
    arrays["format_version"] = np.int32(BANK_FORMAT_VERSION)
    np.savez(path, **arrays)


def load_bank(path: str | Path) -> PSFBank:
    """Read and validate a format-v1 PSF bank; errors name the file and the broken rule."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PSF bank file not found")
    if not zipfile.is_zipfile(path):
        raise BankFormatError(f"{path}: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except ValueError as err:
        raise BankFormatError(
            f"{path}: pickled object arrays are not allowed in a PSF bank ({err})"
        ) from err
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        # a bad CRC or a broken compressed member surfaces only when the member is read
        raise BankFormatError(f"{path}: not a readable .npz archive ({err})") from err
    for key in ("psfs", "depths"):
        if key not in contents:
            raise BankFormatError(f"{path}: missing required key '{key}'")
    optional = {}
    for key in _OPTIONAL_SCALARS:
        if key in contents:
            value = contents[key]
            if value.shape != () or not np.isfinite(value) or value <= 0:
                raise BankFormatError(f"{path}: '{key}' must be a positive finite scalar")
            optional[key] = float(value)
    bank = PSFBank(
        psfs=contents["psfs"],
        depths=contents["depths"],
        wavelengths=contents.get("wavelengths"),
        **optional,
    )
    validate_bank(bank, str(path))
    return PSFBank(
        psfs=bank.psfs.astype(np.float32),
        depths=bank.depths.astype(np.float32),
        wavelengths=None if bank.wavelengths is None else bank.wavelengths.astype(np.float32),
        **optional,
    )


def validate_bank(bank: PSFBank, source: str = "<memory>") -> None:
    """Raise ``BankFormatError`` naming ``source`` and the rule if ``bank`` breaks format v1."""
    psfs, depths = np.asarray(bank.psfs), np.asarray(bank.depths)

    def fail(rule: str) -> None:
        raise BankFormatError(f"{source}: {rule}")

    if psfs.dtype.kind != "f":
        fail(f"'psfs' must be a float array, got dtype {psfs.dtype}")
    if psfs.ndim != 4:
        fail(f"'psfs' must have rank 4 [K, C, S, S], got shape {psfs.shape}")
    k, c, s1, s2 = psfs.shape
    if c not in (1, 3):
        fail(f"'psfs' channel count C must be 1 or 3, got {c}")
    if s1 != s2 or s1 % 2 == 0:
        fail(f"'psfs' must be square with odd size S, got {s1}x{s2}")
    if k < 2:
        fail(f"need at least 2 depth layers for depth from defocus, got {k}")
    if not np.all(np.isfinite(psfs)):
        fail("'psfs' contains NaN or Inf")
    if np.any(psfs < 0):
        fail("'psfs' contains negative values")
    sums = psfs.sum(axis=(-1, -2))
    if np.any(np.abs(sums - 1.0) > 1e-3):
        worst = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
        fail(f"each PSF must sum to 1 within 1e-3; psfs[{worst[0]}, {worst[1]}] sums to "
             f"{sums[worst]:.6f}")
    if depths.dtype.kind != "f" or depths.ndim != 1 or depths.shape[0] != k:
        fail(f"'depths' must be a float array of shape [{k}], got {depths.dtype} {depths.shape}")
    if not np.all(np.isfinite(depths)) or np.any(depths <= 0):
        fail("'depths' must be finite and positive (metres)")
    if np.any(np.diff(depths) <= 0):
        fail("'depths' must be strictly increasing")
    if bank.wavelengths is not None:
        wl = np.asarray(bank.wavelengths)
        if wl.shape != (c,) or not np.all(np.isfinite(wl)) or np.any(wl <= 0):
            fail(f"'wavelengths' must be {c} positive finite values (metres)")


def depth_discrimination(mask: np.ndarray, diameters_px: np.ndarray, noise: float = 0.01) -> float:
    """Smallest KL divergence between a 1/f^2 image blurred at neighbouring diameters.

    Levin et al. (2007) score masks by how well blurred natural images separate across blur
    scales; larger is better. Zero-mean Gaussian image model with power ``1/|f|^2`` and white
    noise of std ``noise`` ([0,1] intensities) on a 48x48 grid.
    """
    grid = 48
    f = np.fft.fftfreq(grid)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    power = np.where(f2 > 0, 1.0 / np.where(f2 > 0, f2, 1.0), 0.0)
    noise_power = noise**2 * grid * grid
    psfs = [np.fft.ifftshift(geometric_psf(mask, d, grid - 1, False)) for d in diameters_px]
    spectra = [np.abs(np.fft.fft2(psf, (grid, grid))) ** 2 for psf in psfs]
    scores = []
    for a_k, b_k in zip(spectra[:-1], spectra[1:], strict=True):
        ratio = (a_k * power + noise_power) / (b_k * power + noise_power)
        forward = np.sum(ratio - 1 - np.log(ratio))
        backward = np.sum(1 / ratio - 1 + np.log(ratio))
        scores.append(min(forward, backward))
    return float(min(scores))
