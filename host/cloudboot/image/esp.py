"""FAT EFI System Partition images built with pyfatfs (no root, no loop devices, no mtools).

The FAT type follows the size, because firmware decides the type by the cluster count alone (Microsoft's FAT
specification; OVMF/EDK2 refuses a "FAT32" with fewer than 65,525 clusters): FAT16 below 512 MiB, FAT32 from
there. Every image is checked after it is written: the cluster count must give the type we meant.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.image.clock import frozen_clock

MIB = 1 << 20
#: FAT16 with pyfatfs's cluster sizes needs at least 8,400 sectors; we start at 8 MiB.
MIN_SIZE = 8 * MIB
#: From here on FAT32 (at 512 MiB FAT16 would need 16 KiB clusters to stay below 65,525 of them).
FAT32_FROM = 512 * MIB
#: pyfatfs's cluster-size table ends at 32 GiB (16 KiB clusters).
MAX_SIZE = 32 * 1024 * MIB
#: Characters a FAT long file name may not contain (besides control characters).
_BAD_CHARS = re.compile(r'[\x00-\x1f"*:<>?|\\]')
#: Characters a FAT volume label (an 8.3 short name's characters, as mkfs.fat checks them) may not contain.
_BAD_LABEL_CHARS = re.compile(r'[\x00-\x1f\x7f"*+,./:;<=>?\[\\\]|]')
#: A FAT volume label's size: the boot sector's and the root directory entry's 11 bytes.
LABEL_MAX = 11


@dataclass(frozen=True)
class FatInfo:
    """A FAT boot sector's geometry and the type it implies (the specification's cluster-count rule)."""

    fat_type: int
    clusters: int
    cluster_size: int
    total_sectors: int
    sector_size: int
    label: str


def fat_info(image: bytes, name: str = "ESP") -> FatInfo:
    """Parse the BPB of a FAT image and compute its type from the cluster count, as firmware does."""
    if len(image) < 512 or image[510:512] != b"\x55\xaa":
        raise CloudBootError(f"{name}: no FAT boot sector (no 0x55AA signature)")
    bps, spc, rsvd, nfats, root_ents, tot16, _media, fatsz16 = struct.unpack_from("<HBHBHHBH", image, 11)
    tot32, fatsz32 = struct.unpack_from("<I", image, 32)[0], struct.unpack_from("<I", image, 36)[0]
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1) or nfats == 0:
        raise CloudBootError(f"{name}: invalid FAT BPB (bytes/sector {bps}, sectors/cluster {spc}, "
                             f"FATs {nfats})")
    total = tot16 or tot32
    fatsz = fatsz16 or fatsz32
    root_secs = (root_ents * 32 + bps - 1) // bps
    data = total - (rsvd + nfats * fatsz + root_secs)
    if data <= 0:
        raise CloudBootError(f"{name}: invalid FAT BPB (no data sectors)")
    clusters = data // spc
    kind = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    label_at = 71 if kind == 32 else 43
    label = image[label_at:label_at + 11].decode("ascii", "replace").rstrip()
    return FatInfo(kind, clusters, spc * bps, total, bps, label)


def _set_root_label(path: Path, label: str) -> None:
    """Give the root directory's volume-label entry the whole label: pyfatfs makes it an 8.3 file name (spaces
    dropped, 8 characters), and Linux, fatlabel and fsck.fat read that entry before the boot sector's copy."""
    with open(path, "r+b") as f:
        boot = f.read(512)
        info = fat_info(boot)
        rsvd, nfats = struct.unpack_from("<HB", boot, 14)
        fat_sectors = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
        root = (rsvd + nfats * fat_sectors) * info.sector_size
        if info.fat_type == 32:  # the root directory is a cluster chain; the label entry is in its first cluster
            root += (struct.unpack_from("<I", boot, 44)[0] - 2) * info.cluster_size
        f.seek(root)
        entries = f.read(info.cluster_size)
        for at in range(0, len(entries), 32):
            if entries[at] == 0:
                break
            if entries[at + 11] == 0x08 and entries[at] != 0xE5:  # ATTR_VOLUME_ID alone: the label entry
                f.seek(root + at)
                f.write(label.ljust(LABEL_MAX).encode("ascii"))
                return
    raise CloudBootError(f"{path}: pyfatfs wrote no volume label entry")


