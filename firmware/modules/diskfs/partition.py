"""Partition tables: GPT (header and entry-array CRCs checked, the backup header as fallback, 512-byte and
4 KiB sectors) and MBR (primary, extended/logical chains, protective entries).

`read_table(disk)` returns a PartitionTable; `partitions(disk)` just its list, or the whole disk as partition 0
when there is no table (a filesystem made straight on the device).
"""

import binascii
import struct

from diskfs.blockdev import SliceDevice
from diskfs.errors import Corrupt

ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"
MAX_GPT_ENTRIES = 4096  # the spec's minimum array is 128 entries; real tools stay far below this bound
MAX_LOGICAL = 256  # bound on an extended partition's EBR chain
EXTENDED = (0x05, 0x0F, 0x85)


def guid_str(b) -> str:
    """16 bytes (mixed-endian, as on disk) -> text form."""
    a, b2, c = struct.unpack("<IHH", bytes(b[:8]))
    tail = binascii.hexlify(bytes(b[8:16])).decode()
    return "%08x-%04x-%04x-%s-%s" % (a, b2, c, tail[:4], tail[4:])


def utf16le(raw) -> str:
    """Decode NUL-terminated UTF-16LE (surrogate pairs too; MicroPython has no utf-16 codec)."""
    out = []
    n = len(raw) // 2
    i = 0
    while i < n:
        c = raw[2 * i] | (raw[2 * i + 1] << 8)
        i += 1
        if not c:
            break
        if 0xD800 <= c < 0xDC00 and i < n:
            lo = raw[2 * i] | (raw[2 * i + 1] << 8)
            if 0xDC00 <= lo < 0xE000:
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00)
                i += 1
        if 0xD800 <= c < 0xE000:
            c = 0xFFFD  # a lone surrogate cannot be a str character
        out.append(chr(c))
    return "".join(out)


class Partition:
    """One partition: number (1-based; logical MBR partitions from 5), type, GUIDs, name, byte offset, size."""

    def __init__(self, number, type_guid, part_guid, name, offset, size, attributes=0, scheme="gpt"):
        self.number, self.type_guid, self.part_guid, self.name = number, type_guid, part_guid, name
        self.offset, self.size, self.attributes, self.scheme = offset, size, attributes, scheme

    def device(self, disk):
        """This partition as a block device (a window of `disk`)."""
        return SliceDevice(disk, self.offset, self.size, "%s#%d" % (disk.name, self.number))

    def __repr__(self):
        return "Partition(%d, %s, %r, offset=%d, size=%d)" % (self.number, self.type_guid, self.name, self.offset,
                                                             self.size)


class PartitionTable:
    """scheme ('gpt', 'mbr' or None), disk_id (GPT disk GUID or MBR signature), partitions, and warnings
    (e.g. that the primary GPT header was damaged and the backup was used)."""

    def __init__(self, scheme, disk_id, parts, warnings, sector_size):
        self.scheme, self.disk_id, self.partitions = scheme, disk_id, parts
        self.warnings, self.sector_size = warnings, sector_size


def _read(disk, offset, length):
    if offset < 0 or offset + length > disk.size:
        raise Corrupt("%s: partition table read of %d bytes at byte %d is past the end" % (disk.name, length, offset),
                      "partition table", offset)
    buf = bytearray(length)
    disk.readinto(offset, buf)
    return buf


def _gpt_header(disk, lba, ss):
    """(header bytes, reason) for the GPT header at `lba`: reason is '' when it is valid."""
    if (lba + 1) * ss > disk.size:
        return None, "LBA %d is past the end" % lba
    raw = _read(disk, lba * ss, ss)
    if raw[:8] != b"EFI PART":
        return None, "no 'EFI PART' signature at LBA %d" % lba
    size = struct.unpack_from("<I", raw, 12)[0]
    if not 92 <= size <= ss:
        return None, "header size %d at LBA %d" % (size, lba)
    crc = struct.unpack_from("<I", raw, 16)[0]
    raw[16:20] = b"\0\0\0\0"
    if binascii.crc32(raw[:size]) & 0xFFFFFFFF != crc:
        return None, "header CRC mismatch at LBA %d" % lba
    if struct.unpack_from("<Q", raw, 24)[0] != lba:
        return None, "header at LBA %d says it lives at LBA %d" % (lba, struct.unpack_from("<Q", raw, 24)[0])
    return raw, ""


