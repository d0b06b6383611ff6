"""btrfs on images made by mkfs.btrfs --rootdir (+ --compress, --csum, --subvol, -M dup), btrfs-convert and
multi-device mkfs.btrfs sets (tests/portable/images.py), checked against the source tree; degraded RAID reads,
mirrors used when a copy is corrupt, and the parity arithmetic. CPython (pytest) and the MicroPython unix port."""

import os
import struct

import fstree

import diskfs
from diskfs import Corrupt, FsError, NotFound, Unsupported, btrfs, raid
from diskfs.blockdev import FileDevice
from diskfs.checksum import accelerated, crc32c, crc32c_sectors_check, crc32c_sectors_key
from diskfs.lzo import btrfs_lzo, lzo1x_decompress

KERNEL = "/boot/vmlinuz-6.1.0-9-amd64"


def combinations(items, k):
    """itertools.combinations (MicroPython has no itertools)."""
    items = list(items)
    if k == 0:
        return [()]
    return [(items[i],) + rest for i in range(len(items)) for rest in combinations(items[i + 1:], k - 1)]


def _zstd_decoder():
    try:
        from compat import zstd  # noqa: F401
        return True
    except ImportError:
        pass
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def test_single_device_images_hold_the_source_tree():
    for name in ("btrfs.img", "btrfs-zlib.img", "btrfs-lzo.img", "btrfs-xxhash-64k.img", "btrfs-sha256.img",
                 "btrfs-blake2.img", "btrfs-mixed-dup.img"):
        fs = fstree.fs(name)
        assert fs.default_subvol == 5 and fs.subvol == 5, name
        # inline and regular extents, holes, compressed extents, symlinks, hard links
        assert fstree.check_tree(fs, "tree") > 400, name
    assert fstree.fs("btrfs-xxhash-64k.img").nodesize == 65536


def test_zstd_decodes_or_is_named_unsupported():
    fs = fstree.fs("btrfs-zstd.img")
    if _zstd_decoder():
        fstree.check_tree(fs, "tree")
    else:
        exc = fstree.raises(Unsupported, fs.read, KERNEL)
        assert "zstd" in str(exc)
        assert fs.read("/etc/hostname") == b"cloud-boot\n"  # inline and too small to compress


def test_data_checksums_every_kind_are_verified():
    for name in ("btrfs.img", "btrfs-xxhash-64k.img", "btrfs-sha256.img", "btrfs-blake2.img"):
        fs = fstree.fs(name, verify_data=True)
        want = fstree.fs(name, verify_data=False).read(KERNEL)
        assert fs.read(KERNEL) == want, name


def test_ten_thousand_entries_in_a_multi_level_tree():
    fs = fstree.fs("btrfs-many.img")
    assert fs.fs_root[0][1] >= 1  # the subvolume's tree has internal nodes
    assert fstree.check_tree(fs, "many") == 10002
    assert fs.read("/many/entry-09999") == b"9999\n"


def test_converted_ext4_with_big_and_huge_sparse_files():
    fs = fstree.fs("btrfs-big.img")
    assert fs.subvolumes() == [(256, "ext2_saved")]
    fstree.check_tree(fs, "big", ignore=("/lost+found", "/ext2_saved"), skip_digest=("/huge",))
    with fs.open("/huge") as f:
        assert f.size == 5000000003
        f.seek(4999999990)
        assert f.read() == bytes(10) + b"end"
        f.seek(1 << 32)
        assert f.read(4096) == bytes(4096)


def test_default_and_named_subvolumes():
    fs = fstree.fs("btrfs-subvol.img")
    subs = dict((path, sid) for sid, path in fs.subvolumes())
    assert sorted(subs) == ["@", "@/.snapshots", "@/.snapshots/1/snapshot", "@/home"]
    assert fs.default_subvol == subs["@/.snapshots/1/snapshot"] and fs.subvol == fs.default_subvol
    fstree.check_tree(fs, "tree", hardlinks=False)  # the tree was copied into the snapshot (links split)
    home = fs.subvolume("@/home")
    assert home.subvol == subs["@/home"] and home.read("/user/notes") == b"in the home subvolume\n"
    top = fs.subvolume(5)
    assert top.listdir("/") == ["@", "top-level-file"]
    assert top.listdir("/@") == [".snapshots", "home"]
    assert top.read("/@/.snapshots/1/snapshot/etc/hostname") == b"cloud-boot\n"  # through three subvolumes
    assert top.stat("/@/home").st_ino == 256
    assert diskfs.open(fstree.dev("btrfs-subvol.img"), subvol="@").listdir("/") == [".snapshots", "home"]
    fstree.raises(NotFound, fs.subvolume, "@/.snapshots/1/info.xml")
    fstree.raises(NotFound, fs.subvolume, 999)