def esp_size(payload_bytes: int) -> int:
    """The original's multi-arch rule (REFERENCE §6.2): payload x 3/2 + 8 MiB, rounded up to 16 MiB."""
    size = payload_bytes * 3 // 2 + 8 * MIB
    return (size + 16 * MIB - 1) // (16 * MIB) * (16 * MIB)


def fat_type_for(size: int) -> int:
    """16 or 32: the FAT type an ESP of `size` bytes gets."""
    return 32 if size >= FAT32_FROM else 16


def normalize_path(dest: str) -> str:
    r"""An ESP destination as 'EFI/BOOT/BOOTX64.EFI': '\' or '/' separated, leading separator optional;
    refuses empty, '.' or '..' components and characters FAT cannot store."""
    parts = dest.replace("\\", "/").strip("/").split("/")
    for part in parts:
        if (part in ("", ".", "..") or len(part) > 255 or not part.isascii() or _BAD_CHARS.search(part)
                or part != part.rstrip(" .")):
            raise CloudBootError(f"ESP path {dest!r}: component {part!r} is not a valid FAT file name")
    return "/".join(parts)


def check_paths(files: dict[str, bytes]) -> dict[str, bytes]:
    """Normalized paths; FAT names are case-insensitive, so two names differing only in case collide, and
    no file may sit where another path needs a directory."""
    out: dict[str, bytes] = {}
    seen: dict[str, str] = {}
    for dest, data in files.items():
        norm = normalize_path(dest)
        key = norm.upper()
        if key in seen:
            raise CloudBootError(f"ESP path {dest!r} collides with {seen[key]!r} (FAT names ignore case)")
        seen[key] = dest
        out[norm] = data
    for key, dest in seen.items():
        parts = key.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                raise CloudBootError(f"ESP path {dest!r} needs {parent!r} to be a directory, "
                                     f"but it is a file")
    return out


def fat_label(label: str) -> str:
    """`label` as a FAT volume label stores it (upper case), or a CloudBootError saying which rule it breaks: 1 to
    11 ASCII characters, not starting with a space, none of the characters short names may not hold."""
    if not label:
        raise CloudBootError(f"--label '': a FAT volume label holds 1 to {LABEL_MAX} characters; this one is empty")
    wide = next((c for c in label if not c.isascii()), None)
    if wide:
        raise CloudBootError(f"--label {label!r}: a FAT volume label holds ASCII characters only ({wide!r} is not)")
    if len(label) > LABEL_MAX:
        raise CloudBootError(f"--label {label!r}: a FAT volume label holds at most {LABEL_MAX} characters; this one "
                             f"has {len(label)}")
    bad = _BAD_LABEL_CHARS.search(label)
    if bad:
        raise CloudBootError(f"--label {label!r}: a FAT volume label cannot hold {bad.group()!r} (nor control "
                             "characters or any of \" * + , . / : ; < = > ? [ \\ ] |)")
    if label.startswith(" "):
        raise CloudBootError(f"--label {label!r}: a FAT volume label cannot start with a space")
    return label.upper()


