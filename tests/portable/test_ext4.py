"""ext2/3/4 on images made by mke2fs -d (tests/portable/images.py), checked file by file against the source
tree; corrupted copies give typed errors. Runs on CPython (pytest) and on the MicroPython unix port."""

import struct

import fstree

from diskfs import Corrupt, NotFound, Unsupported
from diskfs.checksum import crc32c_raw
from diskfs.ext4 import EXTENTS_FL, INDEX_FL, INLINE_DATA_FL

VARIANTS = {  # image -> (block size, metadata_csum)
    "ext4-4k.img": (4096, True), "ext4-1k.img": (1024, True), "ext4-2k-128.img": (2048, False),
    "ext4-64k.img": (65536, True), "ext4-bigalloc.img": (4096, True), "ext4-metabg.img": (1024, True),
    "ext4-gdtcsum.img": (1024, False), "ext4-casefold.img": (1024, True), "ext3.img": (1024, False),
    "ext2.img": (1024, False), "ext2-nofiletype.img": (4096, False),
}


def test_every_variant_holds_the_source_tree():
    for name, (bs, csum) in sorted(VARIANTS.items()):
        fs = fstree.fs(name)
        assert (fs.block_size, fs.csum) == (bs, csum), name
        assert fs.label == name.split(".")[0].upper()[:16], (name, fs.label)
        fstree.check_tree(fs, "tree")


def test_layouts_are_what_the_variants_claim():
    assert fstree.fs("ext4-4k.img").is64
    assert fstree.fs("ext4-bigalloc.img").cluster_size == 65536
    metabg = fstree.fs("ext4-metabg.img")
    assert metabg.incompat & 0x10 and metabg.group_count > 2 * metabg.descs_per_block  # several meta groups
    assert fstree.fs("ext4-gdtcsum.img").gdt_csum and not fstree.fs("ext4-gdtcsum.img").csum
    assert not fstree.fs("ext2-nofiletype.img").filetype
    assert fstree.fs("ext2.img").lookup("/boot/vmlinuz-6.1.0-9-amd64").flags & EXTENTS_FL == 0  # indirect blocks
    assert fstree.fs("ext4-2k-128.img").inode_size == 128


def test_inline_data_files_and_directories():
    fs = fstree.fs("ext4-inline.img")
    assert fs.lookup("/etc/hostname").flags & INLINE_DATA_FL
    assert fs.lookup("/gr\u00fc\u00dfe").flags & INLINE_DATA_FL  # two entries fit in the inode
    assert fs.read("/etc/hostname") == b"cloud-boot\n"
    # mke2fs 1.47.0/1.47.2 -d with inline_data store this sparse-tailed file as 1024 bytes (a mke2fs bug: debugfs
    # agrees with us); everything else must match the tree.
    fstree.check_tree(fs, "tree", ignore=("/lost+found", "/boot/initrd.img-6.12.117-amd64"))
    assert fs.read("/boot/initrd.img-6.12.117-amd64")[:6] == b"070701"


def test_ten_thousand_entries_htree():
    fs = fstree.fs("ext4-many.img")
    assert fs.lookup("/many").flags & INDEX_FL
    assert fstree.check_tree(fs, "many") == 10002
    assert fs.read("/many/entry-09999") == b"9999\n" and fs.read("/many/entry-00000") == b"0\n"
    assert len(fs.listdir("/many")) == 10000


def test_big_and_huge_sparse_files():
    for name in ("ext4-big.img", "ext2-big.img"):  # extents, and triple-indirect blocks (1 KiB blocks)
        fs = fstree.fs(name)
        fstree.check_tree(fs, "big", skip_digest=("/huge",))
        _check_huge(fs)


def _check_huge(fs):
    with fs.open("/huge") as f:
        assert f.size == 5000000003
        f.seek(-4096, 2)
        tail = f.read()
        assert tail == bytes(4093) + b"end"
        f.seek(4 << 30)  # past 4 GiB: a hole
        buf = bytearray(b"\xff" * 65536)
        assert f.readinto(buf) == 65536 and buf == bytearray(65536)


def test_fragmented_file_has_an_extent_index():
    fs = fstree.fs("ext4-frag.img")
    node = fs.lookup("/big.bin")
    assert len(fs.extents(node)) > 100  # far more extents than the inode holds: an index level
    assert struct.unpack_from("<H", node.block, 6)[0] >= 1  # tree depth
    with open(fstree.data("big.bin"), "rb") as f:
        assert fs.read("/big.bin") == f.read()


def test_dirty_journal_is_replayed_in_memory():
    for name in ("ext4-dirty.img", "ext4-dirty-nocsum.img"):
        dirty = fstree.fs(name)
        clean = fstree.fs(name.replace(".img", "-recovered.img"))  # e2fsck replayed the journal there
        assert dirty.journal_replayed == 2 and clean.journal_replayed == 0
        a, b = fstree.listing(dirty), fstree.listing(clean)
        assert sorted(a) == sorted(b)
        assert "/etc/journaled" in a and "/boot/newdir/inner" in a and "/etc/file-0007" not in a
        for path, (kind, node) in a.items():
            other = b[path][1]
            assert (node.size, node.mode) == (other.size, other.mode), path
            if kind == "f":
                assert fstree.digest(dirty, node) == fstree.digest(clean, other), path
        # the revoked block was not replayed: what the kernel's recovery would also leave
        assert dirty.read("/boot/newdir/inner") == clean.read("/boot/newdir/inner")


def _resum_super(raw):
    struct.pack_into("<I", raw, 1024 + 0x3FC, crc32c_raw(0xFFFFFFFF, raw[1024:1024 + 0x3FC]))


