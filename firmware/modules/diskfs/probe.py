"""What is on a partition: type, label and UUID (`probe`, by the registry in diskfs.formats), and the
LABEL=/UUID=/PARTLABEL=/PARTUUID= specs resolved with them.

Types: ext4 (every ext2/3/4 filesystem: the reader is one; `ext_flavor` tells them apart as blkid does), jbd
(an external ext4 journal), xfs, btrfs, vfat, luks1, luks2, zfs_member, swap. UUIDs are text as blkid prints
them (ZFS: the pool GUID in decimal)."""

import struct

from diskfs.blockdev import read
from diskfs.formats import identify
from diskfs.partition import partitions

EXT3_INCOMPAT = 0x1 | 0x2 | 0x4 | 0x10  # compression, filetype, recover, meta_bg: what ext3 drivers knew
EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4  # sparse_super, large_file, btree_dir


def probe(dev):
    """(type, label, uuid) of the filesystem or container on `dev`, or (None, '', '') when unknown."""
    return identify(dev)


def ext_flavor(dev) -> str:
    """blkid's name for an ext filesystem: ext2, ext3, ext4 or jbd (an external journal)."""
    sb = read(dev, 1024, 1024)
    compat, incompat, ro = struct.unpack_from("<III", sb, 92)
    if incompat & 0x8:
        return "jbd"
    if incompat & ~EXT3_INCOMPAT or ro & ~EXT3_RO_COMPAT:
        return "ext4"
    return "ext3" if compat & 0x4 else "ext2"


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