def build_esp(files: dict[str, bytes], size: int | None = None, label: str = "ESP") -> bytes:
    """A FAT image holding `files` (destination path -> bytes), e.g. {'EFI/BOOT/BOOTX64.EFI': b'MZ...'}.

    `size` defaults to `esp_size` of the payload. Too small a size is a CloudBootError saying how much is
    needed; so are paths FAT cannot hold and a label it cannot hold (fat_label)."""
    with warnings.catch_warnings():  # pyfatfs's `fs` dependency imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from pyfatfs._exceptions import PyFATException
        from pyfatfs.PyFat import PyFat
        from pyfatfs.PyFatFS import PyFatFS

    files = check_paths(files)
    payload = sum(len(d) for d in files.values())
    size = esp_size(payload) if size is None else size
    if size % 512 or not MIN_SIZE <= size <= MAX_SIZE:
        raise CloudBootError(f"ESP size {size} bytes: must be a multiple of 512 between "
                             f"{MIN_SIZE // MIB} MiB and {MAX_SIZE // MIB} MiB")
    fat_type = fat_type_for(size)
    label = fat_label(label)
    # A volume id derived from the content keeps the image reproducible.
    digest = hashlib.sha256(b"".join(k.encode() + b"\0" + v for k, v in sorted(files.items()))).digest()
    volume_id = struct.unpack("<I", digest[:4])[0] or 1
    fd, tmp_name = tempfile.mkstemp(prefix="cloudboot-esp-", suffix=".img")
    tmp = Path(tmp_name)
    try:
        os.ftruncate(fd, size)
        os.close(fd)
        with frozen_clock():
            pf = PyFat()
            pf.mkfs(str(tmp), PyFat.FAT_TYPE_FAT32 if fat_type == 32 else PyFat.FAT_TYPE_FAT16, size=size,
                    label=label, volume_id=volume_id)
            pf.close()
            _set_root_label(tmp, label)
            with open(tmp, "rb") as f:
                info = fat_info(f.read(512))
            dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
            need = sum(-(-len(d) // info.cluster_size) * info.cluster_size for d in files.values())
            need += (len(dirs) + 1) * info.cluster_size  # a cluster per directory (and FAT32's root)
            capacity = info.clusters * info.cluster_size
            if need > capacity:
                raise CloudBootError(f"ESP of {size // MIB} MiB (FAT{fat_type}, {info.cluster_size}-byte "
                                     f"clusters) cannot hold the files: {need} bytes needed, "
                                     f"{capacity} available")
            fs = PyFatFS(str(tmp), encoding="ascii")
            try:
                for dest in sorted(files):
                    parent = "/" + "/".join(dest.split("/")[:-1])
                    if parent != "/":
                        fs.makedirs(parent, recreate=True)
                    with fs.openbin("/" + dest, "wb") as out:
                        out.write(files[dest])
            except PyFATException as exc:
                raise CloudBootError(f"ESP of {size // MIB} MiB (FAT{fat_type}): cannot write the files: "
                                     f"{exc}") from None
            finally:
                fs.close()
        _fix_up(tmp, info)
        image = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    got = fat_info(image)
    if got.fat_type != fat_type:
        raise CloudBootError(f"internal error: FAT{fat_type} image of {size} bytes has {got.clusters} "
                             f"clusters, which firmware reads as FAT{got.fat_type}")
    return image


def _fix_up(path: Path, info: FatInfo) -> None:
    """What pyfatfs leaves out: CHS geometry in the BPB (mtools and some firmware refuse zeros), in the backup
    boot sector too, and on FAT32 a correct FSInfo free-cluster count (fsck.vfat checks it)."""
    with open(path, "r+b") as f:
        boot = bytearray(f.read(512))
        struct.pack_into("<HH", boot, 0x18, 63, 255)
        f.seek(0)
        f.write(boot)
        if info.fat_type != 32:
            return
        rsvd = struct.unpack_from("<H", boot, 14)[0]
        fsinfo_sec, backup_sec = struct.unpack_from("<HH", boot, 48)
        if 0 < backup_sec < rsvd:
            f.seek(backup_sec * info.sector_size)
            f.write(boot)
        f.seek(rsvd * info.sector_size)
        fat = f.read(4 * (info.clusters + 2))
        entries = memoryview(fat).cast("I")[2:]
        free = sum(1 for e in entries if not e & 0x0FFFFFFF)
        next_free = next((i + 2 for i, e in enumerate(entries) if not e & 0x0FFFFFFF), 0xFFFFFFFF)
        for sec in (fsinfo_sec, backup_sec + fsinfo_sec if backup_sec else 0):
            if 0 < sec < rsvd:
                f.seek(sec * info.sector_size)
                fsinfo = bytearray(f.read(512))
                if fsinfo[:4] == b"RRaA" and fsinfo[484:488] == b"rrAa":
                    struct.pack_into("<II", fsinfo, 488, free, next_free)
                    f.seek(sec * info.sector_size)
                    f.write(fsinfo)
