"""IMAGE[@PARTITION]: the one way verbs name a disk image or one of its partitions (`fs`, `label`), and
IMAGE@POOL/DATASET[@SNAPSHOT] a ZFS dataset (`fs`).

IMAGE is a raw, qcow2 or UDIF file (told apart by content); PARTITION is a number, LABEL=, UUID=, PARTLABEL=
or PARTUUID=; anything else after the '@' is a ZFS dataset name. An existing path wins over the split, so
image names may hold '@'.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cloudboot.diskimage.imagefile import check_span
from cloudboot.errors import CloudBootError
from diskfs.blockdev import BlockDevice

KINDS = ("LABEL", "UUID", "PARTLABEL", "PARTUUID")


def split(spec: str) -> tuple[str, str | None]:
    """(image, partition or dataset, or None): an existing path wins, else its shortest prefix before an '@'
    that exists (a ZFS snapshot name holds '@' too), else the split at the last '@'."""
    if os.path.exists(spec) or "@" not in spec:
        return spec, None
    for i, ch in enumerate(spec):
        if ch == "@" and os.path.exists(spec[:i]):
            return spec[:i], spec[i + 1:]
    image, _, part = spec.rpartition("@")
    return image, part


class Window(BlockDevice):
    """A partition of an image: reads and (when the image is writable) writes shifted by its offset."""

    def __init__(self, parent, offset: int, size: int, name: str) -> None:
        self.parent, self.offset, self.size, self.name = parent, offset, size, name
        self.sector_size = getattr(parent, "sector_size", 512)

    def readinto(self, offset, buf):
        self.check(offset, len(buf))
        self.parent.readinto(self.offset + offset, buf)

    def check_writes(self, spans) -> None:
        for offset, length in spans:
            check_span(self, offset, length)
        self.parent.check_writes([(self.offset + offset, length) for offset, length in spans])

    def write(self, offset: int, data) -> None:
        check_span(self, offset, len(data))
        self.parent.write(self.offset + offset, data)

    def flush(self) -> None:
        self.parent.flush()


@dataclass
class Target:
    """What IMAGE[@PARTITION] names: `device` (the whole disk or a Window on it), `disk` (the image's disk),
    `where` (for messages), `offset` (of the partition in the disk); for IMAGE@POOL/DATASET, `dataset` and
    the pool's device (the image, or its partition 1 as OpenZFS uses a whole disk)."""

    device: BlockDevice
    disk: BlockDevice
    where: str
    offset: int = 0
    dataset: str | None = None

    def close(self) -> None:
        self.disk.close()


def open_target(spec: str, write: bool = False, datasets: bool = False) -> Target:
    """Open IMAGE[@PARTITION] (and IMAGE@POOL/DATASET[@SNAPSHOT] when `datasets`); `write` opens the image
    under the exclusive lock (diskimage.open_image)."""
    from cloudboot.diskimage import open_image
    from diskfs.partition import find
    from diskfs.probe import resolve
    from diskfs.zfslabel import member

    image, part = split(spec)
    if not os.path.exists(image):
        raise CloudBootError(f"{image}: no such file")
    disk = open_image(image, write=write)
    try:
        if part is None:
            return Target(disk, disk, image)
        kind = part.partition("=")[0]
        if datasets and "=" not in part and not part.isdigit():
            pool = member(disk)
            if pool is None:
                raise CloudBootError(f"{image}: {part} is neither a partition (a number, LABEL=, UUID=, PARTLABEL=, "
                                     "PARTUUID=) nor a ZFS pool on the image")
            return Target(pool, disk, image, getattr(pool, "offset", 0), part)
        if not part.isdigit() and kind not in KINDS:
            raise CloudBootError(f"{spec}: partition must be a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=")
        if kind in ("LABEL", "UUID"):
            dev, where = resolve([disk], part)
            if dev is None:
                raise CloudBootError(f"{image}: no filesystem with {part}")
            offset = getattr(dev, "offset", 0)
            return Target(Window(disk, offset, dev.size, dev.name) if dev is not disk else disk, disk, where, offset)
        p = find(disk, part)
        if p is None:
            raise CloudBootError(f"{image}: no partition {part}")
        where = f"partition {p.number} of {image}"
        return Target(Window(disk, p.offset, p.size, where), disk, where, p.offset)
    except BaseException:
        disk.close()
        raise
