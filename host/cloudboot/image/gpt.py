"""GUID Partition Tables (primary and backup, CRC32s) with a protective MBR, written into an image."""

from __future__ import annotations

import binascii
import hashlib
import struct
import uuid
from dataclasses import dataclass

SECTOR = 512
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BASIC_DATA_TYPE = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
ENTRIES, ENTRY_SIZE = 128, 128
ENTRY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR


@dataclass(frozen=True)
class Partition:
    """A partition: type, first and last LBA (inclusive), name; its GUID is derived from the image."""

    type_guid: uuid.UUID
    first_lba: int
    last_lba: int
    name: str


def _guid(seed: bytes, label: str) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.sha256(seed + label.encode()).digest()[:16], version=4)


def _header(my_lba: int, alt_lba: int, entries_lba: int, last_lba: int, disk_guid: uuid.UUID,
            entries_crc: int) -> bytes:
    fields = [b"EFI PART", 0x00010000, 92, 0, 0, my_lba, alt_lba, 34, last_lba - 33, disk_guid.bytes_le,
              entries_lba, ENTRIES, ENTRY_SIZE, entries_crc]
    head = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
    crc = binascii.crc32(head)
    return (head[:16] + struct.pack("<I", crc) + head[20:]).ljust(SECTOR, b"\0")


def write_gpt(image: bytearray, partitions: list[Partition], seed: bytes) -> None:
    """Write protective MBR, primary GPT (LBA 1-33) and backup GPT (last 33 LBAs) into `image`, whose size
    must be a multiple of 512 and whose LBAs 1-33 and last 33 are free. GUIDs come from `seed`
    (reproducible)."""
    if len(image) % SECTOR:
        raise ValueError("image size is not a multiple of 512")
    head, tail = gpt_regions(len(image) // SECTOR, partitions, seed, bytes(image[:SECTOR]))
    image[:len(head)] = head
    image[len(image) - len(tail):] = tail


def gpt_regions(sectors: int, partitions: list[Partition], seed: bytes, boot_sector: bytes = bytes(SECTOR),
                ) -> tuple[bytes, bytes]:
    """(LBAs 0-33: protective MBR + primary GPT, last 33 LBAs: backup entries + header) of a disk of `sectors`
    512-byte sectors; `boot_sector` keeps its first 446 bytes (boot code) in the MBR."""
    last = sectors - 1
    entries = bytearray(ENTRIES * ENTRY_SIZE)
    for i, p in enumerate(partitions):
        if not 34 <= p.first_lba <= p.last_lba <= last - 33:
            raise ValueError(f"partition {i + 1} [{p.first_lba}, {p.last_lba}] outside the usable LBAs")
        name = p.name.encode("utf-16-le")[:72]
        struct.pack_into("<16s16sQQQ72s", entries, i * ENTRY_SIZE, p.type_guid.bytes_le,
                         _guid(seed, f"part{i + 1}").bytes_le, p.first_lba, p.last_lba, 0, name)
    crc = binascii.crc32(entries)
    disk = _guid(seed, "disk")
    backup_entries = last - ENTRY_SECTORS
    # Protective MBR: one 0xEE partition over the whole disk (capped at 2 TiB), and the 0x55AA signature.
    mbr = bytearray(boot_sector[:SECTOR].ljust(SECTOR, b"\0"))
    mbr[446:510] = bytes(64)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, min(last, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    head = bytes(mbr) + _header(1, last, 2, last, disk, crc) + bytes(entries)
    tail = bytes(entries) + _header(last, 1, backup_entries, last, disk, crc)
    return head, tail
