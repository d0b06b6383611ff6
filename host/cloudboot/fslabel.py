"""Filesystem labels written from the host (`cloud-boot label`): ext2/3/4, XFS and btrfs, on any device
diskimage opens (raw, qcow2, UDIF, a partition of one).

Every superblock copy the filesystem keeps gets the new label and its checksum recomputed:
  ext2/3/4  the primary at byte 1024 and the backups at the start of groups 1 and the powers of 3, 5 and 7
            (sparse_super), of every group (no sparse_super), or of the two groups s_backup_bgs names
            (sparse_super2); meta_bg moves group descriptors, not superblocks. metadata_csum: crc32c.
  XFS       the primary and the secondary superblock at the start of every allocation group; v5: CRC-32C.
  btrfs     the copies at 64 KiB, 64 MiB and 256 GiB that fit in the device; the superblock's checksum type
            (crc32c, xxhash64, sha256, blake2b).
Limits as the filesystems define them: 16 bytes (ext), 12 (XFS), 255 (btrfs), UTF-8 without control
characters; an empty label clears it.

`plan` checks everything and computes every byte before anything is written; `apply` writes the copies one by
one, each flushed (fsync) before the next, the backups first and the primary (the copy the kernel and fsck read)
last, so a crash between two writes leaves a filesystem whose fsck accepts it with the old or the new label.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cloudboot.errors import CloudBootError
from diskfs.btrfs import csum as btrfs_csum
from diskfs.checksum import crc32c, crc32c_raw
from diskfs.xfs import crc_ok as xfs_crc_ok

LIMITS = {"ext4": 16, "xfs": 12, "btrfs": 255}
EXT_MAGIC, XFS_MAGIC, BTRFS_MAGIC = b"\x53\xef", b"XFSB", b"_BHRfS_M"
BTRFS_MIRRORS = (64 << 10, 64 << 20, 256 << 30)


class LabelError(CloudBootError):
    """A label that cannot be written: the label itself, or the filesystem it would go on."""


@dataclass
class Copy:
    """One superblock copy: `offset` on the filesystem's device, and its bytes after the change."""

    offset: int
    what: str
    data: bytes


@dataclass
class Plan:
    fs: str
    old: str
    new: str
    copies: list[Copy] = field(default_factory=list)  # in write order: the primary last


