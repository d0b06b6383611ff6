"""What is on a partition, by magic: type, label and UUID, for LABEL=/UUID=/PARTLABEL=/PARTUUID= specs.

Types: ext4 (every ext2/3/4 filesystem: the reader is one; `ext_flavor` tells them apart as blkid does), jbd
(an external ext4 journal), xfs, btrfs, vfat, luks1, luks2, zfs_member, swap. UUIDs are text as blkid prints
them (ZFS: the pool GUID in decimal)."""

import binascii
import struct

from diskfs.blockdev import read
from diskfs.errors import Corrupt
from diskfs.partition import partitions

EXT3_INCOMPAT = 0x1 | 0x2 | 0x4 | 0x10  # compression, filetype, recover, meta_bg: what ext3 drivers knew
EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4  # sparse_super, large_file, btree_dir


def uuid_text(raw) -> str:
    """16 bytes -> the usual 8-4-4-4-12 text."""
    h = binascii.hexlify(bytes(raw)).decode()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def _clean(raw):
    text = bytes(raw).split(b"\0")[0]
    try:
        return text.decode().strip()
    except UnicodeError:
        return ""


def ext_flavor(dev) -> str:
    """blkid's name for an ext filesystem: ext2, ext3, ext4 or jbd (an external journal)."""
    sb = read(dev, 1024, 1024)
    compat, incompat, ro = struct.unpack_from("<III", sb, 92)
    if incompat & 0x8:
        return "jbd"
    if incompat & ~EXT3_INCOMPAT or ro & ~EXT3_RO_COMPAT:
        return "ext4"
    return "ext3" if compat & 0x4 else "ext2"


