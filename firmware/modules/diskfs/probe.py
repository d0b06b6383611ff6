"""What is on a partition, by magic: type, label and UUID (for LABEL=/UUID=/PARTLABEL=/PARTUUID= specs)."""

import binascii
import struct

from diskfs.gpt import partitions


def _uuid(raw):
    h = binascii.hexlify(bytes(raw)).decode()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])


def _clean(raw):
    text = bytes(raw).split(b"\0")[0]
    try:
        return text.decode().strip()
    except UnicodeError:
        return ""


def probe(dev):
    """(type, label, uuid) of the filesystem or container on `dev`, or (None, '', '') when unknown."""
    head = dev.read(0, min(dev.size, 0x11000)) if dev.size else b""
    if len(head) >= 1082 and head[1080:1082] == b"\x53\xef":
        return "ext4", _clean(head[1144:1160]), _uuid(head[1128:1144])
    if head[:4] == b"XFSB":
        return "xfs", _clean(head[108:120]), _uuid(head[32:48])
    if len(head) >= 0x10048 and head[0x10040:0x10048] == b"_BHRfS_M":
        return "btrfs", _clean(head[0x1012B:0x1012B + 256]), _uuid(head[0x10020:0x10030])
    if head[:6] == b"LUKS\xba\xbe":
        version = struct.unpack_from(">H", head, 6)[0]
        if version == 1:
            return "luks1", "", _clean(head[168:208])
        return "luks2", _clean(head[24:72]), _clean(head[168:208])
    if len(head) >= 512 and head[510:512] == b"\x55\xaa" and head[0] in (0xEB, 0xE9):
        if head[82:90] == b"FAT32   ":
            vid, label = head[67:71], head[71:82]
        else:
            vid, label = head[39:43], head[43:54]
        serial = struct.unpack("<I", vid)[0]
        return "vfat", _clean(label).replace("NO NAME", ""), "%04X-%04X" % (serial >> 16, serial & 0xFFFF)
    # ZFS: the vdev label's uberblock array starts at 128 KiB; the name lives in an XDR nvlist we do not
    # decode, so report the pool only by type.
    if dev.size >= 256 * 1024:
        ub = dev.read(128 * 1024, 8)
        if ub in (b"\x0c\xb1\xba\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\xba\xb1\x0c"):
            return "zfs_member", "", ""
    return None, "", ""


def resolve(disks, spec):
    """The device matching a LABEL=/UUID=/PARTLABEL=/PARTUUID= spec among `disks`, or None.

    Returns (device, description). UUID comparison ignores case."""
    kind, _, want = spec.partition("=")
    if kind not in ("LABEL", "UUID", "PARTLABEL", "PARTUUID") or not want:
        raise ValueError("device spec %r is not LABEL=, UUID=, PARTLABEL= or PARTUUID=" % spec)
    for disk in disks:
        for part in partitions(disk):
            dev = part.device(disk)
            if kind == "PARTLABEL" and part.name == want:
                return dev, "partition %d of %s" % (part.number, disk.name)
            if kind == "PARTUUID" and part.part_guid.lower() == want.lower():
                return dev, "partition %d of %s" % (part.number, disk.name)
            if kind in ("LABEL", "UUID"):
                fstype, label, uuid = probe(dev)
                value = label if kind == "LABEL" else uuid.lower()
                if fstype and value == (want if kind == "LABEL" else want.lower()):
                    return dev, "%s partition %d of %s" % (fstype, part.number, disk.name)
    return None, ""