def _raid(name, count, drop=()):
    paths = [fstree.data("btrfs-%s.img" % name)] + [fstree.data("btrfs-%s.dev%d" % (name, i))
                                                     for i in range(1, count)]
    keep = [FileDevice(p) for i, p in enumerate(paths) if i not in drop]
    return diskfs.open(keep[0], devices=keep[1:])


# (set, devices, devices that may be missing with every byte still readable, a profile). Linux wrote the basic
# tree at /tree (tests/portable/vmimages.py); raid0's metadata is raid1c4: its tree survives 3 missing devices.
RAID = (("raid0", 4, 0, "data:raid0"), ("raid1", 2, 1, "data:raid1"), ("raid10", 4, 1, "data:raid10"),
        ("raid5", 3, 1, "data:raid5"), ("raid6", 4, 2, "data:raid6"), ("raid1c3", 3, 2, "data:raid1c3"))


def _every_item(fs):
    n = 0
    for tree in (fs.root_tree, fs.fs_root[0]):
        for _ in fs._iter(tree, (0, 0, 0)):
            n += 1
    return n


def test_multi_device_sets_written_by_linux_hold_the_tree():
    for name, count, _, profile in RAID:
        fs = _raid(name, count)
        assert fs.num_devices == count and fs.missing_devices() == 0
        assert profile in fs.info()["profiles"], fs.info()
        assert fs.listdir("/") == ["tree"]
        assert fstree.check_tree(fs, "tree", top="/tree") > 400, name


def test_degraded_sets_read_every_byte():
    """Every device combination the profile survives: mirrors retried, RAID5/6 data stripes rebuilt from P
    and Q (the kernel wrote them), and every file compared with the source tree."""
    for name, count, tolerance, _ in RAID:
        items = _every_item(_raid(name, count))
        for k in range(1, tolerance + 1):
            for drop in combinations(range(count), k):
                fs = _raid(name, count, drop)
                assert fs.missing_devices() == k
                assert _every_item(fs) == items, (name, drop)
                fstree.check_tree(fs, "tree", top="/tree")


def test_too_many_missing_devices_is_a_typed_error_naming_them():
    for name, count, tolerance, _ in RAID:
        drop = tuple(range(tolerance + 1))
        if len(drop) == count:  # raid1, raid1c3: nothing left to open
            continue
        try:
            fstree.check_tree(_raid(name, count, drop), "tree", top="/tree")
        except FsError as exc:
            msg = str(exc)
        else:
            raise AssertionError("%s without devices %r read" % (name, drop))
        assert "missing device id " in msg, msg
        ids = msg.split("missing device id ")[1].split(" (")[0].split(", ")
        assert ids and all(int(i) - 1 in drop for i in ids), (name, drop, msg)  # devid n is image n - 1
    fs = _raid("raid0", 4, (1, 2, 3))  # raid1c4 metadata: the listing survives, the data does not
    assert len(fs.listdir("/tree/etc")) > 400
    exc = fstree.raises(NotFound, fs.read, KERNEL.replace("/boot", "/tree/boot"))
    assert "device id" in str(exc)


def test_raid1_tree_block_mirror_is_used_when_a_copy_is_corrupt():
    paths = [fstree.data("btrfs-raid1.img"), fstree.data("btrfs-raid1.dev1")]
    fs = _raid("raid1", 2)
    chunk = fs._chunk(fs.root_tree[0])
    (dev0, phys0), (dev1, phys1) = chunk.stripes
    where = phys0 + fs.root_tree[0] - chunk.start + 200
    bad = fstree.Patched("btrfs-raid1.img", "raid1-dev%d" % dev0).flip(where, 0xFF)
    devs = [bad, FileDevice(paths[1])] if dev0 == 1 else [FileDevice(paths[0]), bad]
    fs = diskfs.open(devs[0], devices=devs[1:])
    assert fs.listdir("/") == ["tree"] and _every_item(fs) == _every_item(_raid("raid1", 2))


