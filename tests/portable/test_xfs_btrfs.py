"""XFS and btrfs on images made by mkfs.xfs -p / mkfs.btrfs --rootdir (tests/portable/images.py), checked file by
file against the source tree, plus the one API (`diskfs.open`, file objects, stat, walk) on every filesystem.
Runs on CPython (pytest) and on the MicroPython unix port."""

import fstree

import diskfs
from diskfs import NotFound
from diskfs.blockdev import FileDevice, MemoryDevice


def test_xfs_v5_and_v4():
    for name, version in (("xfs-v5.img", 5), ("xfs-v4.img", 4)):
        fs = fstree.fs(name)
        assert fs.version == version, name
        # mkfs.xfs -p copies hard links; shortform, block, leaf/node directories; local and remote symlinks
        fstree.check_tree(fs, "tree", hardlinks=False)


def test_btrfs_single_device_basic():
    fs = fstree.fs("btrfs.img")
    assert fs.default_subvol == 5
    fstree.check_tree(fs, "tree")  # inline and regular extents, holes, symlinks, hard links


def test_file_objects_stat_walk_on_every_filesystem():
    for name in ("ext4-4k.img", "xfs-v5.img", "btrfs.img"):
        fs = diskfs.open(FileDevice(fstree.data(name)))
        want = fs.read("/boot/vmlinuz-6.1.0-9-amd64")
        assert len(want) > 1004096, name
        with fs.open("/boot/vmlinuz-6.1.0-9-amd64") as f:
            assert f.read(10) == want[:10]
            f.seek(1000000)
            buf = bytearray(4096)
            assert f.readinto(buf) == 4096 and bytes(buf) == want[1000000:1004096]
            f.seek(-3, 2)
            assert f.read() == want[-3:] and f.read() == b"" and f.tell() == len(want)
        tops = {d: (dirs, files) for d, dirs, files in fs.walk("/")}
        assert "boot" in tops["/"][0] and "vmlinuz-6.1.0-9-amd64" in tops["/boot"][1], name
    try:
        diskfs.open(MemoryDevice(bytes(70000), "blank"))
    except NotFound as exc:
        assert "blank" in str(exc)
    else:
        raise AssertionError("no NotFound")
