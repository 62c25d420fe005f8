# SPDX-License-Identifier: Apache-2.0
"""Fetch the held-out RGB-D scenes pinned in ``codedap_depth/heldout_manifest.json``.

For each pinned Debian package: ``apt-get download NAME=VERSION`` into ``<out>/archives/``
(run ``apt-get update`` first), stream its data member through ``dpkg-deb --fsys-tarfile``
and write only the manifest's files to ``<out>/<package>/<path>``, then check every sha256.
Nothing is installed. Stops with a message naming the package on any difference.

    python tools/fetch_heldout.py [--out .heldout_data]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

from codedap_depth.heldout import DEFAULT_DATA_DIR, load_manifest, verified_bytes


def wanted_files(manifest: dict) -> dict[tuple[str, str], dict[str, str]]:
    """``(package, version) -> {path inside: sha256}`` over all scenes (all are .deb)."""
    wanted: dict[tuple[str, str], dict[str, str]] = {}
    for scene in manifest["scenes"]:
        if scene["kind"] != "deb":
            raise SystemExit(f"{scene['name']}: archive kind {scene['kind']!r} is not supported")
        files = wanted.setdefault((scene["package"], scene["version"]), {})
        files.update({spec["path"]: spec["sha256"] for spec in scene["files"].values()})
    return wanted


def _cached_deb(package: str, version: str, archives: Path) -> Path | None:
    """A ``.deb`` in ``archives`` whose control fields say ``package`` ``version``, if any."""
    for deb in sorted(archives.glob(f"{package}_*.deb")):
        fields = subprocess.run(
            ["dpkg-deb", "--show", "--showformat=${Package} ${Version}", str(deb)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if fields == f"{package} {version}":
            return deb
    return None


def download_deb(package: str, version: str, archives: Path) -> Path:
    """The ``.deb`` of ``package=version`` in ``archives``, downloaded with apt-get if absent."""
    archives.mkdir(parents=True, exist_ok=True)
    deb = _cached_deb(package, version, archives)
    if deb is None:
        done = subprocess.run(
            ["apt-get", "download", f"{package}={version}"],
            cwd=archives,
            capture_output=True,
            text=True,
        )
        deb = _cached_deb(package, version, archives)
        if deb is None:
            raise SystemExit(
                f"{package} {version}: apt-get download failed ({done.stderr.strip()}). The "
                "held-out set is pinned to this exact version; run `apt-get update` and retry"
            )
    return deb


def extract(deb: Path, files: dict[str, str], dest: Path) -> None:
    """Write ``files`` (paths inside the package) from ``deb`` under ``dest``, nothing else."""
    stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    left = set(files)
    with tarfile.open(fileobj=stream.stdout, mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in left and member.isfile():
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                left.discard(name)
    stream.wait()
    if left:
        raise SystemExit(f"{deb.name}: not in the package: {sorted(left)}")


def fetch(out: Path) -> list[Path]:
    """Fetch and verify every held-out file under ``out``; returns their paths."""
    written = []
    for (package, version), files in wanted_files(load_manifest()).items():
        dest = out / package
        paths = {path: dest / path for path in files}
        if not all(p.is_file() for p in paths.values()):
            extract(download_deb(package, version, out / "archives"), files, dest)
        for path, sha256 in files.items():
            try:
                verified_bytes(paths[path], sha256)
            except ValueError as error:
                raise SystemExit(f"{package} {version}: {error}") from None
        print(f"{package} {version}: {len(files)} file(s) verified under {dest}")
        written += paths.values()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--out DIR`` (default ``.heldout_data/`` in the repo)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR, help="data folder")
    args = parser.parse_args(argv)
    written = fetch(args.out)
    total = sum(p.stat().st_size for p in set(written))
    print(f"held-out data ready: {len(set(written))} files, {total / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