def _extent(fs, path):
    """(logical, length) of the first data extent of a file."""
    node = fs.lookup(path)
    for _, fe in fs._iter(node.tree, (node.number, btrfs.EXTENT_DATA, 0)):
        disk_bytenr, disk_bytes = struct.unpack_from("<QQ", fe, 21)
        return disk_bytenr, disk_bytes
    raise AssertionError("no extent")


def test_corrupt_data_is_read_from_the_other_copy():
    fs = fstree.fs("btrfs-mixed-dup.img", verify_data=True)
    want = fs.read(KERNEL)
    logical, _ = _extent(fs, KERNEL)
    chunk = fs._chunk(logical)
    assert chunk.type & btrfs.DUP and len(chunk.stripes) == 2
    first, second = [ph + logical - chunk.start + 5000 for _, ph in chunk.stripes]
    one = fstree.Patched("btrfs-mixed-dup.img").flip(first, 0x55)
    assert btrfs.Btrfs(one, verify_data=True).read(KERNEL) == want
    assert btrfs.Btrfs(one, verify_data=False).read(KERNEL) != want  # what the checksum caught
    other = fstree.Patched("btrfs-mixed-dup.img").flip(second, 0x55)
    assert btrfs.Btrfs(other, verify_data=True).read(KERNEL) == want
    both = fstree.Patched("btrfs-mixed-dup.img").flip(first, 0x55).flip(second, 0x55)
    exc = fstree.raises(Corrupt, btrfs.Btrfs(both, verify_data=True).read, KERNEL)
    assert "checksum" in str(exc) and exc.offset == (logical + 5000) // 4096 * 4096
    # bad sectors in different places on the two copies, inside one checked run: each comes from the other copy
    mixed = fstree.Patched("btrfs-mixed-dup.img").flip(first, 0x55).flip(second + 8192, 0x55)
    assert btrfs.Btrfs(mixed, verify_data=True).read(KERNEL) == want


def _flip_file_byte(name, path, at):
    """(the image with the byte at file offset `at` of an uncompressed file flipped, its logical address)."""
    fs = fstree.fs(name)
    node = fs.lookup(path)
    for k, fe in fs._iter(node.tree, (node.number, btrfs.EXTENT_DATA, at), floor=True):
        disk_bytenr, _, ext_off, length = struct.unpack_from("<QQQQ", fe, 21)
        if k[2] <= at < k[2] + length:
            logical = disk_bytenr + ext_off + at - k[2]
            chunk = fs._chunk(logical)
            return fstree.Patched(name).flip(chunk.stripes[0][1] + logical - chunk.start, 0x01), logical
    raise AssertionError("no extent holds file offset %d" % at)


