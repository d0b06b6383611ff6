"""Disk image files as block devices: raw, qcow2 and UDIF (`.dmg`), told apart by their content, never by
their name. `open_image(path)` gives the virtual disk the portable readers (diskfs) accept; with `write=True`
the file is opened under the exclusive lock QEMU respects and the device gains `write(offset, data)` and
`flush()` (never past the virtual size). `convert` writes a device into a new raw or qcow2 image.

qcow2 and UDIF join diskfs's registry (diskfs.formats) as containers, so `probe` names them wherever they sit.
"""

from __future__ import annotations

import os
import tempfile

from cloudboot.diskimage.imagefile import ImageFile, ImageInUse, check_open_for_writing, check_span
from cloudboot.diskimage.qcow2 import MAX_CHAIN, Qcow2
from cloudboot.diskimage.qcow2 import convert as _qcow2_convert
from cloudboot.diskimage.udif import SECTOR, Udif
from cloudboot.errors import CloudBootError
from diskfs import formats
from diskfs.blockdev import BlockDevice, read
from diskfs.errors import Corrupt, NotFound, Unsupported

__all__ = ["ImageInUse", "RawImage", "convert", "detect", "open_image"]


class RawImage(BlockDevice):
    """A raw image file: the file is the disk."""

    def __init__(self, f: ImageFile) -> None:
        self.f, self.name, self.size, self.writable = f, f.name, f.size, f.writable

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        self.f.readinto(offset, buf)

    def check_writes(self, spans) -> None:
        """Unsupported unless every (offset, length) can be written."""
        for offset, length in spans:
            check_span(self, offset, length)

    def write(self, offset: int, data) -> None:
        check_open_for_writing(self)
        self.check_writes([(offset, len(data))])
        self.f.write(offset, data)

    def flush(self) -> None:
        if self.writable:
            self.f.sync()

    def info(self) -> dict:
        return {"format": "raw", "virtual_size": self.size}

    def close(self) -> None:
        self.f.close()


class _DeviceFile:
    """Any block device seen as an image file (for a qcow2 or UDIF image found inside another device)."""

    writable = False

    def __init__(self, dev) -> None:
        self.dev, self.name, self.path, self.size = dev, dev.name, dev.name, dev.size

    def readinto(self, offset, buf):
        have = max(0, min(len(buf), self.size - offset))
        mv = memoryview(buf).cast("B")
        if have:
            self.dev.readinto(offset, mv[:have])
        mv[have:] = bytes(len(mv) - have)

    def read(self, offset, length):
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def close(self):
        pass


class Qcow2Format(formats.Format):
    name, title, role = "qcow2", "qcow2", formats.CONTAINER

    def match(self, head, dev):
        return head[:4] == b"QFI\xfb"

    def open(self, dev, devices, options):
        return Qcow2(_DeviceFile(dev), _open_backing, (dev.name,))


class UdifFormat(formats.Format):
    name, title, role = "udif", "UDIF (dmg)", formats.CONTAINER

    def match(self, head, dev):
        return dev.size >= SECTOR and read(dev, dev.size - SECTOR, 4) == b"koly"

    def open(self, dev, devices, options):
        return Udif(_DeviceFile(dev))


IMAGE_FORMATS = {"qcow2": Qcow2Format(), "udif": UdifFormat()}
for _fmt in IMAGE_FORMATS.values():  # ahead of the filesystems: a UDRW image starts with its disk's bytes
    if all(f.name != _fmt.name for f in formats.FORMATS):
        formats.register(_fmt, before=formats.FORMATS[0].name)


def detect(path: str) -> str:
    """'qcow2', 'udif' or 'raw': what the file at `path` is, by its content."""
    f = ImageFile(path)
    try:
        return _detect(f)
    finally:
        f.close()


def _detect(f: ImageFile) -> str:
    dev = RawImage(f)
    if not dev.size:
        return "raw"
    for name, fmt in IMAGE_FORMATS.items():
        if fmt.match(read(dev, 0, min(dev.size, 4096)), dev):
            return name
    return "raw"


def open_image(path: str, write: bool = False, format: str | None = None, chain: tuple = ()):  # noqa: A002
    """The disk inside the image file at `path` (raw, qcow2 or UDIF by content, or `format` when the caller
    knows it, as a qcow2 backing-format extension does). `write`: opened under the exclusive lock, for
    `write(offset, data)` and `flush()`."""
    f = ImageFile(path, write=write)
    try:
        kind = format or _detect(f)
        if kind == "qcow2":
            return Qcow2(f, _open_backing, chain + (os.path.realpath(path),), write=write)
        if kind in ("udif", "dmg"):
            return Udif(f, write=write)
        if kind == "raw":
            return RawImage(f)
        raise Unsupported(f"{path}: image format {kind!r} (cloud-boot reads raw, qcow2 and UDIF)", "image format")
    except BaseException:
        f.close()
        raise


def _open_backing(path: str, fmt: str, chain: tuple):
    """A backing file, read-only; loops and chains deeper than MAX_CHAIN refused."""
    real = os.path.realpath(path)
    if real in chain:
        raise Corrupt(f"{chain[0]}: backing chain loops: {' -> '.join(chain + (real,))}", "qcow2 backing file")
    if len(chain) >= MAX_CHAIN:
        raise Unsupported(f"{chain[0]}: backing chain deeper than {MAX_CHAIN} images", "backing chain")
    if not os.path.exists(path):
        raise NotFound(f"{chain[-1]}: backing file {path} not found", path)
    if fmt not in ("", "raw", "qcow2", "dmg"):
        raise Unsupported(f"{chain[-1]}: backing file {path} in format {fmt!r} (cloud-boot reads raw, qcow2 and "
                          "UDIF)", "backing format")
    return open_image(path, format=fmt or None, chain=chain)


def convert(src, out: str, fmt: str = "qcow2") -> str:
    """Write the block device `src` into a new image `out` (`qcow2`, or `raw`), atomically: a temporary file
    in the same directory, fsync'd, renamed over `out`. `out` may be the file `src` reads."""
    if fmt not in ("qcow2", "raw"):
        raise CloudBootError(f"{out}: cannot write {fmt} images (qcow2 or raw)")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise CloudBootError(f"{out}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(out)}.")
    os.close(fd)
    try:
        f = ImageFile(tmp, write=True)
        try:
            if fmt == "qcow2":
                _qcow2_convert(src, f)
            else:
                os.truncate(tmp, src.size)
                buf, zero = bytearray(1 << 20), bytes(1 << 20)
                for start in range(0, src.size, len(buf)):
                    mv = memoryview(buf)[:min(len(buf), src.size - start)]
                    src.readinto(start, mv)
                    if mv != zero[:len(mv)]:  # holes stay holes
                        f.write(start, mv)
            f.sync()
        finally:
            f.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        tmp = ""
    except OSError as exc:
        raise CloudBootError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp:
            os.unlink(tmp)
    return out
