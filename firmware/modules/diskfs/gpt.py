"""GPT (header and entry CRCs checked, backup header as fallback) and MBR partition tables."""

import binascii
import struct

from diskfs.blockdev import SliceDevice
from diskfs.errors import Corrupt

SECTOR = 512
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def guid_str(b):
    """16 bytes (mixed-endian, as on disk) -> text form."""
    a, b2, c = struct.unpack("<IHH", b[:8])
    tail = binascii.hexlify(b[8:16]).decode()
    return "%08x-%04x-%04x-%s-%s" % (a, b2, c, tail[:4], tail[4:])


class Partition:
    """One partition: number (1-based), type and partition GUIDs, name, byte offset and size."""

    def __init__(self, number, type_guid, part_guid, name, offset, size):
        self.number, self.type_guid, self.part_guid, self.name = number, type_guid, part_guid, name
        self.offset, self.size = offset, size

    def device(self, disk):
        return SliceDevice(disk, self.offset, self.size, "%s#%d" % (disk.name, self.number))

    def __repr__(self):
        return "Partition(%d, %s, %r, offset=%d, size=%d)" % (self.number, self.type_guid, self.name, self.offset,
                                                             self.size)


def _header(disk, lba):
    raw = disk.read(lba * SECTOR, SECTOR)
    if raw[:8] != b"EFI PART":
        return None
    size = struct.unpack_from("<I", raw, 12)[0]
    if not 92 <= size <= SECTOR:
        return None
    crc = struct.unpack_from("<I", raw, 16)[0]
    if binascii.crc32(raw[:16] + b"\0\0\0\0" + raw[20:size]) & 0xFFFFFFFF != crc:
        return None
    return raw


def read_gpt(disk):
    """Partitions of a GPT disk, or None when there is no valid GPT (primary or backup)."""
    last = disk.size // SECTOR - 1
    for lba in (1, last):
        if lba < 1:
            continue
        hdr = _header(disk, lba)
        if hdr is None:
            continue
        entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
        if esize < 128 or count > 1024 or (entries_lba + (count * esize + SECTOR - 1) // SECTOR) > last + 1:
            raise Corrupt("%s: GPT header at LBA %d has an impossible entry array" % (disk.name, lba))
        table = disk.read(entries_lba * SECTOR, count * esize)
        if binascii.crc32(table) & 0xFFFFFFFF != ecrc:
            continue  # try the backup
        parts = []
        for i in range(count):
            e = table[i * esize:(i + 1) * esize]
            if e[:16] == bytes(16):
                continue
            first, lastlba = struct.unpack_from("<QQ", e, 32)
            if first > lastlba or lastlba > last:
                raise Corrupt("%s: GPT entry %d spans LBA %d-%d beyond the disk" % (disk.name, i + 1, first, lastlba))
            name = ""
            for c in struct.unpack("<36H", e[56:128]):  # UTF-16LE; MicroPython has no utf-16 codec
                if not c:
                    break
                name += chr(c)
            parts.append(Partition(i + 1, guid_str(e[:16]), guid_str(e[16:32]), name,
                                   first * SECTOR, (lastlba - first + 1) * SECTOR))
        return parts
    return None


def read_mbr(disk):
    """Primary MBR partitions (None without the 0x55AA signature or with only a protective entry)."""
    mbr = disk.read(0, SECTOR)
    if mbr[510:512] != b"\x55\xaa":
        return None
    parts = []
    for i in range(4):
        ptype = mbr[446 + 16 * i + 4]
        start, count = struct.unpack_from("<II", mbr, 446 + 16 * i + 8)
        if ptype in (0, 0xEE) or not count:
            continue
        parts.append(Partition(i + 1, "mbr-%02x" % ptype, "", "", start * SECTOR, count * SECTOR))
    return parts or None


def partitions(disk):
    """GPT partitions, else MBR primaries, else the whole disk as one 'partition' (number 0)."""
    return read_gpt(disk) or read_mbr(disk) or [Partition(0, "", "", "", 0, disk.size)]