def probe(dev):
    """(type, label, uuid) of the filesystem or container on `dev`, or (None, '', '') when unknown."""
    if not dev.size:
        return None, "", ""
    head = read(dev, 0, min(dev.size, 0x11000))
    if len(head) >= 2048 and head[1080:1082] == b"\x53\xef":
        kind = "jbd" if struct.unpack_from("<I", head, 1024 + 96)[0] & 0x8 else "ext4"
        return kind, _clean(head[1144:1160]), uuid_text(head[1128:1144])
    if head[:4] == b"XFSB" and len(head) >= 512:
        return "xfs", _clean(head[108:120]), uuid_text(head[32:48])
    if len(head) >= 0x10000 + 4096 and head[0x10040:0x10048] == b"_BHRfS_M":
        return "btrfs", _clean(head[0x1012B:0x1012B + 256]), uuid_text(head[0x10020:0x10030])
    if head[:6] == b"LUKS\xba\xbe" and len(head) >= 512:
        version = struct.unpack_from(">H", head, 6)[0]
        if version == 1:
            return "luks1", "", _clean(head[168:208])
        return "luks2", _clean(head[24:72]), _clean(head[168:208])
    if len(head) >= 512 and head[510:512] == b"\x55\xaa" and head[0] in (0xEB, 0xE9):
        if head[82:87] == b"FAT32":
            vid, label = head[67:71], head[71:82]
        elif head[54:57] == b"FAT":
            vid, label = head[39:43], head[43:54]
        else:
            vid = None
        if vid is not None:
            serial = struct.unpack("<I", vid)[0]
            return "vfat", _clean(label).replace("NO NAME", ""), "%04X-%04X" % (serial >> 16, serial & 0xFFFF)
    for page in (4096, 8192, 16384, 65536):
        if len(head) >= page and head[page - 10:page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            return "swap", _clean(head[1052:1068]), uuid_text(head[1036:1052])
    if dev.size >= 256 * 1024:
        zfs = _zfs_label(dev)
        if zfs is not None:
            return "zfs_member", zfs[0], zfs[1]
    return None, "", ""


# ---- ZFS: the vdev label (4 copies: two at the front, two at the end) holds an XDR-encoded nvlist ----
NV_UINT64, NV_STRING = 8, 9
ZFS_LABEL = 256 * 1024


def _zfs_label(dev):
    """(pool name, pool GUID as blkid's decimal text) from the first vdev label with an uberblock, or None."""
    for start in (0, ZFS_LABEL, dev.size - 2 * ZFS_LABEL, dev.size - ZFS_LABEL):
        if start < 0 or start + ZFS_LABEL > dev.size:
            continue
        magic = read(dev, start + 128 * 1024, 8)
        if magic not in (b"\x0c\xb1\xba\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\xba\xb1\x0c"):
            continue
        try:
            pairs = nvlist_top(read(dev, start + 16 * 1024, 112 * 1024))
        except Corrupt:
            continue
        guid = pairs.get("pool_guid")
        return (pairs.get("name") or "", "%d" % guid if isinstance(guid, int) else "")
    return None


def nvlist_top(raw):
    """Top-level string and uint64 pairs of an XDR-encoded nvlist (nvs header first); others are skipped."""
    if len(raw) < 12 or raw[0] != 1:
        raise Corrupt("ZFS label: nvlist is not XDR-encoded", "ZFS nvlist", 0)
    pos = 12  # 4-byte nvs header, then version and flags
    out = {}
    for _ in range(4096):
        if pos + 8 > len(raw):
            raise Corrupt("ZFS label: nvlist runs off its 112 KiB", "ZFS nvlist", pos)
        esize, dsize = struct.unpack_from(">ii", raw, pos)
        if esize == 0 and dsize == 0:
            return out
        if esize < 8 or pos + esize > len(raw):
            raise Corrupt("ZFS label: nvpair of %d bytes" % esize, "ZFS nvpair", pos)
        pair = raw[pos + 8:pos + esize]
        name, p = _xdr_string(pair, 0)
        if p + 8 <= len(pair):
            ptype, nelem = struct.unpack_from(">ii", pair, p)
            p += 8
            if ptype == NV_UINT64 and nelem == 1 and p + 8 <= len(pair):
                out[name] = struct.unpack_from(">Q", pair, p)[0]
            elif ptype == NV_STRING and nelem == 1:
                out[name] = _xdr_string(pair, p)[0]
        pos += esize
    raise Corrupt("ZFS label: more than 4096 nvpairs", "ZFS nvlist", pos)


def _xdr_string(buf, pos):
    if pos + 4 > len(buf):
        raise Corrupt("ZFS label: truncated string", "ZFS nvpair", pos)
    n = struct.unpack_from(">I", buf, pos)[0]
    if pos + 4 + n > len(buf):
        raise Corrupt("ZFS label: string of %d bytes overruns its pair" % n, "ZFS nvpair", pos)
    return _clean(buf[pos + 4:pos + 4 + n]), pos + 4 + ((n + 3) & ~3)


def resolve(disks, spec):
    """The device matching a LABEL=/UUID=/PARTLABEL=/PARTUUID= spec among `disks`, or None.

    Returns (device, description). UUID comparison ignores case."""
    kind, _, want = spec.partition("=")
    if kind not in ("LABEL", "UUID", "PARTLABEL", "PARTUUID") or not want:
        raise ValueError("device spec %r is not LABEL=, UUID=, PARTLABEL= or PARTUUID=" % spec)
    for disk in disks:
        for part in partitions(disk):
            dev = part.device(disk)
            where = ("partition %d of %s" % (part.number, disk.name)) if part.number else disk.name
            if kind == "PARTLABEL" and part.name == want:
                return dev, where
            if kind == "PARTUUID" and part.part_guid and part.part_guid.lower() == want.lower():
                return dev, where
            if kind in ("LABEL", "UUID"):
                fstype, label, uuid = probe(dev)
                value = label if kind == "LABEL" else uuid.lower()
                if fstype and value == (want if kind == "LABEL" else want.lower()):
                    return dev, "%s %s" % (fstype, where)
    return None, ""
