"""A mutation fuzzer for the qcow2 and UDIF parsers, with the filesystem fuzzer's discipline (test_fs_fuzz.py):
bytes of the metadata a clean read touches (qcow2: header, L1/L2 tables, compressed clusters; UDIF: the koly
trailer, the property list and its mish tables, compressed chunks) are flipped, then the image is opened, its
virtual disk read (bounded) and the filesystem inside walked. Only FsError may come out; a hang or an
unbounded allocation is a bug too.

Under `make test` each image gets a short bounded run; `make fuzz` runs each for FUZZ_SECONDS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

import diskfs  # noqa: E402
from cloudboot.diskimage import _open_backing  # noqa: E402
from cloudboot.diskimage.imagefile import ImageFile  # noqa: E402
from cloudboot.diskimage.qcow2 import Qcow2  # noqa: E402
from cloudboot.diskimage.udif import Udif  # noqa: E402
from tests.unit.test_fs_fuzz import bounded, exercise, fuzz  # noqa: E402

IMAGES = ["ext4.qcow2", "ext4-zstd.qcow2", "ext4-xl2.qcow2", "chain.qcow2", "multi-v2.qcow2", "ext4-UDZO.dmg",
          "ext4-ULMO.dmg", "ext4-ULFO.dmg", "ext4-UDRW.dmg", "pydmg.dmg"]
READ_LIMIT = 48 << 20
METADATA = 1 << 16


class Mutated(ImageFile):
    """An image file read with some bytes xored, recording the small reads (metadata) it serves."""

    def __init__(self, path: str, flips=()) -> None:
        super().__init__(path)
        self.flips = dict(flips)
        self.reads: dict[int, int] = {}

    def readinto(self, offset, buf):
        super().readinto(offset, buf)
        n = len(buf)
        if n <= METADATA:
            self.reads[offset] = max(self.reads.get(offset, 0), n)
        if self.flips:
            mv = memoryview(buf).cast("B")
            for at, mask in self.flips.items():
                if offset <= at < offset + n:
                    mv[at - offset] ^= mask


def open_mutated(path: Path, f: Mutated):
    if path.suffix == ".dmg":
        return Udif(f)
    return Qcow2(f, _open_backing, (str(path.resolve()),))


def read_all(dev) -> None:
    """The virtual disk in 1 MiB pieces (up to READ_LIMIT), then the filesystem on it (or its partitions)."""
    buf = bytearray(1 << 20)
    for start in range(0, min(dev.size, READ_LIMIT), len(buf)):
        dev.readinto(start, memoryview(buf)[:min(len(buf), dev.size - start)])
    for part in diskfs.partitions(dev)[:3]:
        fs = diskfs.open_filesystem(part.device(dev))
        if fs is not None:
            exercise(fs)


_META: dict[str, list[tuple[int, int]]] = {}


def metadata(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of what a clean read of the image reads in small pieces (+ the trailer), sorted."""
    if path.name not in _META:
        f = Mutated(str(path))
        read_all(open_mutated(path, f))
        f.reads[f.size - 512] = 512
        _META[path.name] = sorted(f.reads.items())
        f.close()
    return _META[path.name]


def run_mutated(path: Path, flips) -> None:
    meta = metadata(path)
    real = {}
    for index, where, mask in flips:
        offset, length = meta[index % len(meta)]
        real[offset + where % length] = mask
    f = Mutated(str(path), real.items())
    try:
        with bounded():
            read_all(open_mutated(path, f))
    finally:
        f.close()


@pytest.mark.parametrize("name", IMAGES)
def test_fuzz_image_metadata(diskimages: Path, name: str) -> None:
    fuzz(lambda flips: run_mutated(diskimages / name, flips))


def test_fuzz_image_headers_smashed(diskimages: Path) -> None:
    """The first metadata region (the header; for UDIF the trailer comes last) smashed outright."""
    for name in IMAGES:
        path = diskimages / name
        meta = metadata(path)
        run_mutated(path, [(0, i, 0xFF) for i in range(0, 512, 7)])
        run_mutated(path, [(len(meta) - 1, i, 0xFF) for i in range(0, 512, 7)])