def test_unsupported_incompat_features_are_named():
    raw = fstree.memory("ext4-4k.img", 1 << 20)
    struct.pack_into("<I", raw, 1024 + 96, struct.unpack_from("<I", raw, 1024 + 96)[0] | 0x1)
    _resum_super(raw)
    exc = fstree.raises(Unsupported, fstree.diskfs.open, fstree.memdev(raw))
    assert "incompat 0x1 (compression)" in str(exc) and exc.feature == "compression"
    raw = fstree.memory("ext4-4k.img", 1 << 20)
    struct.pack_into("<I", raw, 1024 + 96, struct.unpack_from("<I", raw, 1024 + 96)[0] | 0x40000000)
    _resum_super(raw)
    assert "unknown" in str(fstree.raises(Unsupported, fstree.diskfs.open, fstree.memdev(raw)))


def test_checksum_mismatches_are_corruption():
    fs = fstree.fs("ext4-1k.img")
    exc = fstree.raises(Corrupt, fstree.diskfs.open, fstree.Patched("ext4-1k.img").flip(1024 + 0x78))  # label
    assert "superblock" in str(exc) and "checksum" in str(exc) and exc.offset == 1024
    # an inode
    node = fs.lookup("/etc/hostname")
    table = fs._group((node.number - 1) // fs.inodes_per_group)[0]
    off = table * fs.block_size + ((node.number - 1) % fs.inodes_per_group) * fs.inode_size
    fs2 = fstree.diskfs.open(fstree.Patched("ext4-1k.img").flip(off + 4, 0x40))  # its size
    exc = fstree.raises(Corrupt, fs2.read, "/etc/hostname")
    assert "inode %d" % node.number in str(exc) and "checksum" in str(exc) and exc.offset == off
    # a group descriptor
    fs2 = fstree.diskfs.open(fstree.Patched("ext4-1k.img").flip(2 * 1024 + 12))  # group 0's free count
    exc = fstree.raises(Corrupt, fs2.listdir, "/")
    assert "group descriptor 0" in str(exc) and "checksum" in str(exc) and exc.offset == 2048
    # the htree root of /etc (e2fsck -D made it), and a linear directory's block
    etc = fs.lookup("/etc")
    first = [src for _, src in fs.runs(etc, 0, fs.block_size)][0]
    exc = fstree.raises(Corrupt, fstree.diskfs.open(fstree.Patched("ext4-1k.img").flip(first + 30)).listdir, "/etc")
    assert "htree node of inode %d" % etc.number in str(exc) and "checksum" in str(exc)
    fs = fstree.fs("ext4-4k.img")
    first = [src for _, src in fs.runs(fs.lookup("/etc"), 0, fs.block_size)][0]
    exc = fstree.raises(Corrupt, fstree.diskfs.open(fstree.Patched("ext4-4k.img").flip(first + 30)).listdir, "/etc")
    assert "directory block of inode" in str(exc) and "checksum" in str(exc) and exc.offset == first


def test_extent_block_checksum_and_loops():
    fs = fstree.fs("ext4-frag.img")
    node = fs.lookup("/big.bin")
    leaf = struct.unpack_from("<I", node.block, 12 + 4)[0]  # the first index entry's child
    fs2 = fstree.diskfs.open(fstree.Patched("ext4-frag.img").flip(leaf * fs.block_size + 20))
    exc = fstree.raises(Corrupt, fs2.read, "/big.bin")
    assert "extent block" in str(exc) and "checksum" in str(exc)
    # the leaf now claims to be an index node (checksums off, so the structure check is what is hit)
    dev = fstree.Patched("ext4-frag.img").put(leaf * fs.block_size + 6, struct.pack("<H", 1))
    exc = fstree.raises(Corrupt, fstree.diskfs.open(dev, verify=False).read, "/big.bin")
    assert "extent node" in str(exc) and "depth" in str(exc)


def test_truncated_and_foreign_images():
    raw = fstree.memory("ext4-4k.img", 200 * 1024)
    exc = fstree.raises(Corrupt, fstree.diskfs.open, fstree.memdev(raw, "truncated"))
    assert "truncated" in str(exc)
    assert fstree.diskfs.open_filesystem(fstree.memdev(bytes(8192))) is None
    raw = fstree.memory("ext4-4k.img", 1 << 20)
    raw[1024 + 24] = 40  # log block size
    exc = fstree.raises(Corrupt, fstree.diskfs.open, fstree.memdev(raw))
    assert "implausible superblock" in str(exc)


def test_paths_symlinks_and_errors():
    fs = fstree.fs("ext4-4k.img")
    assert fs.read("/vmlinuz") == fs.read("/boot/vmlinuz-6.12.117-amd64")  # a fast symlink
    assert fs.read("/etc/to-deep") == b"bottom\n"  # a slow symlink with ..
    assert fs.readlink("/etc/long-link") == "/boot/" + "x" * 80
    assert "too many levels" in str(fstree.raises(NotFound, fs.read, "/etc/loop-a"))
    assert "/boot/nope" in str(fstree.raises(NotFound, fs.read, "/boot/nope"))
    assert "not a directory" in str(fstree.raises(NotFound, fs.listdir, "/etc/hostname"))
    assert "not a directory" in str(fstree.raises(NotFound, fs.read, "/etc/hostname/x"))
    assert fs.read("/boot/../etc/./hostname") == b"cloud-boot\n"
    st = fs.stat("/etc/hostname")
    assert st.st_size == 11 and st.st_nlink == 2 and st.st_ino == fs.stat("/etc/hostname.hardlink").st_ino
    assert fs.stat("/vmlinuz").st_mode & 0o170000 == 0o120000
    assert fs.stat("/vmlinuz", follow=True).st_size == 1500002
