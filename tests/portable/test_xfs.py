"""Every XFS variant made by mkfs.xfs -p (tests/portable/images.py) against its source tree, and the features
the variants claim: B+tree data forks, bigtime, nrext64, inobtcount, v4 and v5. CPython and MicroPython."""

import struct

import fstree

from diskfs import xfs

VARIANTS = (("xfs-v5.img", 5, "tree"), ("xfs-v4.img", 4, "tree"), ("xfs-v4-512.img", 4, "tree"),
            ("xfs-1k.img", 5, "tree"), ("xfs-64k.img", 5, "tree"), ("xfs-dir16k.img", 5, "tree"),
            ("xfs-nrext64.img", 5, "tree"), ("xfs-many.img", 5, "many"), ("xfs-many-v4.img", 4, "many"))


def test_every_variant_holds_the_source_tree():
    for name, version, tree in VARIANTS:
        fs = fstree.fs(name)
        assert fs.version == version, name
        # mkfs.xfs -p copies hard links, so they are separate inodes here
        assert fstree.check_tree(fs, tree, hardlinks=False) > 400, name


def test_btree_data_fork():
    for name in ("xfs-many.img", "xfs-many-v4.img"):
        fs = fstree.fs(name)
        node = fs.lookup("/many")
        assert node.format == xfs.FMT_BTREE, (name, node.format)  # 10,000 entries: too many extents inline
        assert len(fs.listdir("/many")) == 10000
        assert fs.read("/many/entry-04321") == b"4321\n"


def test_big_file_and_huge_sparse_file():
    fs = fstree.fs("xfs-big.img")
    fstree.check_tree(fs, "big", skip_digest=("/huge",))
    with fs.open("/huge") as f:
        assert f.size == 5000000003
        f.seek(4999999990)
        assert f.read() == bytes(10) + b"end"
        f.seek(3 << 30)
        assert f.read(65536) == bytes(65536)


def test_features_bigtime_nrext64_inobtcount():
    v5 = fstree.fs("xfs-v5.img")
    feats = v5.info()["features"].split()
    assert "bigtime" in feats and "inobtcount" in feats and "nrext64" not in feats
    node = v5.lookup("/etc/hostname")
    assert node.flags2 & xfs.DIFLAG2_BIGTIME
    assert 1500000000 < node.mtime < 5000000000  # bigtime decoded to Unix seconds
    assert abs(node.mtime - fstree.fs("xfs-v4.img").lookup("/etc/hostname").mtime) < 86400 * 365
    n64 = fstree.fs("xfs-nrext64.img")
    assert "nrext64" in n64.info()["features"].split()
    node = n64.lookup("/boot/vmlinuz-6.1.0-9-amd64")
    assert node.flags2 & xfs.DIFLAG2_NREXT64 and node.nextents >= 1
    assert n64.read("/boot/vmlinuz-6.1.0-9-amd64") == v5.read("/boot/vmlinuz-6.1.0-9-amd64")
    v4 = fstree.fs("xfs-v4.img")
    assert v4.info()["features"] == "" and not v4.lookup("/etc/hostname").flags2


def test_kernel_written_file_with_a_btree_data_fork():
    """Linux wrote /frag/frag (tests/portable/vmimages.py): 2,000 one-block extents with holes between them,
    so its data fork is a B+tree, as xfs_db said when the image was made; and the basic tree at /tree."""
    fs = fstree.fs("xfs-btree.img")
    with open(fstree.data("xfs-btree.img.frag-core")) as f:
        oracle = dict(line.split(" = ") for line in f.read().strip().split("\n"))
    assert oracle["core.format"] == "3 (btree)" and oracle["core.nextents"] == "2000", oracle
    node = fs.lookup("/frag/frag")
    assert node.format == xfs.FMT_BTREE and node.nextents == 2000
    extents = fs._extent_list(node)
    assert len(extents) == 2000 and [e[0] for e in extents] == list(range(0, 4000, 2))  # one block, then a hole
    assert fstree.check_tree(fs, "frag", top="/frag") == 1
    with fs.open("/frag/frag") as f:
        f.seek(1999 * 8192 - 10)
        assert f.read(18) == bytes(10) + struct.pack("<Q", 1999)  # a hole, then block 1999 (its index first)
    assert fstree.check_tree(fs, "tree", top="/tree") > 400  # hard links are links here (Linux made them)