def _gpt_entries(disk, hdr, lba, ss):
    """Partitions of a valid header, or (None, reason) when its entry array is out of range or fails its CRC."""
    last = disk.size // ss - 1
    first_usable, last_usable = struct.unpack_from("<QQ", hdr, 40)
    entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
    if esize < 128 or esize % 8 or esize > 4096 or count > MAX_GPT_ENTRIES:
        return None, "entry array of %d entries of %d bytes (header at LBA %d)" % (count, esize, lba)
    nbytes = count * esize
    if entries_lba < 2 or entries_lba * ss + nbytes > disk.size:
        return None, "entry array at LBA %d is outside the disk (header at LBA %d)" % (entries_lba, lba)
    table = _read(disk, entries_lba * ss, nbytes)
    if binascii.crc32(table) & 0xFFFFFFFF != ecrc:
        return None, "entry array CRC mismatch (header at LBA %d)" % lba
    parts = []
    for i in range(count):
        e = table[i * esize:i * esize + 128]
        if e[:16] == bytes(16):
            continue
        first, lastlba, attrs = struct.unpack_from("<QQQ", e, 32)
        if first > lastlba or lastlba > last or first < first_usable or lastlba > last_usable:
            raise Corrupt("%s: GPT entry %d spans LBA %d-%d outside the usable LBAs %d-%d"
                          % (disk.name, i + 1, first, lastlba, first_usable, last_usable),
                          "GPT entry", entries_lba * ss + i * esize)
        parts.append(Partition(i + 1, guid_str(e[:16]), guid_str(e[16:32]), utf16le(e[56:128]),
                               first * ss, (lastlba - first + 1) * ss, attrs, "gpt"))
    return parts, ""