def test_a_bad_data_sector_is_named_for_every_checksum_kind():
    at = (1 << 20) + 3 * 4096 + 10  # inside the second extent, not at a run's edge
    for name in ("btrfs.img", "btrfs-xxhash-64k.img", "btrfs-sha256.img"):
        good = fstree.fs(name, verify_data=False).read(KERNEL)
        dev, logical = _flip_file_byte(name, KERNEL, at)
        fs = btrfs.Btrfs(dev, verify_data=True)
        exc = fstree.raises(Corrupt, fs.read, KERNEL)
        assert "checksum" in str(exc) and exc.offset == logical // 4096 * 4096, name
        with fs.open(KERNEL) as f:  # the sectors around it still read
            assert f.read(at // 4096 * 4096) == good[:at // 4096 * 4096], name
            f.seek(at // 4096 * 4096 + 4096)
            assert f.read(50000) == good[f.tell() - 50000:f.tell()], name
        assert btrfs.Btrfs(dev, verify_data=False).read(KERNEL)[at] == good[at] ^ 0x01, name


def test_verified_reads_at_any_offset_and_length():
    for name in ("btrfs.img", "btrfs-xxhash-64k.img"):
        want = fstree.fs(name, verify_data=False).read(KERNEL)
        fs = fstree.fs(name, verify_data=True)
        with fs.open(KERNEL) as f:
            # inside one sector, across sector and extent edges, the file's end
            for pos, n in ((0, 1), (4095, 2), (5000, 100), (1048570, 20), (1044480, 8192 + 5), (2999990, 100),
                           (2990000, 20000)):
                f.seek(pos)
                assert f.read(n) == want[pos:pos + n], (name, pos, n)
            f.seek(1000)
            buf = bytearray(100003)
            pos = 1000
            while pos < 1300000:  # odd-sized sequential reads over the first extent edge
                got = f.readinto(buf)
                assert bytes(buf[:got]) == want[pos:pos + got], (name, pos)
                pos += got


def _run_ok(data, sums, ss):
    return crc32c_sectors_check(data, crc32c_sectors_key(sums, ss), ss)


def test_crc32c_runs_agree_with_the_per_sector_check():
    if not accelerated():  # no fast CRC-32C here (MicroPython): callers check sector by sector
        assert crc32c_sectors_key(b"", 4096) is None
        return
    for ss in (512, 4096, 65536):
        n = 9
        data = bytearray((i * 131 + (i >> 9) * 7 + (i >> 13)) & 0xFF for i in range(ss * n))
        sums = b"".join(struct.pack("<I", crc32c(data[i * ss:(i + 1) * ss])) for i in range(n))
        assert _run_ok(data, sums, ss) is True
        assert _run_ok(memoryview(data)[ss:3 * ss], memoryview(sums)[4:12], ss) is True
        key = crc32c_sectors_key(sums, ss)  # a slice of a key serves the same slice of the run
        assert crc32c_sectors_check(memoryview(data)[ss:3 * ss], key[4:12], ss) is True
        assert crc32c_sectors_check(memoryview(data)[ss:3 * ss], key[8:16], ss) is False
        assert _run_ok(b"", b"", ss) is True
        for at in (0, ss * 4 + 17, len(data) - 1):
            data[at] ^= 0x20
            assert _run_ok(data, sums, ss) is False, (ss, at)
            data[at] ^= 0x20
        wrong = bytearray(sums)
        wrong[4 * 5 + 2] ^= 1
        assert _run_ok(data, bytes(wrong), ss) is False
        swapped = data[ss:2 * ss] + data[:ss] + data[2 * ss:]  # every sector intact, two in the wrong place
        assert _run_ok(swapped, sums, ss) is False
        fstree.raises(ValueError, _run_ok, data[:-1], sums, ss)


def _fix_super_csum(dev):
    sb = bytearray(dev.read(btrfs.SUPER, 4096))
    for at, data in dev.patches:
        if btrfs.SUPER <= at < btrfs.SUPER + 4096:
            sb[at - btrfs.SUPER:at - btrfs.SUPER + len(data)] = data
    return dev.put(btrfs.SUPER, struct.pack("<I", crc32c(bytes(sb[0x20:]))))


def test_bad_superblocks_and_features():
    dev = fstree.Patched("btrfs.img").flip(btrfs.SUPER + 0x100)
    assert btrfs.Btrfs(dev).read("/etc/hostname") == b"cloud-boot\n"  # the mirror at 64 MiB
    dev = fstree.Patched("btrfs.img").flip(btrfs.SUPER + 0x100).flip(btrfs.SUPER_MIRRORS[1] + 0x100)
    exc = fstree.raises(Corrupt, btrfs.Btrfs, dev)
    assert "superblock" in str(exc) and "checksum" in str(exc)
    dev = fstree.Patched("btrfs.img")
    incompat = struct.unpack("<Q", dev.read(btrfs.SUPER + 0xBC, 8))[0]
    dev.put(btrfs.SUPER + 0xBC, struct.pack("<Q", incompat | 0x2000))
    exc = fstree.raises(Unsupported, btrfs.Btrfs, _fix_super_csum(dev))
    assert "extent_tree_v2" in str(exc) and exc.feature == "extent_tree_v2"
    dev = fstree.Patched("btrfs.img").put(btrfs.SUPER + 0x94, struct.pack("<I", 3000))
    fstree.raises(Corrupt, btrfs.Btrfs, _fix_super_csum(dev))


def test_corrupt_tree_blocks_are_typed_errors():
    fs = fstree.fs("btrfs.img")
    root = fs.fs_root[0][0]
    chunk = fs._chunk(root)
    copies = [ph + root - chunk.start for _, ph in chunk.stripes]  # metadata is DUP: both copies
    assert len(copies) == 2
    one = fstree.Patched("btrfs.img").flip(copies[0] + 0x200, 0xFF)
    assert btrfs.Btrfs(one).read("/etc/hostname") == b"cloud-boot\n"
    for off, mask in ((0x60, 0xFF), (0x64, 3), (0x200, 0xFF), (0x30, 1)):
        dev = fstree.Patched("btrfs.img")
        for phys in copies:
            dev.flip(phys + off, mask)
        try:
            fs = btrfs.Btrfs(dev)
            fs.listdir("/")
        except FsError:
            pass
        else:
            raise AssertionError("no error for a flip at +%d" % off)
        try:
            fs = btrfs.Btrfs(dev, verify=False)
            fs.listdir("/")
        except FsError:
            pass


def test_lzo_streams():
    # a literal run then the end marker (17 0 0): "hello" from an LZO1X first-byte literal run
    assert lzo1x_decompress(bytes([17 + 5]) + b"hello" + b"\x11\x00\x00", 100) == b"hello"
    for bad in (b"", b"\x00", bytes([17 + 5]) + b"hel", b"\x40\x00\x11\x00\x00", bytes([17 + 5]) + b"hello"):
        fstree.raises(ValueError, lzo1x_decompress, bad, 100)
    fstree.raises(ValueError, btrfs_lzo, b"\x08\x00\x00\x00\xff\xff\x00\x00", 4096)


def test_raid6_arithmetic():
    data = [os.urandom(64) for _ in range(4)]
    p = data[0]
    for d in data[1:]:
        p = raid.xor(p, d)
    q = bytes(64)
    for i, d in enumerate(data):
        q = raid.xor(q, raid.gf_scale(d, raid.gf_pow2(i)))
    for x in range(4):
        others = dict((i, d) for i, d in enumerate(data) if i != x)
        assert raid.recover_one_p(others.values(), p) == data[x]
        assert raid.recover_one_q(x, others, q) == data[x]
    for x, y in combinations(range(4), 2):
        others = dict((i, d) for i, d in enumerate(data) if i not in (x, y))
        assert raid.recover_two(x, y, others, p, q) == (data[x], data[y])


def test_a_bad_extent_item_fails_only_the_reads_that_reach_it():
    fs = fstree.fs("btrfs.img")
    want = fs.read(KERNEL)
    node = fs.lookup(KERNEL)
    leaf = fs._iter(node.tree, (node.number, btrfs.EXTENT_DATA, 2 << 20))
    key, _ = next(leaf)
    assert key == (node.number, btrfs.EXTENT_DATA, 2 << 20)
    # find that item's header in its leaf and shrink the item below a file extent's size
    tree_root, level = node.tree[0], node.tree[1]
    logical = tree_root
    while level:
        blk, n = fs._node(logical, level)
        i = 0
        while i + 1 < n and btrfs._key(blk, btrfs.HEADER + 33 * (i + 1)) <= key:
            i += 1
        logical = struct.unpack_from("<Q", blk, btrfs.HEADER + 33 * i + btrfs.KEY_SIZE)[0]
        level -= 1
    blk, n = fs._node(logical, 0)
    idx = [i for i in range(n) if btrfs._key(blk, btrfs.HEADER + 25 * i) == key][0]
    chunk = fs._chunk(logical)
    where = chunk.stripes[0][1] + logical - chunk.start + btrfs.HEADER + 25 * idx + btrfs.KEY_SIZE + 4
    dev = fstree.Patched("btrfs.img").put(where, struct.pack("<I", 10))
    bad = btrfs.Btrfs(dev, verify=False)  # the leaf's checksum is not fixed up
    with bad.open(KERNEL) as f:
        assert f.read(2 << 20) == want[:2 << 20]
        exc = fstree.raises(Corrupt, f.read, 100)
    assert "extent item of 10 bytes" in str(exc)
