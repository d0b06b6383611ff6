"""A UDIF (`.dmg`) writer for tests: no tool in Debian writes UDIF (dmg2img, 7-Zip and QEMU only read it) and
the one producer on PyPI (pydmg, the apple-dmg crate) writes UDZO images of FAT filesystems only, so the images
holding ext4/XFS/btrfs in every variant (UDRW, UDRO, UDZO, UDBZ, ULFO, ULMO) are written here, as hdiutil lays
them out: 1 MiB chunks, all-zero chunks as sparse "ignore" chunks, one blkx table per disk, CRC-32 checksums of
the table's stored chunks, of the data fork and over the tables' checksums. Its output is checked against dmg2img
and 7-Zip by the tests (tests/unit/test_diskimage.py), so it is an oracle's input, not an oracle.
"""

from __future__ import annotations

import bz2
import lzma
import os
import plistlib
import struct
import zlib
from pathlib import Path

CHUNK = 1 << 20
SECTOR = 512
CODEC = {"UDRW": 1, "UDRO": 1, "UDZO": 0x80000005, "UDBZ": 0x80000006, "ULFO": 0x80000007, "ULMO": 0x80000008}


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "UDZO":
        return zlib.compress(data, 6)
    if kind == "UDBZ":
        return bz2.compress(data, 9)
    if kind == "ULMO":
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=0)
    if kind == "ULFO":
        import lzfse

        return lzfse.compress(data)
    return data


def write(src: Path, out: Path, kind: str = "UDRW") -> Path:
    """`src` (a raw disk image) as a UDIF image of variant `kind` at `out`."""
    size = src.stat().st_size
    if size % SECTOR:
        raise ValueError(f"{src}: not a whole number of sectors")
    chunks, fork_crc, table_crc = [], 0, 0
    fork = 0
    tmp = out.with_name(out.name + ".part")
    with open(src, "rb") as f, open(tmp, "wb") as o:
        for start in range(0, size, CHUNK):
            data = f.read(min(CHUNK, size - start))
            sectors = len(data) // SECTOR
            if data.count(0) == len(data):  # hdiutil's sparse "ignore" chunk, left out of the table's CRC
                chunks.append((2, start // SECTOR, sectors, fork, 0))
                continue
            table_crc = zlib.crc32(data, table_crc)
            stored = _compress(kind, data)
            o.write(stored)
            fork_crc = zlib.crc32(stored, fork_crc)
            chunks.append((CODEC[kind], start // SECTOR, sectors, fork, len(stored)))
            fork += len(stored)
        chunks.append((0xFFFFFFFF, size // SECTOR, 0, fork, 0))
        mish = struct.pack(">4sIQQQII24x", b"mish", 1, 0, size // SECTOR, 0, 2048, 0)
        mish += struct.pack(">II", 2, 32) + struct.pack(">I", table_crc) + bytes(124)
        mish += struct.pack(">I", len(chunks))
        for ctype, sector, count, offset, length in chunks:
            mish += struct.pack(">IIQQQQ", ctype, 0, sector, count, offset, length)
        plist = {"resource-fork": {"blkx": [{"Attributes": "0x0050", "CFName": "whole disk (Apple_HFS : 0)",
                                             "Data": mish, "ID": "0", "Name": "whole disk (Apple_HFS : 0)"}],
                                   "plst": [{"Attributes": "0x0050", "Data": bytes(0x600), "ID": "0", "Name": ""}]}}
        xml = plistlib.dumps(plist, fmt=plistlib.FMT_XML)
        o.write(xml)
        koly = struct.pack(">4sIIIQQQQQII", b"koly", 4, 512, 1, 0, 0, fork, 0, 0, 1, 1) + os.urandom(16)
        koly += struct.pack(">II", 2, 32) + struct.pack(">I", fork_crc) + bytes(124)
        koly += struct.pack(">QQ", fork, len(xml)) + bytes(120)
        koly += struct.pack(">II", 2, 32) + struct.pack(">I", zlib.crc32(struct.pack(">I", table_crc))) + bytes(124)
        koly += struct.pack(">IQ", 1, size // SECTOR) + bytes(12)
        assert len(koly) == 512
        o.write(koly)
    os.replace(tmp, out)
    return out
