"""Probing and LABEL=/UUID=/PARTLABEL=/PARTUUID= resolution on mkfs-made images (CPython and MicroPython)."""

import os

from diskfs.blockdev import FileDevice
from diskfs.probe import probe, resolve


def _dev(name):
    return FileDevice(os.getenv("CLOUDBOOT_TESTDATA") + "/" + name)


def test_probe_types_labels_uuids():
    assert probe(_dev("ext4-4k.img")) == ("ext4", "EXT4-4K", "01234567-89ab-cdef-0123-456789abcdef")
    assert probe(_dev("xfs-v5.img"))[:2] == ("xfs", "XFS-V5")
    assert probe(_dev("btrfs.img"))[:2] == ("btrfs", "BTRFS")
    assert probe(_dev("vfat.img")) == ("vfat", "CBESP", "1234-ABCD")
    assert probe(_dev("luks2.img"))[:2] == ("luks2", "cbcrypt")
    assert probe(_dev("ext4-frag.img"))[0] == "ext4"


def test_resolve_specs_on_gpt_disk():
    disks = [_dev("vfat.img"), _dev("gpt-disk.img")]
    dev, where = resolve(disks, "LABEL=EXT4-1K")
    assert dev is not None and "partition 2" in where
    assert resolve(disks, "PARTLABEL=root")[0] is not None
    assert resolve(disks, "UUID=01234567-89AB-CDEF-0123-456789ABCDEF")[0] is not None
    assert resolve(disks, "LABEL=nothing-has-this") == (None, "")
    try:
        resolve(disks, "/dev/sda1")
    except ValueError as exc:
        assert "LABEL=" in str(exc)
    else:
        raise AssertionError("no ValueError")
