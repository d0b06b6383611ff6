"""ext2/3/4, XFS, btrfs and GPT on images made by mkfs (tests/diskimages.py); runs on CPython and MicroPython."""

import os

from diskfs import Corrupt, NotFound, Unsupported, open_filesystem, partitions
from diskfs.blockdev import FileDevice, MemoryDevice


def _data():
    return os.getenv("CLOUDBOOT_TESTDATA")  # set by tests/conftest.py before any test runs


def _fs(name):
    return open_filesystem(FileDevice(_data() + "/" + name))


def _host(path):
    with open(_data() + "/tree/" + path, "rb") as f:
        return f.read()


def _check_tree(fs):
    assert fs.read("/boot/vmlinuz-6.1.0-9-amd64") == _host("boot/vmlinuz-6.1.0-9-amd64")
    assert fs.read("/vmlinuz") == _host("boot/vmlinuz-6.12.117-amd64")  # through a fast symlink
    assert fs.readlink("/vmlinuz") == "boot/vmlinuz-6.12.117-amd64"
    assert fs.readlink("/etc/long-link") == "/boot/" + "x" * 80  # a slow symlink
    names = fs.listdir("/etc")
    assert len(names) == 403 and "file-0399" in names and "hostname" in names
    assert fs.read("/etc/file-0123") == b"123\n"
    sparse = fs.read("/etc/sparse")
    assert len(sparse) == 5000003 and sparse[-3:] == b"end" and sparse[:4096] == bytes(4096)


def test_xfs_v5_and_v4():
    for name, version in (("xfs-v5.img", 5), ("xfs-v4.img", 4)):
        fs = _fs(name)
        assert fs.version == version and fs.label == name.split(".")[0].upper()
        _check_tree(fs)  # shortform /boot, leaf/node /etc, local and remote symlinks, sparse file
        assert fs.listdir("/boot") == ["initrd.img-6.12.117-amd64", "vmlinuz-6.1.0-9-amd64", "vmlinuz-6.12.117-amd64"]


def test_btrfs_single_device():
    fs = _fs("btrfs.img")
    assert (fs.label, fs.default_subvol) == ("BTRFS", 5)
    _check_tree(fs)  # inline and regular extents, holes, symlinks


def test_ext4_4k_64bit():
    fs = _fs("ext4-4k.img")
    assert (fs.label, fs.block_size, fs.is64) == ("EXT4-4K", 4096, True)
    _check_tree(fs)


def test_ext4_1k_blocks():
    fs = _fs("ext4-1k.img")
    assert fs.block_size == 1024
    _check_tree(fs)


def test_ext3_and_ext2_indirect_blocks():
    for name in ("ext3.img", "ext2.img"):
        _check_tree(_fs(name))


def test_fragmented_file_deep_extent_tree():
    fs = _fs("ext4-frag.img")
    node = fs.lookup("/big.bin")
    assert len(fs.extents(node)) > 100  # far more extents than fit in the inode: an index level
    with open(_data() + "/big.bin", "rb") as f:
        assert fs.read("/big.bin") == f.read()


def test_dirty_journal_refused_by_name():
    try:
        _fs("ext4-dirty.img")
    except Unsupported as exc:
        assert "needs_recovery" in str(exc)
    else:
        raise AssertionError("a needs_recovery filesystem was opened")


def test_missing_path_and_not_ext4():
    fs = _fs("ext4-4k.img")
    try:
        fs.read("/boot/nope")
    except NotFound as exc:
        assert "/boot/nope" in str(exc)
    else:
        raise AssertionError("no NotFound")
    assert open_filesystem(MemoryDevice(bytes(8192))) is None


def test_gpt_partition_holds_ext4():
    disk = FileDevice(_data() + "/gpt-disk.img")
    parts = partitions(disk)
    assert [(p.number, p.name) for p in parts] == [(1, "EFI"), (2, "root")]
    assert parts[0].type_guid == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    fs = open_filesystem(parts[1].device(disk))
    assert fs.read("/etc/hostname") == b"cloud-boot\n"


def test_corrupt_superblock_is_a_clean_error():
    with open(_data() + "/ext4-1k.img", "rb") as f:
        data = bytearray(f.read(1 << 20))
    data[1024 + 24] = 40  # log block size
    try:
        open_filesystem(MemoryDevice(bytes(data)))
    except Corrupt as exc:
        assert "implausible superblock" in str(exc)
    else:
        raise AssertionError("no Corrupt")


def test_file_objects_stat_walk_on_every_filesystem():
    import diskfs

    for name in ("ext4-4k.img", "xfs-v5.img", "btrfs.img"):
        fs = diskfs.open(FileDevice(_data() + "/" + name))
        want = _host("boot/vmlinuz-6.1.0-9-amd64")
        with fs.open("/boot/vmlinuz-6.1.0-9-amd64") as f:
            assert f.read(10) == want[:10]
            f.seek(1000000)
            buf = bytearray(4096)
            assert f.readinto(buf) == 4096 and bytes(buf) == want[1000000:1004096]
            f.seek(-3, 2)
            assert f.read() == want[-3:] and f.read() == b"" and f.tell() == len(want)
        mode, size = fs.stat("/vmlinuz")
        assert mode & 0o170000 == 0o120000  # the symlink itself
        tops = {d: (dirs, len(files)) for d, dirs, files in fs.walk("/")}
        assert [d for d in tops["/"][0] if d != "lost+found"] == ["boot", "etc"]  # ext4 has lost+found
        assert tops["/etc"] == ([], 403) and tops["/boot"] == ([], 3)
    try:
        diskfs.open(MemoryDevice(bytes(70000), "blank"))
    except NotFound as exc:
        assert "blank" in str(exc)
    else:
        raise AssertionError("no NotFound")
