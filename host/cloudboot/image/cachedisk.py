"""The Path C cache disk (the original's make-cache-disk.sh, REFERENCE.md §5.2): a GPT disk image holding one
FAT32 EFI System Partition named `cloud-boot-cache` with `\\EFI\\Linux`, where the init stages targets.

Geometry in 512-byte sectors for SIZE MiB: the ESP starts at LBA 2048 and has SIZE*2048 - 2048 - 33 sectors;
the image is exactly SIZE MiB; protective MBR, primary GPT at LBA 1 (entries from LBA 2, 128 of 128 bytes),
backup entries at the last 33 sectors, backup header at the last one; random disk and partition GUIDs (the
partition GUID is what boot entries point at, so every cache disk gets its own).

The image file is raw (the disk itself) or qcow2 (the same disk, converted by `cloudboot.diskimage.convert`
before the rename: unwritten clusters take no room, for hypervisors that take qcow2).

Idempotent: an image that already is a cache disk in the format asked for is left untouched; anything else in
the way (a cache disk in the other format included) is refused unless `force`. The image is written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.image import gpt
from cloudboot.init.esp import CACHE_NAME
from cloudboot.run import run, which

FIRST_LBA = 2048
DEFAULT_MIB = 256
#: FAT32 needs 65,525 clusters or firmware reads it as FAT16; 64 MiB of 512-byte clusters has room to spare.
MIN_MIB = 64
MAX_MIB = 2 * 1024 * 1024  # 2 TiB: the protective MBR's limit
LABEL = "CBCACHE"
FORMATS = ("raw", "qcow2")


@dataclass(frozen=True)
class Geometry:
    """Where things are, in 512-byte sectors."""

    size_mib: int
    total: int
    esp_first: int
    esp_sectors: int

    @property
    def esp_last(self) -> int:
        return self.esp_first + self.esp_sectors - 1


def geometry(size_mib: int) -> Geometry:
    """The layout for an image of `size_mib` MiB; CloudBootError outside MIN_MIB..MAX_MIB."""
    if not MIN_MIB <= size_mib <= MAX_MIB:
        raise CloudBootError(f"cache disk size {size_mib} MiB: must be between {MIN_MIB} MiB and {MAX_MIB} MiB")
    esp = size_mib * 2048 - FIRST_LBA - 33
    return Geometry(size_mib, FIRST_LBA + esp + 33, FIRST_LBA, esp)


def inspect(path: Path, fmt: str = "raw") -> str | None:
    """None when `path` is a cache disk in image format `fmt` (valid GPT, partition 1 an ESP named
    cloud-boot-cache); otherwise what it is instead."""
    import diskfs
    from cloudboot.diskimage import open_image
    from diskfs.partition import ESP_TYPE, read_table

    try:
        dev = open_image(str(path))
    except (diskfs.DiskfsError, CloudBootError) as exc:
        return str(exc)
    try:
        kind = dev.info()["format"]
        table = read_table(dev)
    except diskfs.DiskfsError as exc:
        return f"a damaged partition table ({exc})"
    finally:
        dev.close()
    if table.scheme != "gpt":
        return "not a GPT disk" if table.scheme is None else "an MBR disk"
    first = next((p for p in table.partitions if p.number == 1), None)
    if first is None or first.type_guid != ESP_TYPE or first.name != CACHE_NAME:
        names = ", ".join(f"{p.number}: {p.name!r}" for p in table.partitions) or "no partitions"
        return f"a GPT disk whose partition 1 is not an ESP named {CACHE_NAME} ({names})"
    if kind != fmt:
        return f"a {kind} cache disk, not {fmt}"
    return None


def make(path: Path, size_mib: int = DEFAULT_MIB, force: bool = False, fmt: str = "raw") -> str:
    """Create the cache disk at `path` as a `fmt` (raw or qcow2) image (see the module text); returns what
    happened: `created`, `exists` (left untouched) or `replaced`."""
    path = Path(path)
    geo = geometry(size_mib)
    if fmt not in FORMATS:
        raise CloudBootError(f"cache disk format {fmt!r}: want one of {', '.join(FORMATS)}")
    replaced = False
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise CloudBootError(f"{path}: not a regular file (cache-disk writes disk image files; copy the image "
                                 "to a device with dd)")
        why = inspect(path, fmt)
        if why is None:
            return "exists"
        if not force:
            raise CloudBootError(f"{path} exists and is {why}: refusing to overwrite it (--force replaces it)")
        replaced = True
    if not path.parent.is_dir():
        raise CloudBootError(f"{path}: the directory {path.parent} does not exist")
    mkfs, mmd = which("mkfs.fat", "making the cache disk's FAT32"), which("mmd", "making the cache disk's \\EFI\\Linux")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise CloudBootError(f"{path}: cannot write into {path.parent}: {exc.strerror or exc}") from None
    try:
        head, tail = gpt.gpt_regions(geo.total, [gpt.Partition(gpt.ESP_TYPE, geo.esp_first, geo.esp_last,
                                                               CACHE_NAME)], os.urandom(32))
        os.ftruncate(fd, geo.total * gpt.SECTOR)
        os.pwrite(fd, head, 0)
        os.pwrite(fd, tail, geo.total * gpt.SECTOR - len(tail))
        os.close(fd)
        fd = -1
        # mkfs.fat counts 1 KiB blocks; an odd sector left at the end of the partition stays unused.
        run([mkfs, "-F", "32", "-n", LABEL, f"--offset={geo.esp_first}", tmp, str(geo.esp_sectors // 2)],
            quiet=True)
        _check_fat32(tmp, geo)
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        at = f"{tmp}@@{geo.esp_first * gpt.SECTOR}"
        run([mmd, "-i", at, "::/EFI", "::/EFI/Linux"], quiet=True, env=env)
        if fmt == "qcow2":
            _to_qcow2(tmp)
        else:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = ""
    except OSError as exc:
        raise CloudBootError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            Path(tmp).unlink(missing_ok=True)
    return "replaced" if replaced else "created"


def _to_qcow2(tmp: str) -> None:
    """The raw image at `tmp` becomes a qcow2 image under the same name (diskimage.convert: a temporary file
    of its own, fsync'd, renamed over `tmp`)."""
    from cloudboot.diskimage import convert, open_image

    src = open_image(tmp, format="raw")
    try:
        convert(src, tmp, "qcow2")
    finally:
        src.close()


def _check_fat32(image: str, geo: Geometry) -> None:
    from cloudboot.image.esp import fat_info

    with open(image, "rb") as f:
        f.seek(geo.esp_first * gpt.SECTOR)
        info = fat_info(f.read(512), image)
    if info.fat_type != 32:
        raise CloudBootError(f"internal error: mkfs.fat made a FAT with {info.clusters} clusters, which firmware "
                             f"reads as FAT{info.fat_type}")


def describe(path: Path) -> dict:
    """What a cache disk holds, for `cloud-boot cache-disk --json`: image format, disk size, partition, FAT."""
    import diskfs.partition
    from cloudboot.diskimage import open_image
    from cloudboot.image.esp import fat_info

    dev = open_image(str(path))
    try:
        kind = dev.info()["format"]
        table = diskfs.partition.read_table(dev)
        part = next(p for p in table.partitions if p.number == 1)
        boot = dev.read(part.offset, 512)
        size = dev.size
    finally:
        dev.close()
    info = fat_info(boot, str(path))
    return {"path": str(path), "format": kind, "size": size, "file_size": path.stat().st_size,
            "disk_guid": table.disk_id,
            "partition": {"number": 1, "name": part.name, "guid": part.part_guid, "first_lba": part.offset // 512,
                          "sectors": part.size // 512},
            "fat": {"type": info.fat_type, "clusters": info.clusters, "cluster_size": info.cluster_size,
                    "label": info.label}}
