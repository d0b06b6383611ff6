"""XFS and btrfs on images made by mkfs.xfs -p / mkfs.btrfs --rootdir (tests/portable/images.py), checked file by
file against the source tree, plus the one API (`diskfs.open`, file objects, stat, walk) on every filesystem.
Runs on CPython (pytest) and on the MicroPython unix port."""

import fstree

import diskfs
from diskfs import NotFound
from diskfs.blockdev import FileDevice, MemoryDevice
from diskfs.fsbase import name_bytes, name_text


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


def _esc(text, byte):
    """`text` then a byte that is not UTF-8, as the readers name it (a lone surrogate, as surrogateescape)."""
    return text + chr(0xDC00 + byte)


def test_names_that_are_not_utf8_are_listed_and_reachable_on_every_filesystem():
    # tests/portable/images.py NAMES: bad\xff, caf\xc3\xa9\xe9 (UTF-8 then not), dir\xfe/{f\x80, up\xfd -> ../bad\xff}
    bad, mixed, d = _esc("bad", 0xFF), _esc("caf\u00e9", 0xE9), _esc("dir", 0xFE)
    inner, up = _esc("f", 0x80), _esc("up", 0xFD)
    for name in ("ext4-names.img", "xfs-names.img", "btrfs-names.img", "zfs-names.img"):
        fs = fstree.fs(name)
        assert [n for n in fs.listdir("/") if n != "lost+found"] == sorted([bad, mixed, d, "plain"]), name
        assert fs.read("/" + bad) == b"bad\n" and fs.read("/" + mixed) == b"mixed\n", name
        assert [n for n, _ in fs.scandir("/" + d)] == sorted([inner, up]), name
        assert fs.read("/%s/%s" % (d, inner)) == b"inner\n", name
        assert fs.readlink("/%s/%s" % (d, up)) == "../" + bad, name
        assert fs.read("/%s/%s" % (d, up)) == b"bad\n", name  # the link's target resolves through the bytes
        assert not fs.exists("/" + _esc("bad", 0xFE)) and not fs.exists("/bad"), name
        assert [w[0] for w in fs.walk("/") if w[0] != "/lost+found"] == ["/", "/" + d], name


def test_name_text_is_surrogateescape_and_name_bytes_its_inverse():
    cases = [
        (b"plain", "plain"),
        (b"caf\xc3\xa9", "caf\u00e9"),
        (b"a\xffb", "a" + chr(0xDCFF) + "b"),
        (b"caf\xc3\xa9\xe9", "caf\u00e9" + chr(0xDCE9)),
        (b"\xc3", chr(0xDCC3)),  # a sequence cut short
        (b"\xc0\xaf", chr(0xDCC0) + chr(0xDCAF)),  # overlong
        (b"\xed\xa0\x80", chr(0xDCED) + chr(0xDCA0) + chr(0xDC80)),  # an encoded surrogate is not UTF-8
        (b"\xf4\x90\x80\x80", chr(0xDCF4) + chr(0xDC90) + chr(0xDC80) + chr(0xDC80)),  # past U+10FFFF
        (b"\xf0\x9f\x98\x80\xff", "\U0001f600" + chr(0xDCFF)),
    ]
    for raw, text in cases:
        assert name_text(raw) == text, raw
        assert name_bytes(text) == raw, raw
    assert name_bytes(chr(0xD800)) is None  # no name on disk reads as a lone high surrogate
