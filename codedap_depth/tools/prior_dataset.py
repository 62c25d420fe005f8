# SPDX-License-Identifier: Apache-2.0
"""Build the prior's training archive from real photographs that ship offline.

Every photo comes from a package that is reachable without a model hub or data-set host:
Python packages installed in the project's virtualenv, wheels fetched with ``pip download``
(read straight out of the zip, never installed) and Debian packages fetched with
``apt-get download`` (read straight out of the ``.deb``'s ``data.tar``, never installed).

Each candidate image file is curated explicitly in :data:`SOURCES` (kept, or dropped with a
reason); a file the table does not mention stops the build, so a new package version is
reviewed by a person before it changes the data. Photos are downscaled (antialiased) so the
shorter side is at most :data:`MAX_SHORT_SIDE` pixels, converted to RGB uint8 (greyscale
replicated) and stored as lossless WebP bytes in ``photos.npz`` (no pickle). The manifest,
committed beside this file, records each file's package, version, path and sha256 of the
original bytes.

Usage::

    python -m codedap_depth.tools.prior_dataset --out .prior_data          # build
    python -m codedap_depth.tools.prior_dataset --out .prior_data --check  # rebuild, diff
"""

from __future__ import annotations

import argparse
import bz2
import fnmatch
import functools
import hashlib
import importlib.metadata
import io
import json
import lzma
import os
import shlex
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from codedap_depth.tools.qt_resources import read_qt_resources

#: The committed manifest, shipped beside the prior it trained (package data of ``prior``).
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "prior" / "manifest.json"
MAX_SHORT_SIDE = 256  # pixels; longer photos are downscaled to this shorter side
VAL_FRACTION = 0.10  # of the non-forced photos, by file
SEED = 20240611  # fixed seed for the validation split
IMAGE_EXTS = (
    ".png", ".jpg", ".jpeg", ".webp", ".pgm", ".ppm", ".bmp", ".gif", ".tif", ".svg", ".npz",
    ".npy", ".dat",
)

#: Photos used as evaluation textures elsewhere in the project: always in the validation split.
EVAL_TEXTURES: tuple[str, ...] = (
    "skimage/astronaut",
    "skimage/chelsea",
    "skimage/coffee",
    "skimage/rocket",
)

# Reasons, shared so the manifest reads consistently.
_EVAL = "evaluation data (Middlebury / stereo benchmark scene): never train on it"
_DRAW = "drawing / illustration, not a photograph"
_ABST = "abstract or vector art, not a photograph"
_SYNTH = "synthetic render or generated pattern"
_CALIB = "calibration board / chessboard"
_TEXT = "text page or printed document"
_MICRO = "microscopy / medical / astronomical image, not a scene"
_BLUR = "deliberately blurred photo (motion or defocus)"
_TINY = "too small to crop (< 64 px)"
_LOGO = "logo / icon"
_PAINT = "painting, not a photograph"
_SPRITE = "cut-out sprite on a transparent background, not a scene"
_GCOMPRIS = "usr/share/gcompris-qt/rcc"  # GCompris' Qt resource archives, one per activity


def _dup(of: str) -> str:
    return f"near-duplicate of {of}"


@dataclass(frozen=True)
class Source:
    """One package that ships photos, and the curation of every image file in it.

    Attributes:
        name: short name used in photo names (``name/stem``).
        kind: ``"venv"`` (installed Python distribution), ``"wheel"`` (``pip download``) or
            ``"deb"`` (``apt-get download``).
        package: distribution / Debian package name.
        version: exact version fetched (``"venv"``: the installed version is read instead).
        dirs: directories inside the package whose image files are candidates (not recursive).
        decisions: ``(glob on the file name, "keep" | reason to drop)``, first match wins.
        wallpaper_sets: for KDE-style ``NAME/contents/images/WxH.ext`` trees, keep one file per
            NAME (the largest) and curate by NAME.
        qt_resources: the package's ``.rcc`` files are Qt resource archives: each member is a
            file at ``ARCHIVE.rcc/INNER/PATH`` (so ``dirs`` name folders inside an archive).
    """

    name: str
    kind: str
    package: str
    version: str
    dirs: tuple[str, ...]
    decisions: tuple[tuple[str, str], ...]
    wallpaper_sets: bool = False
    qt_resources: bool = False


