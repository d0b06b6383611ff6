"""Probing and LABEL=/UUID=/PARTLABEL=/PARTUUID= resolution on images made by the real tools (CPython and
MicroPython)."""

import struct

import fstree

import diskfs
from diskfs import crypto, formats
from diskfs.errors import FsError, Locked, NotFound, Unsupported
from diskfs.probe import ext_flavor, probe, resolve
from diskfs.zfslabel import nvlist_top

UUID = "01234567-89ab-cdef-0123-456789abcdef"


def test_probe_types_labels_uuids():
    assert probe(fstree.dev("ext4-4k.img")) == ("ext4", "EXT4-4K", UUID)
    assert probe(fstree.dev("ext2.img")) == ("ext4", "EXT2", UUID)  # one reader for the family
    assert probe(fstree.dev("xfs-v5.img")) == ("xfs", "XFS-V5", UUID)
    assert probe(fstree.dev("xfs-v4.img")) == ("xfs", "XFS-V4", UUID)
    assert probe(fstree.dev("btrfs.img")) == ("btrfs", "BTRFS", UUID)
    assert probe(fstree.dev("vfat.img")) == ("vfat", "CBESP", "1234-ABCD")
    assert probe(fstree.dev("luks2.img")) == ("luks2", "cbcrypt", UUID)
    assert probe(fstree.dev("luks1.img")) == ("luks1", "", UUID)
    assert probe(fstree.dev("swap.img")) == ("swap", "cbswap", UUID)
    assert probe(fstree.dev("ext4-frag.img"))[0] == "ext4"
    assert probe(fstree.memdev(bytes(300 * 1024))) == (None, "", "")


def _portable():
    """The registry's names without the image formats (qcow2, UDIF) the host's diskimage package puts first once
    it is imported (as in a pytest run that also holds tests/unit)."""
    return [f.name for f in formats.FORMATS if f.name not in ("qcow2", "udif")]


def test_one_registry_names_detects_and_opens():
    assert _portable() == ["ext4", "xfs", "btrfs", "luks", "vfat", "swap", "zfs_member"]
    for name, kind in (("ext4-4k.img", "ext4"), ("xfs-v5.img", "xfs"), ("btrfs.img", "btrfs"), ("vfat.img", None),
                       ("swap.img", None)):
        dev = fstree.dev(name)
        assert diskfs.detect(dev) == kind, name
        fs = diskfs.open_filesystem(dev)
        assert (fs.TYPE if fs else None) == kind, name
    luks = formats.find(fstree.dev("luks1.img"))
    assert luks.role == formats.CONTAINER
    exc = fstree.raises(FsError, diskfs.open_filesystem, fstree.dev("luks2.img"))  # a container, opened with a key
    if crypto.has_provider():
        assert isinstance(exc, Locked) and "LUKS2 is encrypted: a passphrase or key file is needed" in str(exc), exc
    else:  # MicroPython, as the firmware
        assert isinstance(exc, Unsupported) and "LUKS: needs the Linux init" in str(exc), exc
    exc = fstree.raises(NotFound, diskfs.open, fstree.memdev(bytes(8192), "blank"))
    assert str(exc) == "blank: no ext2/3/4, XFS, btrfs or ZFS filesystem found", exc
    assert diskfs.detect(fstree.memdev(b"", "empty")) is None and probe(fstree.memdev(b"")) == (None, "", "")


class _Fake(formats.Format):
    name, title, role = "fakefs", "FakeFS", formats.FILESYSTEM

    def match(self, head, dev):
        return head[:4] == b"FAKE"

    def open(self, dev, devices, options):
        return ("opened", dev.name, options)


def test_a_new_format_joins_the_registry():
    fake = _Fake()
    formats.register(fake, before="luks")
    try:
        assert _portable()[:5] == ["ext4", "xfs", "btrfs", "fakefs", "luks"]
        dev = fstree.memdev(b"FAKE" + bytes(8188), "fake")
        assert diskfs.detect(dev) == "fakefs" and probe(dev) == ("fakefs", "", "")
        assert diskfs.open(dev, verify=False) == ("opened", "fake", {"verify": False})
        exc = fstree.raises(NotFound, diskfs.open, fstree.memdev(bytes(8192), "blank"))
        assert "no ext2/3/4, XFS, btrfs, FakeFS or ZFS filesystem found" in str(exc), exc
    finally:
        formats.FORMATS.remove(fake)


def test_ext_flavors_as_blkid_names_them():
    assert [ext_flavor(fstree.dev(n)) for n in ("ext2.img", "ext3.img", "ext4-4k.img")] == ["ext2", "ext3", "ext4"]


def test_resolve_specs_on_disks():
    disks = [fstree.dev("vfat.img"), fstree.dev("gpt-disk.img"), fstree.dev("mbr-disk.img")]
    dev, where = resolve(disks, "LABEL=EXT4-1K")
    assert dev is not None and "partition 2 of" in where and where.startswith("ext4")
    assert resolve(disks, "PARTLABEL=root")[0].offset == resolve(disks, "LABEL=EXT4-1K")[0].offset
    assert "partition 2" in resolve(disks, "PARTUUID=AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE")[1]
    assert "partition 6" in resolve(disks, "LABEL=LOGICAL6")[1]
    assert "partition 7" in resolve(disks, "PARTUUID=1234abcd-07")[1]
    assert resolve(disks, "UUID=1234-abcd")[1].startswith("vfat")
    assert resolve(disks, "UUID=01234567-89AB-CDEF-0123-456789ABCDEF")[0] is not None
    assert resolve(disks, "LABEL=nothing-has-this") == (None, "")
    exc = fstree.raises(ValueError, resolve, disks, "/dev/sda1")
    assert "LABEL=" in str(exc)


def _xdr_string(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b + bytes((4 - len(b) % 4) % 4)


def _pair(name, ptype, value):
    body = _xdr_string(name) + struct.pack(">ii", ptype, 1) + value
    return struct.pack(">ii", 8 + len(body), 8 + len(body)) + body


def test_zfs_label_nvlist():
    # A vdev label laid out as the ZFS on-disk format specifies (no zpool here: it needs the kernel module):
    # 16 KiB in, an XDR nvlist; 128 KiB in, the uberblock magic.
    nv = b"\x01\x01\x00\x00" + struct.pack(">ii", 0, 1)
    nv += _pair("version", 8, struct.pack(">Q", 5000)) + _pair("name", 9, _xdr_string("rpool"))
    nv += _pair("state", 8, struct.pack(">Q", 0)) + _pair("pool_guid", 8, struct.pack(">Q", 12345678901234567890))
    nv += struct.pack(">ii", 0, 0)
    label = bytearray(256 * 1024)
    label[16 * 1024:16 * 1024 + len(nv)] = nv
    label[128 * 1024:128 * 1024 + 8] = b"\x0c\xb1\xba\x00\x00\x00\x00\x00"
    assert nvlist_top(label[16 * 1024:128 * 1024])["name"] == "rpool"
    disk = bytes(label) + bytes(512 * 1024)
    assert probe(fstree.memdev(disk)) == ("zfs_member", "rpool", "12345678901234567890")
    # a pair that claims to run past the nvlist is an error inside, and the probe reports no pool name
    bad = bytearray(disk)
    struct.pack_into(">i", bad, 16 * 1024 + 12, 1 << 20)
    assert probe(fstree.memdev(bytes(bad)))[0] is None
