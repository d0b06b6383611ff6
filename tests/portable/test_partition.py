"""GPT and MBR partition tables made by sgdisk and sfdisk, checked against `sfdisk -J` (the oracle, written by
tests/portable/images.py); damaged tables fall back to the backup or fail by name. CPython and MicroPython."""

import json
import struct

import fstree

from diskfs import Corrupt, partitions, read_table
from diskfs.partition import ESP_TYPE, find, utf16le


def _oracle(name):
    with open(fstree.data(name.replace(".img", ".json")), "rb") as f:
        return json.loads(f.read().decode())["partitiontable"]


def test_gpt_matches_sfdisk():
    table = read_table(fstree.dev("gpt-disk.img"))
    want = _oracle("gpt-disk.img")
    assert table.scheme == "gpt" and table.disk_id == want["id"].lower() and not table.warnings
    assert len(table.partitions) == len(want["partitions"]) == 3
    for p, w in zip(table.partitions, want["partitions"]):
        assert p.number == int(w["node"][len(w["node"].rstrip("0123456789")):])
        assert (p.offset, p.size) == (w["start"] * 512, w["size"] * 512)
        assert (p.type_guid, p.part_guid, p.name) == (w["type"].lower(), w["uuid"].lower(), w["name"])
    assert table.partitions[0].type_guid == ESP_TYPE
    assert table.partitions[2].name == "d\u00e4ta \U0001f600"  # UTF-16 with a surrogate pair
    fs = fstree.diskfs.open(table.partitions[1].device(fstree.dev("gpt-disk.img")))
    assert fs.read("/etc/hostname") == b"cloud-boot\n" and fs.label == "EXT4-1K"


def test_gpt_backup_header_is_used_when_the_primary_is_damaged():
    table = read_table(fstree.dev("gpt-backup.img"))
    assert table.scheme == "gpt" and len(table.warnings) == 1
    assert "primary GPT unusable (header CRC mismatch at LBA 1)" in table.warnings[0]
    assert [p.name for p in table.partitions] == [p.name for p in read_table(fstree.dev("gpt-disk.img")).partitions]


def test_gpt_entry_array_damage_and_both_headers_gone():
    disk = fstree.dev("gpt-disk.img")
    last = disk.size // 512 - 1
    # the primary entry array damaged: its CRC fails, the backup array is used
    table = read_table(fstree.Patched("gpt-disk.img").flip(2 * 512 + 60))
    assert "entry array CRC mismatch" in table.warnings[0] and table.partitions[1].name == "root"
    # both headers damaged (the protective MBR stays): an error, not "no partitions"
    dev = fstree.Patched("gpt-disk.img").flip(512 + 16).flip(last * 512 + 16)
    exc = fstree.raises(Corrupt, read_table, dev)
    assert "GPT" in str(exc)
    # an entry that claims LBAs past the end, with its CRCs made valid again: named by entry number
    dev = fstree.Patched("gpt-disk.img")
    entries = bytearray(dev.read(2 * 512, 128 * 128))
    struct.pack_into("<Q", entries, 128 + 40, last + 100)
    hdr = bytearray(dev.read(512, 512))
    struct.pack_into("<I", hdr, 88, _crc(entries))
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into("<I", hdr, 16, _crc(hdr[:92]))
    dev.put(2 * 512, entries).put(512, hdr)
    exc = fstree.raises(Corrupt, read_table, dev)
    assert "GPT entry 2" in str(exc)


def _crc(data):
    import binascii

    return binascii.crc32(bytes(data)) & 0xFFFFFFFF


def test_mbr_primary_extended_logical_matches_sfdisk():
    table = read_table(fstree.dev("mbr-disk.img"))
    want = [w for w in _oracle("mbr-disk.img")["partitions"] if w["type"] != "5"]  # the container itself
    assert table.scheme == "mbr" and table.disk_id == "1234abcd"
    assert [p.number for p in table.partitions] == [1, 5, 6, 7]
    for p, w in zip(table.partitions, want):
        assert (p.offset, p.size, p.type_guid) == (w["start"] * 512, w["size"] * 512, "mbr-%02x" % int(w["type"], 16))
        assert p.part_guid == "1234abcd-%02d" % p.number  # as blkid's PARTUUID
    disk = fstree.dev("mbr-disk.img")
    fs = fstree.diskfs.open(find(disk, 6).device(disk))
    assert fs.label == "LOGICAL6" and fs.read("/vmlinuz") == fstree.fs("ext4-4k.img").read("/vmlinuz")
    assert find(disk, "PARTUUID=1234ABCD-07").number == 7 and find(disk, 9) is None


def test_ebr_chain_loop_is_refused():
    disk = fstree.dev("mbr-disk.img")
    second_ebr = 12288 - 2048 + 8192 + 2048  # sfdisk's second EBR sits 2048 sectors before partition 6
    raw = disk.read(second_ebr * 512, 512)
    assert raw[510:512] == b"\x55\xaa" and raw[446 + 16 + 4] == 5  # it links on to the third
    # point the second EBR's link back at itself (links are relative to the extended partition's start)
    dev = fstree.Patched("mbr-disk.img").put(second_ebr * 512 + 446 + 16 + 8, struct.pack("<I", second_ebr - 10240))
    exc = fstree.raises(Corrupt, read_table, dev)
    assert "EBR chain loops" in str(exc)


def test_no_table_means_the_whole_device():
    for name in ("ext4-4k.img", "vfat.img", "xfs-v5.img"):  # a FAT boot sector ends in 55 AA too
        parts = partitions(fstree.dev(name))
        assert [(p.number, p.offset) for p in parts] == [(0, 0)], name


def test_utf16_names():
    assert utf16le(b"a\x00\x3d\xd8\x00\xde\x00\x00junk") == "a\U0001f600"
    assert utf16le(b"\x00\xd8x\x00") == "\ufffdx"  # a lone surrogate