KEEP = "keep"

SOURCES: tuple[Source, ...] = (
    Source(
        "skimage", "venv", "scikit-image", "", ("skimage/data",),
        (
            ("astronaut.png", KEEP), ("brick.png", KEEP), ("camera.png", KEEP),
            ("chelsea.png", KEEP), ("coffee.png", KEEP), ("coins.png", KEEP),
            ("grass.png", KEEP), ("gravel.png", KEEP), ("moon.png", KEEP), ("rocket.jpg", KEEP),
            ("motorcycle_*", _EVAL), ("chessboard_*", _CALIB), ("clock_motion.png", _BLUR),
            ("cell.png", _MICRO), ("hubble_deep_field.jpg", _MICRO), ("ihc.png", _MICRO),
            ("microaneurysms.png", _MICRO), ("retina.jpg", _MICRO), ("color.png", _SYNTH),
            ("horse.png", _DRAW), ("logo.png", _LOGO), ("phantom.png", _SYNTH),
            ("page.png", _TEXT), ("text.png", _TEXT), ("no_time_for_that_tiny.gif", _TINY),
            ("motorcycle_disp.npz", _EVAL), ("multipage*.tif", _TINY),
            ("lfw_subset.npy", _TINY + " (25x25 face crops)"),
        ),
    ),
    Source(
        "matplotlib", "venv", "matplotlib", "", ("matplotlib/mpl-data/sample_data",),
        (
            ("grace_hopper.jpg", KEEP), ("Minduka_Present_Blue_Pack.png", _DRAW),
            ("logo2.png", _LOGO), ("*.npz", "not a photograph (elevation / stock data)"),
            ("*.dat", "not an image (signal data)"),
        ),
    ),
    Source(
        "sklearn", "venv", "scikit-learn", "", ("sklearn/datasets/images",),
        (("china.jpg", KEEP), ("flower.jpg", KEEP)),
    ),
    Source(
        "pywt", "wheel", "PyWavelets", "1.9.0", ("pywt/data",),
        (
            ("aero.npz", KEEP), ("ascent.npz", KEEP), ("camera.npz", _dup("skimage/camera")),
            ("ecg.npz", "1-D signal"), ("sst_nino3.npz", "1-D signal"),
        ),
    ),
    Source(
        "scipy", "wheel", "scipy", "1.9.3", ("scipy/misc",),
        (
            ("face.dat", KEEP), ("ascent.dat", _dup("pywt/ascent") + " (and a pickle)"),
            ("ecg.dat", "1-D signal"),
        ),
    ),
    Source(
        "sporco", "wheel", "sporco", "0.2.2.post1", ("sporco/data",),
        (
            ("barbara.png", KEEP), ("kodim23.png", KEEP), ("monarch.png", KEEP),
            ("sail.png", KEEP), ("tulips.png", KEEP), ("convdict.npz", "dictionary, not a photo"),
        ),
    ),
    Source(
        "plenoptic", "wheel", "plenoptic", "2.1.1", ("plenoptic/data",),
        (
            ("curie.pgm", KEEP), ("einstein.pgm", KEEP),
            ("macaca_nigra_self-portrait.jpg", KEEP), ("reptile_skin.pgm", KEEP),
            ("parrot.png", _dup("sporco/kodim23") + " (grey crop)"), ("color_wheel.jpg", _SYNTH),
        ),
    ),
    Source(
        "mahotas", "wheel", "mahotas", "1.4.19", ("mahotas/demos/data",),
        (
            ("luispedro.jpg", KEEP), ("DepartmentStore.jpg", _DRAW), ("nuclear.png", _MICRO),
            ("lena.jpg", "retired test image (subject asked for it to be withdrawn)"),
        ),
    ),
    Source(
        "imgaug", "wheel", "imgaug", "0.4.0", ("imgaug",),
        (("quokka.jpg", KEEP), ("quokka_depth_map_halfres.png", "depth map, not a photo")),
    ),
    Source(
        "opencv-doc", "deb", "opencv-doc", "4.6.0+dfsg-12",
        ("usr/share/doc/opencv-doc/examples/data",),
        (
            ("aero1.jpg", KEEP), ("aero3.jpg", _dup("opencv-doc/aero1")), ("apple.jpg", KEEP),
            ("baboon.jpg", KEEP), ("board.jpg", KEEP), ("box.png", KEEP),
            ("box_in_scene.png", KEEP), ("building.jpg", KEEP), ("butterfly.jpg", KEEP),
            ("chicky_512.png", KEEP), ("fruits.jpg", KEEP), ("graf1.png", KEEP),
            ("graf3.png", _dup("opencv-doc/graf1")), ("home.jpg", KEEP), ("leuvenA.jpg", KEEP),
            ("leuvenB.jpg", _dup("opencv-doc/leuvenA")), ("messi5.jpg", KEEP),
            ("orange.jpg", KEEP), ("squirrel_cls.jpg", KEEP), ("stuff.jpg", KEEP),
            ("aloe*", _EVAL), ("basketball?.png", _EVAL + " (optical flow)"),
            ("rubberwhale?.png", _EVAL + " (optical flow)"),
            ("left.jpg", "stereo pair"), ("right.jpg", "stereo pair"),
            ("left[0-9]*.jpg", _CALIB), ("right[0-9]*.jpg", _CALIB), ("chessboard.png", _CALIB),
            ("Blender_Suzanne*", _SYNTH), ("blox.jpg", _SYNTH), ("cards.png", _SYNTH),
            ("smarties.png", _SYNTH), ("pca_test1.jpg", _SYNTH), ("pic?.png", _SYNTH),
            ("ml.png", _SYNTH), ("gradient.png", _SYNTH), ("ellipses.jpg", _SYNTH),
            ("detect_blob.png", _SYNTH), ("HappyFish.jpg", _DRAW),
            ("starry_night.jpg", _PAINT), ("LinuxLogo.jpg", _LOGO),
            ("WindowsLogo.jpg", _LOGO), ("opencv-logo*.png", _LOGO), ("digits.png", _TEXT),
            ("imageText?.png", _TEXT), ("ela_*.jpg", _TEXT), ("notes.png", _TEXT),
            ("sudoku.png", _TEXT), ("text_*.jpg", _BLUR + " of text"),
            ("licenseplate_motion.jpg", _BLUR), ("mask.png", "binary mask"),
            ("templ.png", "binary mask"), ("tmpl.png", "binary mask"),
        ),
    ),
    Source(
        "mate-backgrounds", "deb", "mate-backgrounds", "1.26.0-1",
        (
            "usr/share/backgrounds/mate/nature", "usr/share/backgrounds/mate/abstract",
            "usr/share/backgrounds/mate/desktop",
        ),
        (
            ("nature/*.jpg", KEEP), ("abstract/*", _ABST), ("desktop/*", _ABST),
        ),
    ),
    Source(
        "lomiri-wallpapers-16.04", "deb", "lomiri-wallpapers-16.04", "20.04.0-2",
        ("usr/share/backgrounds",),
        (
            ("analogpattern_by_Peter_Nerlich.jpg", _ABST),
            ("greentock_by_Peter_Nerlich.jpg", _SYNTH), ("umang_by_Abhishek_Mudgal.jpg", _ABST),
            ("*.jpg", KEEP),
        ),
    ),
    Source(
        "lomiri-wallpapers-20.04", "deb", "lomiri-wallpapers-20.04", "20.04.0-2",
        ("usr/share/backgrounds",),
        (("Kleiber_by_Lukas_Baubkus.jpg", KEEP), ("*", _ABST)),
    ),
    Source(
        "lomiri-wallpapers", "deb", "lomiri-wallpapers", "20.04.0-2", ("usr/share/backgrounds",),
        (("*", _ABST),),
    ),
    Source(
        "ukui-wallpapers", "deb", "ukui-wallpapers", "20.04.3-1.1", ("usr/share/backgrounds",),
        (("*", _ABST),),
    ),
    Source(
        "gnome-backgrounds", "deb", "gnome-backgrounds", "43.1-1",
        ("usr/share/backgrounds/gnome",),
        (("*", _ABST),),
    ),
    Source(
        "plasma-workspace-wallpapers", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
        ("usr/share/wallpapers",),
        (
            ("BytheWater", KEEP), ("ColdRipple", KEEP), ("ColorfulCups", KEEP),
            ("DarkestHour", KEEP), ("EveningGlow", KEEP), ("FallenLeaf", KEEP), ("Grey", KEEP),
            ("Kite", KEEP), ("OneStandsOut", KEEP), ("Path", KEEP), ("summer_1am", KEEP),
            ("Autumn", "digital painting, not a photograph"), ("SafeLanding", _DRAW),
            ("*", _ABST),
        ),
        wallpaper_sets=True,
    ),
    *(
        Source(f"gcompris-{name}", "deb", "gcompris-qt-data", "3.1-2",
               tuple(f"{_GCOMPRIS}/{activity}.rcc/gcompris/src/activities/{activity}/{d}"
                     for d in folders),
               decisions, qt_resources=True)
        for name, activity, folders, decisions in (
            ("erase", "erase", ("resource",), (("*.webp", KEEP), ("*.svg", _DRAW))),
            ("farm-animals", "explore_farm_animals", ("resource/animals",),
             (("*.webp", KEEP), ("*.svg", _DRAW))),
            ("world-animals", "explore_world_animals", ("resource/animals",),
             (("*.webp", KEEP), ("*.svg", _DRAW))),
            ("monuments", "explore_monuments",
             tuple(f"resource/{c}" for c in ("egypt", "france", "germany", "india", "usa",
                                               "wonders")),
             (("*.webp", KEEP), ("*.svg", _DRAW))),
            ("world-music", "explore_world_music", ("resource/music",),
             (("*.webp", KEEP), ("*.svg", _DRAW))),
            ("categorization", "categorization",
             tuple(f"resource/images/{c}" for c in ("alphabets", "fishes", "monuments",
                                                      "numbers", "others", "renewable",
                                                      "tools")),
             (
                 ("monuments/colosseum.webp", _dup("gcompris-monuments/wonders/colosseum")),
                 ("monuments/brandenburgGate.webp",
                  _dup("gcompris-monuments/germany/brandenburgGate")),
                 ("monuments/greatPyramid.webp",
                  _dup("gcompris-monuments/egypt/greatPyramidOfGiza")),
                 ("*.webp", KEEP), ("*.svg", _DRAW),
             )),
            ("clickgame", "clickgame", ("resource",),
             (("sea?.webp", KEEP), ("*.webp", _SPRITE), ("*.svg", _DRAW))),
            ("details", "details", ("resource/image",),
             (
                 *((f"{stem}_background.webp", KEEP) for stem in (
                     "Chenonceau", "EgeskovSlotSpejling", "EilanDonanCastle", "FanoeWindmill",
                     "GizahPyramids", "Louvre_2007_02_24_c", "NDP", "Nagoya", "OperaSidney",
                     "TajMahal", "TourEiffel", "TowerBridgeLondon")),
                 ("Neuschwanstein_background.webp",
                  _dup("gcompris-monuments/germany/neuschwansteinCastle") + " (another crop)"),
                 ("*_background.webp", _PAINT),
                 ("*.webp", "puzzle piece cut out of one of the backgrounds (a crop)"),
             )),
        )
    ),
)