def read_gpt(disk, warnings=None):
    """(disk GUID, partitions, sector size) of a GPT disk, or None when there is no GPT header at all.

    The primary header (LBA 1) wins; when it or its entry array is damaged the backup (the primary's
    alternate LBA, else the last LBA) is used and a warning appended. A header that exists but cannot be
    used, with no usable backup, is Corrupt."""
    sizes = [getattr(disk, "sector_size", 512) or 512]
    for extra in (512, 4096):
        if extra not in sizes:
            sizes.append(extra)
    for ss in sizes:
        if disk.size < 3 * ss:
            continue
        reasons = []
        found = False
        primary, why = _gpt_header(disk, 1, ss)
        if primary is not None:
            found = True
            parts, why = _gpt_entries(disk, primary, 1, ss)
            if parts is not None:
                return guid_str(primary[56:72]), parts, ss
        reasons.append("primary: " + why)
        lbas = [disk.size // ss - 1]
        if primary is not None:
            alt = struct.unpack_from("<Q", primary, 32)[0]
            if alt != lbas[0] and 1 < alt < lbas[0]:
                lbas.insert(0, alt)
        for lba in lbas:
            backup, why = _gpt_header(disk, lba, ss)
            if backup is None:
                reasons.append("backup: " + why)
                continue
            found = True
            parts, why = _gpt_entries(disk, backup, lba, ss)
            if parts is None:
                reasons.append("backup: " + why)
                continue
            if warnings is not None:
                warnings.append("%s: primary GPT unusable (%s); using the backup at LBA %d"
                                % (disk.name, reasons[0][9:], lba))
            return guid_str(backup[56:72]), parts, ss
        if found:
            raise Corrupt("%s: GPT unusable: %s" % (disk.name, "; ".join(reasons)), "GPT header", ss)
    return None


def _mbr_entries(sector):
    out = []
    for i in range(4):
        e = 446 + 16 * i
        boot, ptype = sector[e], sector[e + 4]
        start, count = struct.unpack_from("<II", sector, e + 8)
        out.append((boot, ptype, start, count))
    return out


def _looks_like_boot_sector(sector):
    """A FAT/NTFS/exFAT boot sector also ends in 55 AA: a filesystem on the whole device, not an MBR."""
    if sector[0] not in (0xEB, 0xE9):
        return False
    return (sector[3:11] in (b"NTFS    ", b"EXFAT   ") or sector[54:59] == b"FAT12" or sector[54:59] == b"FAT16"
            or sector[82:87] == b"FAT32" or sector[54:57] == b"FAT")


def read_mbr(disk):
    """(disk signature, partitions) of an MBR disk, or None when sector 0 is no MBR (or only a protective one)."""
    if disk.size < 512:
        return None
    mbr = _read(disk, 0, 512)
    if mbr[510:512] != b"\x55\xaa" or _looks_like_boot_sector(mbr):
        return None
    entries = _mbr_entries(mbr)
    if any(boot not in (0, 0x80) for boot, _, _, _ in entries):
        return None
    signature = "%08x" % struct.unpack_from("<I", mbr, 440)[0]
    sectors = disk.size // 512
    parts = []
    for i, (_, ptype, start, count) in enumerate(entries):
        if ptype == 0 or not count:
            continue
        if ptype == 0xEE:
            return None  # protective: the disk is GPT (read_gpt decides), or nothing
        if start + count > sectors:
            raise Corrupt("%s: MBR partition %d (sectors %d+%d) runs past the end of the disk"
                          % (disk.name, i + 1, start, count), "MBR entry", 446 + 16 * i)
        if ptype in EXTENDED:
            parts.extend(_logical(disk, start, count, signature))
            continue
        parts.append(Partition(i + 1, "mbr-%02x" % ptype, "%s-%02x" % (signature, i + 1), "", start * 512,
                               count * 512, 0, "mbr"))
    return signature, parts


def _logical(disk, ext_start, ext_count, signature):
    """Logical partitions in an extended partition's EBR chain (numbered from 5; loops and runaways refused)."""
    out = []
    seen = set()
    ebr = ext_start
    while True:
        if ebr in seen or len(out) >= MAX_LOGICAL:
            raise Corrupt("%s: extended partition's EBR chain loops or exceeds %d entries at sector %d"
                          % (disk.name, MAX_LOGICAL, ebr), "EBR", ebr * 512)
        seen.add(ebr)
        if not ext_start <= ebr < ext_start + ext_count:
            raise Corrupt("%s: EBR at sector %d is outside the extended partition" % (disk.name, ebr), "EBR",
                          ebr * 512)
        sector = _read(disk, ebr * 512, 512)
        if sector[510:512] != b"\x55\xaa":
            raise Corrupt("%s: EBR at sector %d has no 55 AA signature" % (disk.name, ebr), "EBR", ebr * 512)
        (_, ptype, start, count), (_, ntype, nstart, _) = _mbr_entries(sector)[:2]
        if ptype and count:
            first = ebr + start
            if first + count > ext_start + ext_count:
                raise Corrupt("%s: logical partition at sector %d (+%d) leaves the extended partition"
                              % (disk.name, first, count), "EBR", ebr * 512)
            number = 5 + len(out)
            out.append(Partition(number, "mbr-%02x" % ptype, "%s-%02x" % (signature, number), "", first * 512,
                                 count * 512, 0, "mbr"))
        if ntype not in EXTENDED or not nstart:
            return out
        ebr = ext_start + nstart


def read_table(disk) -> PartitionTable:
    """The partition table of `disk`: GPT first (a hybrid MBR is ignored, as firmware does), else MBR."""
    warnings = []
    gpt = read_gpt(disk, warnings)
    if gpt is not None:
        return PartitionTable("gpt", gpt[0], gpt[1], warnings, gpt[2])
    if disk.size >= 512 and _read(disk, 0, 512)[510:512] == b"\x55\xaa":
        mbr = _read(disk, 0, 512)
        if any(ptype == 0xEE for _, ptype, _, _ in _mbr_entries(mbr)) and not _looks_like_boot_sector(mbr):
            raise Corrupt("%s: protective MBR but no valid GPT header (primary or backup)" % disk.name, "GPT header",
                          512)
    mbr = read_mbr(disk)
    if mbr is not None:
        return PartitionTable("mbr", mbr[0], mbr[1], warnings, 512)
    return PartitionTable(None, "", [], warnings, getattr(disk, "sector_size", 512))


def partitions(disk):
    """GPT partitions, else MBR ones, else the whole disk as one 'partition' numbered 0."""
    table = read_table(disk)
    if table.scheme:
        return table.partitions
    return [Partition(0, "", "", "", 0, disk.size, 0, None)]


def find(disk, spec):
    """The partition of `disk` named by `spec`: a number, PARTLABEL=name or PARTUUID=guid (None if absent)."""
    parts = partitions(disk)
    kind, _, want = str(spec).partition("=")
    for p in parts:
        if not want and str(p.number) == str(spec):
            return p
        if kind == "PARTLABEL" and p.name == want:
            return p
        if kind == "PARTUUID" and p.part_guid.lower() == want.lower():
            return p
    return None
