"""The cache ESP of Path C (REFERENCE.md §5.2 step 1): found on the GPT disks, mounted as vfat.

Discovery reads every whole disk's GPT (the portable diskfs core) and collects EFI System Partitions. The
one named `cloud-boot-cache` wins; with no named one, a single unnamed ESP is used with a warning; several
unnamed ones, several named ones, or none at all are an error that says what to attach or rename. The Linux
device of the chosen partition is found through sysfs (the partition whose number is the GPT slot).
"""

from __future__ import annotations

import errno
import os
import time

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.log import log

CACHE_NAME = "cloud-boot-cache"
MOUNTPOINT = "/esp"
FIX = ("attach a cache disk made by `cloud-boot cache-disk PATH` (a GPT disk whose EFI System Partition is "
       f"named {CACHE_NAME})")


class Esp:
    """An EFI System Partition: its disk, Linux device, GPT slot, first LBA and length (logical blocks of
    `sector_size` bytes), partition GUID and name."""

    def __init__(self, disk: str, device: str, number: int, start_lba: int, size_lba: int, part_guid: str,
                 name: str, sector_size: int) -> None:
        self.disk, self.device, self.number = disk, device, number
        self.start_lba, self.size_lba, self.part_guid, self.name = start_lba, size_lba, part_guid, name
        self.sector_size = sector_size

    def hd(self) -> tuple[int, int, int, str]:
        """(slot, first LBA, LBAs, GUID): what the HD() device path node holds."""
        return self.number, self.start_lba, self.size_lba, self.part_guid

    def __str__(self) -> str:
        return (f"{self.device} ({self.disk} partition {self.number}, name {self.name!r}, "
                f"{self.size_lba * self.sector_size >> 20} MiB)")


def partition_device(disk: str, number: int, sysfs: str = "/sys/block", dev: str = "/dev") -> str | None:
    """The /dev node of partition `number` of whole disk `disk` (/dev/vdb), looked up in sysfs."""
    name = os.path.basename(disk)
    base = os.path.join(sysfs, name)
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return None
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "partition")) as f:
                if int(f.read().strip()) == number:
                    return os.path.join(dev, entry)
        except (OSError, ValueError):
            continue
    return None


def scan(disks: list[str], sysfs: str = "/sys/block", dev: str = "/dev") -> tuple[list[Esp], list[str]]:
    """(ESPs of every GPT disk, one line per disk saying what was seen)."""
    import diskfs
    from diskfs.blockdev import FileDevice
    from diskfs.partition import ESP_TYPE, read_table

    found, seen = [], []
    for path in disks:
        try:
            disk = FileDevice(path)
        except diskfs.DiskfsError as exc:
            seen.append(f"{path}: cannot open ({exc})")
            continue
        try:
            table = read_table(disk)
        except diskfs.DiskfsError as exc:
            seen.append(f"{path}: partition table error ({exc})")
            continue
        finally:
            disk.close()
        esps = [p for p in table.partitions if p.type_guid == ESP_TYPE] if table.scheme == "gpt" else []
        seen.append(f"{path}: {table.scheme or 'no partition table'}"
                    + (f", ESP {', '.join(f'{p.number} {p.name!r}' for p in esps)}" if esps else ""))
        for p in esps:
            ss = table.sector_size
            device = partition_device(path, p.number, sysfs, dev)
            if device is None:
                seen[-1] += f" (no Linux device for partition {p.number})"
                continue
            found.append(Esp(path, device, p.number, p.offset // ss, p.size // ss, p.part_guid, p.name, ss))
    return found, seen


def choose(esps: list[Esp], seen: list[str]) -> Esp:
    """The cache ESP among `esps` (see the module text); InitError otherwise."""
    named = [e for e in esps if e.name == CACHE_NAME]
    where = "; ".join(seen) or "no disks"
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InitError(f"esp: several partitions are named {CACHE_NAME} ({', '.join(str(e) for e in named)}): "
                        "keep one cache disk attached")
    if len(esps) == 1:
        log(f"esp: WARNING: no partition named {CACHE_NAME}; using the only EFI System Partition, {esps[0]}")
        return esps[0]
    if esps:
        raise InitError(f"esp: {len(esps)} EFI System Partitions and none named {CACHE_NAME} "
                        f"({', '.join(str(e) for e in esps)}): {FIX}, or name one "
                        f"(sgdisk -c N:{CACHE_NAME} DISK)")
    raise InitError(f"esp: no EFI System Partition on any disk (seen: {where}): {FIX}")


def find(disks_fn, wait: float, sysfs: str = "/sys/block", dev: str = "/dev") -> Esp:
    """The cache ESP, waiting up to `wait` seconds for one to appear (a slow disk)."""
    deadline = time.monotonic() + wait
    while True:
        esps, seen = scan(disks_fn(), sysfs, dev)
        if esps or time.monotonic() >= deadline:
            esp = choose(esps, seen)
            log(f"esp: cache disk found at {esp}")
            return esp
        time.sleep(0.2)


def mount(esp: Esp, mountpoint: str = MOUNTPOINT) -> str:
    """Mount the ESP read-write as vfat (no options, as the original); InitError naming the device."""
    os.makedirs(mountpoint, exist_ok=True)
    log(f"esp: mounting {esp.device} on {mountpoint} (vfat, rw)")
    try:
        linux.mount(esp.device, mountpoint, "vfat", 0, None)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES):
            raise InitError(f"esp: {esp} is read-only ({exc.strerror}): the cache disk must be writable") from None
        if exc.errno == errno.ENODEV:
            raise InitError("esp: this kernel has no vfat (the vfat module was not loaded)") from None
        raise InitError(f"esp: cannot mount {esp} as vfat: {exc.strerror}") from None
    return mountpoint


def unmount(mountpoint: str = MOUNTPOINT) -> None:
    """Unmount (flushes the FAT); a failure is logged, not fatal: the files were fsync'ed already."""
    try:
        linux.umount(mountpoint)
    except OSError as exc:
        log(f"esp: umount {mountpoint}: {exc.strerror}")