@dataclass(frozen=True)
class Candidate:
    """One image file found in a source package (before curation)."""

    name: str  # "source/stem"
    source: Source
    version: str
    path: str  # path inside the package (or site-packages for venv sources)
    data: bytes  # original file bytes


@dataclass(frozen=True)
class Photo:
    """A kept photo: manifest record plus its decoded, downscaled RGB pixels."""

    record: dict
    rgb: np.ndarray  # [H, W, 3] uint8


# --------------------------------------------------------------------------------- fetching


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")


def _fetch_wheel(src: Source, cache: Path) -> Path:
    """Download (once) the pinned wheel of ``src`` into ``cache/pypi``; return its path."""
    d = cache / "pypi"
    d.mkdir(parents=True, exist_ok=True)
    stem = src.package.lower().replace("-", "_")

    def find() -> list[Path]:
        return [p for p in d.glob("*.whl")
                if p.name.lower().startswith(f"{stem}-{src.version}-".lower())]

    if not find():
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
              "--python-version", "3.11", "--implementation", "cp", "--platform",
              "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform",
              "manylinux2014_x86_64", "-d", str(d), f"{src.package}=={src.version}"], d)
    found = sorted(find())
    if not found:
        raise FileNotFoundError(f"pip did not fetch {src.package}=={src.version} into {d}")
    return found[0]