def check_label(fs: str, label: str) -> bytes:
    """The label's on-disk bytes; LabelError when `fs` cannot hold it."""
    try:
        raw = label.encode("utf-8")
    except UnicodeError:
        raise LabelError(f"label {label!r}: not valid UTF-8") from None
    bad = [c for c in label if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise LabelError(f"label {label!r}: control character {bad[0]!r} (blkid, udev and fstab cannot name it)")
    if len(raw) > LIMITS[fs]:
        raise LabelError(f"label {label!r} is {len(raw)} bytes: {fs} labels hold at most {LIMITS[fs]} bytes")
    return raw


def plan(dev, label: str) -> Plan:
    """Every copy to write for `label` on the filesystem on `dev`; LabelError for what is not a labelable
    filesystem (or a damaged one), before anything is written."""
    from diskfs import detect

    fs = detect(dev)
    if fs not in LIMITS:
        raise LabelError(f"{dev.name}: no ext2/3/4, XFS or btrfs filesystem here" +
                         (f" ({fs})" if fs else ""))
    raw = check_label(fs, label)
    p = {"ext4": _ext, "xfs": _xfs, "btrfs": _btrfs}[fs](dev, raw, label)
    if hasattr(dev, "check_writes"):  # the image can take every write (raw chunks, refcount room, the size)
        dev.check_writes([(c.offset, len(c.data)) for c in p.copies])
    return p


def relabel(spec: str, label: str, dry_run: bool = False) -> dict:
    """Label the filesystem at IMAGE[@PARTITION] (diskimage.address); with `dry_run`, check everything (the
    image's lock included) and write nothing. Returns what was (or would be) written."""
    from cloudboot.diskimage.address import open_target, split
    from cloudboot.diskimage.imagefile import check_unlocked

    if dry_run:
        check_unlocked(split(spec)[0])
    target = open_target(spec, write=not dry_run)
    try:
        p = plan(target.device, label)
        if not dry_run:
            apply(target.device, p)
    finally:
        target.close()
    return {"device": target.where, "filesystem": p.fs, "old": p.old, "new": p.new, "written": not dry_run,
            "copies": [{"offset": c.offset, "image_offset": target.offset + c.offset, "what": c.what}
                       for c in p.copies]}


def apply(dev, p: Plan) -> None:
    """Write the plan's copies in order, each flushed before the next."""
    for c in p.copies:
        dev.write(c.offset, c.data)
        dev.flush()


def _text(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("utf-8", "replace")


# ---- ext2/3/4 ----
def _ext(dev, raw: bytes, label: str) -> Plan:
    name = dev.name
    sb = dev.read(1024, 1024)
    compat, incompat, ro = struct.unpack_from("<III", sb, 0x5C)
    if incompat & 0x8:
        raise LabelError(f"{name}: an ext4 external journal device, not a filesystem")
    if incompat & 0x4:
        raise LabelError(f"{name}: ext4 journal needs recovery (the filesystem was not cleanly unmounted): "
                         "run e2fsck first, or its replay would bring the old superblock back")
    csum = bool(ro & 0x400)
    if csum and (sb[0x175] != 1 or crc32c_raw(0xFFFFFFFF, sb[:0x3FC]) != struct.unpack_from("<I", sb, 0x3FC)[0]):
        raise LabelError(f"{name}: ext4 superblock checksum does not match: run e2fsck first")
    log_bs = struct.unpack_from("<I", sb, 0x18)[0]
    if log_bs > 6:
        raise LabelError(f"{name}: ext4 block size 2^{10 + log_bs}: not a valid superblock")
    bs = 1024 << log_bs
    blocks = struct.unpack_from("<I", sb, 0x4)[0] | ((struct.unpack_from("<I", sb, 0x150)[0] << 32)
                                                     if incompat & 0x80 else 0)
    first, per_group = struct.unpack_from("<I", sb, 0x14)[0], struct.unpack_from("<I", sb, 0x20)[0]
    if not per_group or first >= blocks:
        raise LabelError(f"{name}: ext4 superblock with {per_group} blocks per group: not a valid superblock")
    groups = (blocks - first + per_group - 1) // per_group
    if compat & 0x200:  # sparse_super2: the groups the superblock names
        backups = sorted({g for g in struct.unpack_from("<II", sb, 0x24C) if 0 < g < groups})
    elif ro & 0x1:
        backups = sorted({1} | {p for b in (3, 5, 7) for p in _powers(b, groups)}) if groups > 1 else []
    else:
        backups = list(range(1, groups))
    uuid = sb[0x68:0x78]
    p = Plan("ext4", _text(sb[0x78:0x88]), label)
    for g in backups:
        at = (g * per_group + first) * bs
        copy = dev.read(at, 1024) if at + 1024 <= dev.size else b""
        if copy[0x38:0x3A] != EXT_MAGIC or copy[0x68:0x78] != uuid:
            raise LabelError(f"{name}: the backup superblock of group {g} (byte {at}) is not this filesystem's: "
                             "run e2fsck first")
        p.copies.append(Copy(at, f"backup superblock (group {g})", _ext_copy(copy, raw, csum)))
    p.copies.append(Copy(1024, "primary superblock", _ext_copy(sb, raw, csum)))
    return p


def _powers(base: int, limit: int):
    n = base
    while n < limit:
        yield n
        n *= base


def _ext_copy(sb: bytes, raw: bytes, csum: bool) -> bytes:
    out = bytearray(sb)
    out[0x78:0x88] = raw.ljust(16, b"\0")
    if csum:
        struct.pack_into("<I", out, 0x3FC, crc32c_raw(0xFFFFFFFF, out[:0x3FC]))
    return bytes(out)


# ---- XFS ----
def _xfs(dev, raw: bytes, label: str) -> Plan:
    name = dev.name
    head = dev.read(0, 512)
    bsize, = struct.unpack_from(">I", head, 4)
    agblocks, agcount = struct.unpack_from(">II", head, 84)
    version, sectsize = struct.unpack_from(">HH", head, 100)
    if not 512 <= sectsize <= 32768 or sectsize & (sectsize - 1) or not 512 <= bsize <= 65536 or not agblocks \
            or not 1 <= agcount <= 1 << 20:
        raise LabelError(f"{name}: XFS superblock with sector size {sectsize}, block size {bsize}, {agcount} AGs "
                         f"of {agblocks} blocks: not a valid superblock")
    v5 = version & 0xF == 5
    sb = dev.read(0, sectsize)
    if v5 and not xfs_crc_ok(sb, 224):
        raise LabelError(f"{name}: XFS superblock CRC does not match: run xfs_repair first")
    p = Plan("xfs", _text(sb[108:120]), label)
    for ag in range(1, agcount):
        at = ag * agblocks * bsize
        copy = dev.read(at, sectsize) if at + sectsize <= dev.size else b""
        if copy[:4] != XFS_MAGIC or copy[32:48] != sb[32:48] or copy[84:92] != sb[84:92]:
            raise LabelError(f"{name}: the secondary superblock of AG {ag} (byte {at}) is not this filesystem's: "
                             "run xfs_repair first")
        p.copies.append(Copy(at, f"secondary superblock (AG {ag})", _xfs_copy(copy, raw, v5)))
    p.copies.append(Copy(0, "primary superblock", _xfs_copy(sb, raw, v5)))
    return p


def _xfs_copy(sb: bytes, raw: bytes, v5: bool) -> bytes:
    out = bytearray(sb)
    out[108:120] = raw.ljust(12, b"\0")
    if v5:
        struct.pack_into("<I", out, 224, crc32c(bytes(out[:224]) + b"\0\0\0\0" + bytes(out[228:])))
    return bytes(out)


# ---- btrfs ----
def _btrfs(dev, raw: bytes, label: str) -> Plan:
    name = dev.name
    primary = dev.read(BTRFS_MIRRORS[0], 4096)
    ctype = struct.unpack_from("<H", primary, 0xC4)[0]
    if ctype > 3:
        raise LabelError(f"{name}: btrfs checksum type {ctype} unknown")
    if btrfs_csum(ctype, primary[0x20:]) != primary[:len(btrfs_csum(ctype, b""))]:
        raise LabelError(f"{name}: btrfs superblock checksum does not match: run btrfs check first")
    devices = struct.unpack_from("<Q", primary, 0x88)[0]
    if devices != 1:
        raise LabelError(f"{name}: btrfs over {devices} devices: every device holds the label; label it mounted "
                         "(btrfs filesystem label) instead")
    fsid = primary[0x20:0x30]
    p = Plan("btrfs", _text(primary[0x12B:0x22B]), label)
    for at in BTRFS_MIRRORS[1:]:
        if at + 4096 > dev.size:
            break
        copy = dev.read(at, 4096)
        if copy[0x40:0x48] != BTRFS_MAGIC or copy[0x20:0x30] != fsid or struct.unpack_from("<Q", copy, 0x30)[0] != at:
            raise LabelError(f"{name}: the btrfs superblock mirror at byte {at} is not this filesystem's: run "
                             "btrfs rescue super-recover first")
        p.copies.append(Copy(at, f"superblock mirror at {at >> 20} MiB", _btrfs_copy(copy, raw)))
    p.copies.append(Copy(BTRFS_MIRRORS[0], "primary superblock", _btrfs_copy(primary, raw)))
    return p


def _btrfs_copy(sb: bytes, raw: bytes) -> bytes:
    out = bytearray(sb)
    out[0x12B:0x22B] = raw.ljust(256, b"\0")
    ctype = struct.unpack_from("<H", out, 0xC4)[0]
    digest = btrfs_csum(ctype, bytes(out[0x20:]))
    out[:32] = digest.ljust(32, b"\0")
    return bytes(out)
