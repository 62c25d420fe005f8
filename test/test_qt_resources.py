# SPDX-License-Identifier: Apache-2.0
"""The Qt resource archive reader (GCompris ships its photos in ``.rcc`` files): archives built
here byte by byte after the format's layout, version 1 and 2, raw and zlib members."""

from __future__ import annotations

import struct
import zlib

import pytest

from codedap_depth.tools.qt_resources import read_qt_resources


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 2) -> bytes:
    """A Qt resource archive holding ``{path: (bytes, zlib?)}``; paths use "/" folders."""
    tree: dict = {}
    for path, entry in files.items():
        node = tree
        *folders, leaf = path.split("/")
        for f in folders:
            node = node.setdefault(f, {})
        node[leaf] = entry
    names, data, nodes = bytearray(), bytearray(), []
    name_at: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_at[name]

    # breadth-first, so each directory's children are consecutive node indices
    nodes.append(["", tree])
    i = 0
    while i < len(nodes):
        _, content = nodes[i]
        if isinstance(content, dict):
            first = len(nodes)
            for child in sorted(content):
                nodes.append([child, content[child]])
            nodes[i].append((len(content), first))
        i += 1
    node_bytes = bytearray()
    for entry in nodes:
        name, content = entry[0], entry[1]
        off = name_offset(name) if name else 0
        if isinstance(content, dict):
            count, first = entry[2]
            node = struct.pack(">IHII", off, 2, count, first)
        else:
            body, packed = content
            stored = struct.pack(">I", len(body)) + zlib.compress(body) if packed else body
            node = struct.pack(">IHHHI", off, 1 if packed else 0, 0, 0, len(data))
            data.extend(struct.pack(">I", len(stored)) + stored)
        node_bytes.extend(node + (bytes(8) if version >= 2 else b""))
    header = 20
    tree_off, data_off = header, header + len(node_bytes)
    names_off = data_off + len(data)
    return (b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
            + node_bytes + data + names)


@pytest.mark.parametrize("version", [1, 2])
def test_reads_raw_and_zlib_members_in_folders(version: int) -> None:
    files = {
        "gcompris/src/a/photo.webp": (b"RIFF" + bytes(range(200)), False),
        "gcompris/src/a/note.txt": (b"hello " * 50, True),
        "gcompris/top.svg": (b"<svg/>", True),
    }
    got = read_qt_resources(_rcc(files, version), "t.rcc")
    assert got == {k: v for k, (v, _) in files.items()}


def test_rejects_other_files_and_versions_with_the_archive_named() -> None:
    with pytest.raises(ValueError, match=r"x\.rcc: not a Qt resource archive"):
        read_qt_resources(b"PK\x03\x04" + bytes(30), "x.rcc")
    bad = bytearray(_rcc({"a.png": (b"abc", False)}))
    bad[4:8] = struct.pack(">I", 9)
    with pytest.raises(ValueError, match="version 9"):
        read_qt_resources(bytes(bad), "y.rcc")


def test_truncated_archive_is_an_error() -> None:
    whole = _rcc({"a/b.png": (bytes(1000), False)})
    names_start = struct.unpack(">I", whole[16:20])[0]
    with pytest.raises(ValueError, match=r"z\.rcc: truncated"):
        read_qt_resources(whole[:names_start - 500], "z.rcc")
    with pytest.raises(ValueError, match=r"z\.rcc: truncated"):
        read_qt_resources(whole[:names_start + 3], "z.rcc")
