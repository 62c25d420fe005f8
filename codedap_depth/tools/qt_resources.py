# SPDX-License-Identifier: Apache-2.0
"""Read the files out of a compiled Qt resource archive (``.rcc``, made by Qt's ``rcc -binary``).

Some Debian packages (GCompris) ship their photos inside such archives instead of as plain
files. The format, versions 1-3: a 20-byte header (``b"qres"``, then big-endian uint32 version,
tree offset, data offset, names offset; version 3 adds a 4-byte flags word), a tree of fixed-size
nodes (14 bytes, 22 from version 2 on: a trailing 8-byte modification time), a names table
(uint16 length, uint32 hash, UTF-16BE characters) and a data table (uint32 size, then the
bytes). A tree node is ``name offset (u32), flags (u16)`` followed, for a directory
(flags & 2), by ``child count (u32), first child index (u32)``, and for a file by
``country (u16), language (u16), data offset (u32)``. A file whose flags & 1 is zlib-compressed
behind a uint32 uncompressed length; flags & 4 (zstd) is not supported here.
"""

from __future__ import annotations

import struct
import zlib

_DIRECTORY = 0x02
_ZLIB = 0x01
_ZSTD = 0x04


def read_qt_resources(data: bytes, origin: str = "<rcc>") -> dict[str, bytes]:
    """Every file of a Qt resource archive, by its path inside the archive.

    Args:
        data: the ``.rcc`` file's bytes.
        origin: name of the archive, used in error messages.
    Returns:
        ``{path: bytes}``; paths have no leading slash (``"gcompris/src/.../x.webp"``).
    Raises:
        ValueError: not a Qt resource archive, an unknown version, a zstd-compressed member or
            offsets outside the file.
    """
    if data[:4] != b"qres" or len(data) < 20:
        raise ValueError(f"{origin}: not a Qt resource archive (no 'qres' header)")
    version, tree, table, names = struct.unpack(">IIII", data[4:20])
    if version not in (1, 2, 3):
        raise ValueError(f"{origin}: Qt resource format version {version} is not supported")
    node_size = 14 if version == 1 else 22
    if max(tree, table, names) >= len(data):
        raise ValueError(f"{origin}: truncated (a table offset lies past the end of the file)")

    def name_at(offset: int) -> str:
        start = names + offset
        (length,) = struct.unpack(">H", data[start:start + 2])
        return data[start + 6:start + 6 + 2 * length].decode("utf-16-be")

    out: dict[str, bytes] = {}

    def walk(index: int, prefix: str) -> None:
        pos = tree + index * node_size
        if pos + 14 > len(data):
            raise ValueError(f"{origin}: tree node {index} lies outside the file")
        name_offset, flags = struct.unpack(">IH", data[pos:pos + 6])
        path = f"{prefix}{name_at(name_offset)}" if index else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", data[pos + 6:pos + 14])
            for child in range(first, first + count):
                walk(child, f"{path}/" if path else "")
            return
        (offset,) = struct.unpack(">I", data[pos + 10:pos + 14])
        start = table + offset
        (size,) = struct.unpack(">I", data[start:start + 4])
        body = data[start + 4:start + 4 + size]
        if len(body) != size:
            raise ValueError(f"{origin}: {path} runs past the end of the file")
        if flags & _ZSTD:
            raise ValueError(f"{origin}: {path} is zstd-compressed, which is not supported")
        out[path] = zlib.decompress(body[4:]) if flags & _ZLIB else body

    try:
        walk(0, "")
    except struct.error as err:
        raise ValueError(f"{origin}: truncated or corrupt ({err})") from err
    return out


__all__ = ["read_qt_resources"]