def _fetch_deb(src: Source, cache: Path) -> Path:
    """Download (once) the pinned ``.deb`` of ``src`` into ``cache/apt``; return its path."""
    d = cache / "apt"
    d.mkdir(parents=True, exist_ok=True)
    vers = src.version.split(":", 1)[-1]

    def find() -> list[Path]:
        return [p for p in d.glob(f"{src.package}_*.deb")
                if p.name.split("_")[1].replace("%3a", ":").split(":", 1)[-1] == vers]

    if not find():
        try:
            _run(["apt-get", "download", f"{src.package}={src.version}"], d)
        except RuntimeError as err:
            raise RuntimeError(
                f"could not fetch Debian package {src.package}={src.version} "
                f"(run 'apt-get update'; if the archive moved on, the pinned version "
                f"{src.version} differs from what apt offers: "
                f"'apt-cache policy {src.package}')\n{err}") from err
    return sorted(find())[0]


def _deb_members(deb: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` of every regular file in a ``.deb``'s data archive."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not an ar archive")
    pos = 8
    while pos < len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if not name.startswith("data.tar"):
            continue
        if name.endswith(".xz"):
            body = lzma.decompress(body)
        elif not name.endswith(".tar"):
            body = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                  capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            for m in tar:
                if m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    yield m.name.removeprefix("./"), f.read()
        return
    raise ValueError(f"{deb} has no data.tar member")


def _expand_qt_resources(files: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    """Replace each ``.rcc`` file by its members, at ``ARCHIVE.rcc/INNER/PATH``."""
    for path, data in files:
        if path.endswith(".rcc"):
            for inner, body in sorted(read_qt_resources(data, path).items()):
                yield f"{path}/{inner}", body
        else:
            yield path, data


@functools.lru_cache(maxsize=1)
def _qt_resource_files(deb: Path) -> tuple[tuple[str, bytes], ...]:
    """Every file of a ``.deb``, its Qt resource archives expanded; kept for the next source,
    since GCompris' activities are several sources of one package (read once, not 8 times)."""
    return tuple(_expand_qt_resources(_deb_members(deb)))


def _package_files(src: Source, cache: Path) -> tuple[str, Iterator[tuple[str, bytes]]]:
    """Return ``(version, iterator of (path, bytes))`` over all files of a source package."""
    if src.kind == "venv":
        dist = importlib.metadata.distribution(src.package)
        files = [f for f in dist.files or []
                 if any(str(f).startswith(d + "/") for d in src.dirs)]

        def it() -> Iterator[tuple[str, bytes]]:
            for f in files:
                yield str(f), Path(dist.locate_file(f)).read_bytes()

        return dist.version, it()
    if src.kind == "wheel":
        whl = _fetch_wheel(src, cache)

        def itw() -> Iterator[tuple[str, bytes]]:
            with zipfile.ZipFile(whl) as z:
                for n in sorted(z.namelist()):
                    yield n, z.read(n)

        return src.version, itw()
    if src.kind == "deb":
        deb = _fetch_deb(src, cache)
        if src.qt_resources:
            return src.version, iter(_qt_resource_files(deb))
        return src.version, _deb_members(deb)
    raise ValueError(f"unknown source kind {src.kind!r}")


def _image_size(data: bytes) -> tuple[int, int]:
    """Width, height (pixels) of an image file's bytes (header only)."""
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def gather_candidates(cache: Path) -> Iterator[Candidate]:
    """Yield every candidate image file of every source, in a fixed order."""
    for src in SOURCES:
        version, files = _package_files(src, cache)
        chosen: dict[str, tuple[str, bytes]] = {}
        for path, data in files:
            base = next((d for d in src.dirs if path.startswith(d + "/")), None)
            if base is None or not path.lower().endswith(IMAGE_EXTS):
                continue
            rel = path[len(base) + 1:]
            if src.wallpaper_sets:
                parts = rel.split("/")
                if len(parts) != 4 or parts[1:3] != ["contents", "images"]:
                    continue
                key = parts[0]
                if key in chosen:  # keep the largest rendition of each wallpaper
                    w0, h0 = _image_size(chosen[key][1])
                    w1, h1 = _image_size(data)
                    if w1 * h1 <= w0 * h0:
                        continue
                chosen[key] = (path, data)
            else:
                if "/" in rel:
                    continue
                top = base.rsplit("/", 1)[-1] if len(src.dirs) > 1 else ""
                chosen[f"{top}/{rel}" if top else rel] = (path, data)
        for key in sorted(chosen):
            path, data = chosen[key]
            stem = key.rsplit(".", 1)[0] if not src.wallpaper_sets else key
            yield Candidate(f"{src.name}/{stem}", src, version, path, data)


def decide(cand: Candidate) -> str:
    """``"keep"`` or the reason the candidate is dropped; raises if it is not curated."""
    key = cand.name.split("/", 1)[1]
    fname = cand.path.rsplit("/", 1)[-1]
    for pattern, verdict in cand.source.decisions:
        subject = key if cand.source.wallpaper_sets else (
            key.rsplit("/", 1)[0] + "/" + fname if "/" in key else fname)
        if fnmatch.fnmatchcase(subject, pattern):
            return verdict
    raise ValueError(f"uncurated image {cand.source.package}:{cand.path}: add it to SOURCES "
                     "(keep it, or drop it with a reason) after looking at it")


# --------------------------------------------------------------------------------- decoding


def _decode(path: str, data: bytes) -> np.ndarray:
    """Decode an image file's bytes to uint8 ``[H, W, C]`` (C = 1 or 3)."""
    if path.endswith(".npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arr = z[z.files[0]]
        if arr.ndim < 2:
            raise ValueError(f"{path}: not an image ({arr.shape})")
        return np.asarray(arr, dtype=np.uint8).reshape(arr.shape[0], arr.shape[1], -1)
    if path.endswith("misc/face.dat"):  # scipy: bz2 of raw RGB bytes, 768x1024
        return np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3)
    if path.endswith(".dat"):
        raise ValueError(f"{path}: not a raw image")
    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        if im.mode in ("L", "I;16", "I", "F"):
            a = np.asarray(im.convert("F"), np.float32)
            if im.mode != "L" and a.max() > 255:
                a = a * (255.0 / 65535.0)
            return np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., None]
        return np.asarray(im.convert("RGB"), np.uint8)


def to_rgb_small(img: np.ndarray, max_short: int = MAX_SHORT_SIDE) -> np.ndarray:
    """Downscale (PIL Lanczos, antialiased) so min(H, W) <= ``max_short``; RGB uint8 out.

    Args:
        img: uint8 ``[H, W, 1]`` or ``[H, W, 3]``.
        max_short: maximum shorter side, pixels.
    Returns:
        uint8 ``[H', W', 3]``; greyscale is replicated to 3 channels.
    """
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    h, w = img.shape[:2]
    s = min(h, w)
    if s > max_short:
        nw, nh = round(w * max_short / s), round(h * max_short / s)
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(img, dtype=np.uint8)


def _lossless_webp(img: np.ndarray) -> bytes:
    """Lossless WebP bytes of an RGB uint8 image (about 0.73x the size of PNG on these photos,
    so the archive fits beside the code that travels to a lent GPU)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", lossless=True, quality=80, method=4)
    return buf.getvalue()


# --------------------------------------------------------------------------------- building


def _split_rank(name: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def assign_splits(names: list[str], seed: int = SEED,
                  val_fraction: float = VAL_FRACTION) -> dict[str, str]:
    """Map each photo name to ``"train"`` or ``"val"``.

    :data:`EVAL_TEXTURES` are always ``"val"``; of the others, ``round(val_fraction * n)``
    (at least 1) go to ``"val"``, chosen by a seeded hash of the name, so adding a photo does
    not reshuffle the rest.
    """
    rest = sorted((n for n in names if n not in EVAL_TEXTURES), key=lambda n: _split_rank(n, seed))
    n_val = max(1, round(val_fraction * len(rest)))
    val = set(rest[:n_val]) | {n for n in names if n in EVAL_TEXTURES}
    return {n: ("val" if n in val else "train") for n in names}


def build(cache: Path, command: str) -> tuple[dict, list[Photo]]:
    """Gather, curate, decode and split every photo. Returns ``(manifest, kept photos)``."""
    kept: list[tuple[dict, np.ndarray]] = []
    dropped: list[dict] = []
    seen: dict[str, str] = {}
    sources: dict[str, dict] = {}
    for cand in gather_candidates(cache):
        sources[cand.source.name] = {"package": cand.source.package, "kind": cand.source.kind,
                                     "version": cand.version}
        sha = hashlib.sha256(cand.data).hexdigest()
        base = {"name": cand.name, "source": cand.source.package, "kind": cand.source.kind,
                "version": cand.version, "path": cand.path, "sha256": sha,
                "bytes": len(cand.data)}
        verdict = decide(cand)
        if verdict == KEEP and sha in seen:
            verdict = _dup(seen[sha]) + " (identical bytes)"
        if verdict != KEEP:
            dropped.append({**base, "split": "dropped", "reason": verdict})
            continue
        seen[sha] = cand.name
        img = _decode(cand.path, cand.data)
        small = to_rgb_small(img)
        kept.append(({**base, "original_size": [img.shape[1], img.shape[0]],
                      "channels": int(img.shape[2]),
                      "stored_size": [small.shape[1], small.shape[0]]}, small))
    missing = [n for n in EVAL_TEXTURES if n not in {r["name"] for r, _ in kept}]
    if missing:
        raise ValueError(f"evaluation textures missing from the kept photos: {missing}")
    splits = assign_splits([r["name"] for r, _ in kept])
    photos = [Photo({**r, "split": splits[r["name"]]}, a) for r, a in kept]
    counts: dict[str, dict[str, int]] = {}
    for p in photos:
        c = counts.setdefault(p.record["source"], {"train": 0, "val": 0})
        c[p.record["split"]] += 1
    manifest = {
        "format": "codedap_depth prior photos v1",
        "command": command,
        "sha256_of": "the original file bytes inside the package (wheel / .deb member / "
                     "installed file), before decoding",
        "max_short_side": MAX_SHORT_SIDE,
        "resample": "PIL Lanczos (antialiased) to shorter side <= max_short_side; RGB uint8, "
                    "greyscale replicated",
        "stored_as": "lossless WebP",
        "seed": SEED,
        "val_fraction": VAL_FRACTION,
        "eval_textures": list(EVAL_TEXTURES),
        "sources": sources,
        "counts": {"train": sum(p.record["split"] == "train" for p in photos),
                   "val": sum(p.record["split"] == "val" for p in photos),
                   "dropped": len(dropped), "per_source": counts},
        "photos": [p.record for p in photos],
        "dropped": dropped,
    }
    return manifest, photos


def write_archive(photos: list[Photo], path: Path) -> None:
    """Write ``photos.npz``: ``train_NNNN`` / ``val_NNNN`` lossless WebP bytes (uint8 arrays)
    + name arrays."""
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "val"):
        sel = [p for p in photos if p.record["split"] == split]
        for i, p in enumerate(sel):
            arrays[f"{split}_{i:04d}"] = np.frombuffer(_lossless_webp(p.rgb), np.uint8)
        arrays[f"{split}_names"] = np.array([p.record["name"] for p in sel], dtype=np.str_)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_archive(path: Path, split: str) -> list[tuple[str, np.ndarray]]:
    """Decode one split of ``photos.npz`` to ``[(name, uint8 [H, W, 3])]`` (no pickle)."""
    out = []
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z[f"{split}_names"]]
        for i, n in enumerate(names):
            with Image.open(io.BytesIO(z[f"{split}_{i:04d}"].tobytes())) as im:
                out.append((n, np.array(im.convert("RGB"), np.uint8)))
    return out


def diff_manifests(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two manifests (the command line is ignored)."""
    lines = []
    for name, s in sorted(new.get("sources", {}).items()):
        o = old.get("sources", {}).get(name)
        if o is None:
            lines.append(f"source {name}: new ({s['package']} {s['version']})")
        elif o["version"] != s["version"]:
            lines.append(f"source {name}: package {s['package']} version differs: committed "
                         f"{o['version']}, now {s['version']}")
    for name in sorted(set(old.get("sources", {})) - set(new.get("sources", {}))):
        lines.append(f"source {name}: no longer present")

    def by_name(m: dict) -> dict[str, dict]:
        return {r["name"]: r for r in m.get("photos", []) + m.get("dropped", [])}

    o, n = by_name(old), by_name(new)
    for k in sorted(set(o) | set(n)):
        if k not in n:
            lines.append(f"{k}: missing from the rebuild")
        elif k not in o:
            lines.append(f"{k}: new in the rebuild ({n[k]['split']})")
        elif o[k] != n[k]:
            fields = sorted(f for f in set(o[k]) | set(n[k]) if o[k].get(f) != n[k].get(f))
            lines.append(f"{k}: " + ", ".join(
                f"{f} {o[k].get(f)!r} -> {n[k].get(f)!r}" for f in fields))
    for key in ("max_short_side", "resample", "stored_as", "seed", "val_fraction",
                "eval_textures", "format"):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".prior_data"),
                    help="output folder for photos.npz (git-ignored)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="download cache (default: OUT/cache)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST_PATH,
                    help="manifest to write (or, with --check, to compare against)")
    ap.add_argument("--check", action="store_true",
                    help="rebuild, compare with the committed manifest, write nothing")
    args = ap.parse_args(argv)
    # absolute: the downloads run with the cache folder as their working directory
    cache = (args.cache or args.out / "cache").resolve()
    command = "python -m codedap_depth.tools.prior_dataset --out .prior_data"
    manifest, photos = build(cache, command)
    if args.check:
        old = json.loads(args.manifest.read_text())
        diffs = diff_manifests(old, manifest)
        for line in diffs:
            print(line)
        print(f"manifest check: {'OK, identical' if not diffs else f'{len(diffs)} differences'}"
              f" ({manifest['counts']['train']} train, {manifest['counts']['val']} val, "
              f"{manifest['counts']['dropped']} dropped)")
        return 1 if diffs else 0
    write_archive(photos, args.out / "photos.npz")
    args.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    size = (args.out / "photos.npz").stat().st_size
    print(f"{manifest['counts']['train']} train + {manifest['counts']['val']} val photos, "
          f"{manifest['counts']['dropped']} dropped; {args.out / 'photos.npz'}: "
          f"{size / 2**20:.1f} MiB; manifest: {args.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["EVAL_TEXTURES", "MANIFEST_PATH", "SOURCES", "assign_splits", "build",
           "load_archive", "main", "to_rgb_small"]
