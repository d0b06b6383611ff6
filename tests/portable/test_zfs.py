"""ZFS pools written by zfs-fuse (real ZFS code; tests/portable/images.py), read by diskfs: every layout
(single, mirror, raidz1/2/3) file by file against the source tree, with devices missing up to what the layout
survives; datasets, children at their mountpoints, snapshots, compression and checksum variants, a fat ZAP
directory; zdb's account of each pool as the oracle for its GUID and uberblock. CPython (pytest) and the
MicroPython unix port."""

import fstree

import diskfs
from diskfs.errors import Corrupt, NotFound
from diskfs.probe import probe

LAYOUTS = {"zfs-mirror.img": 2, "zfs-raidz1.img": 3, "zfs-raidz2.img": 4, "zfs-raidz3.img": 5}
#: devices left out per layout: each set is one the layout survives
DEGRADED = {"zfs-mirror.img": [(0,), (1,)], "zfs-raidz1.img": [(0,), (2,)], "zfs-raidz2.img": [(0, 1), (1, 3)],
            "zfs-raidz3.img": [(0, 1, 2), (1, 3, 4)]}
CHANGED = ("/etc/hostname", "/etc/hostname.hardlink", "/etc/file-0000")  # rewritten after the snapshot


def devices(name, count=None, drop=()):
    stem = name[:-4]
    count = count or LAYOUTS.get(name, 1)
    paths = [name] + ["%s.dev%d" % (stem, i) for i in range(1, count)]
    return [fstree.dev(p) for i, p in enumerate(paths) if i not in drop]


def zdb(name, key):
    """A value of zdb's account of the pool (`key: value` lines, first match)."""
    with open(fstree.data(name + ".zdb")) as f:
        for line in f.read().split("\n"):
            k, _, v = line.strip().partition(":")
            if k.strip() == key:
                return v.strip().strip("'")
    raise KeyError(key)


def open_pool(name, dataset="data", drop=()):
    devs = devices(name, drop=drop)
    return diskfs.open(devs[0], devices=devs[1:], dataset=dataset)


def test_every_layout_reads_back_its_tree():
    for name in sorted(LAYOUTS):
        fs = open_pool(name)
        assert fs.TYPE == "zfs" and fs.info()["devices"] == "%d found, 0 missing" % LAYOUTS[name], fs.info()
        fstree.check_tree(fs, "tree")


def test_degraded_layouts_rebuild_from_parity_and_mirrors():
    for name in sorted(DEGRADED):
        for drop in DEGRADED[name]:
            devs = devices(name, drop=drop)
            fs = diskfs.open(devs[0], devices=devs[1:], dataset="data")
            assert fs.info()["devices"].endswith("%d missing" % len(drop)), (name, drop, fs.info())
            fstree.check_tree(fs, "tree")


def test_too_many_missing_devices_is_one_clear_error():
    devs = devices("zfs-raidz1.img", drop=(0, 1))
    exc = fstree.raises(Corrupt, diskfs.open, devs[0], dataset="data")
    assert "no copy could be read (missing devices: 2)" in str(exc), exc


def test_probe_and_zdb_agree():
    for name in ["zfs-single.img"] + sorted(LAYOUTS):
        pool = zdb(name, "name")
        for dev in devices(name):
            assert probe(dev) == ("zfs_member", pool, zdb(name, "pool_guid")), (name, probe(dev))
        fs = open_pool(name, dataset=None)
        assert fs.info()["txg"] == int(zdb(name, "txg")) and fs.uuid_str == zdb(name, "pool_guid")


def test_datasets_children_at_their_mountpoints_and_snapshots():
    name = "zfs-single.img"
    pool = zdb(name, "name")
    root = open_pool(name, dataset=None)
    assert root.dataset == pool and root.datasets() == [
        pool, pool + "/ROOT", pool + "/many", pool + "/plain", pool + "/zle", pool + "/ROOT/debian",
        pool + "/ROOT/debian/boot"]
    assert root.listdir("/") == ["ROOT", "many", "plain", "zle"]  # /srv: children below it (ROOT: an empty dir)
    assert root.read("/zle/etc/hostname") == b"cloud-boot\n"
    fs = open_pool(name, "ROOT/debian")  # mountpoint /; its /boot is the ROOT/debian/boot dataset
    assert fs.mountpoint(pool + "/ROOT/debian/boot") == "/boot" and fs.mountpoint(pool + "/ROOT") == "none"
    fstree.check_tree(fs, "tree", ignore=("/lost+found",) + CHANGED)
    assert fs.read("/etc/hostname") == b"after the snapshot\n" and not fs.exists("/etc/file-0000")
    assert fs.snapshots() == ["installed"]
    snap = open_pool(name, pool + "/ROOT/debian@installed")
    assert snap.read("/etc/hostname") == b"cloud-boot\n" and snap.exists("/etc/file-0000")
    assert snap.listdir("/boot") == []  # the kernel files live in the child dataset
    boot = open_pool(name, "ROOT/debian/boot")
    assert boot.listdir("/") == fs.listdir("/boot") and "vmlinuz-6.12.117-amd64" in boot.listdir("/")
    exc = fstree.raises(NotFound, open_pool, name, "ROOT/nothing")
    assert "has no dataset %s/ROOT/nothing (it has %s, " % (pool, pool) in str(exc), exc
    exc = fstree.raises(NotFound, open_pool, name, "ROOT/debian@later")
    assert "has no snapshot later (it has installed)" in str(exc), exc


def test_compression_and_checksum_variants_and_a_fat_zap():
    name = "zfs-single.img"
    for dataset in ("zle", "plain"):  # zle + fletcher4; off with 8 KiB records (indirect blocks)
        fstree.check_tree(open_pool(name, dataset), "tree")
    fs = open_pool(name, "many")  # 10,000 entries: a fat ZAP over many leaves
    fstree.check_tree(fs, "many")
    assert fs.read("/many/entry-09999") == b"9999\n"


def test_damaged_labels_and_blocks():
    name = "zfs-mirror.img"
    dev = fstree.Patched(name, "damaged")
    for label in (0, 256 * 1024):  # both front labels' nvlists: the end copies are used
        dev.flip(label + 16 * 1024 + 100)
    other = devices(name)[1]
    fs = diskfs.open(dev, devices=[other], dataset="data")
    assert fs.read("/etc/hostname") == b"cloud-boot\n"


def test_lz_matches_that_overlap_what_they_write_decode_in_doubling_copies():
    from diskfs import zfscompress

    # LZ4: "ab" then a match at offset 2 of 4 + 15 + 255 * 400 + 10 bytes (one extended length): "abab..."
    mlen = 4 + 15 + 255 * 400 + 10
    payload = b"\x2f" + b"ab" + b"\x02\x00" + b"\xff" * 400 + b"\x0a"
    src = len(payload).to_bytes(4, "big") + payload
    assert zfscompress.lz4(src, 2 + mlen) == b"ab" * ((2 + mlen) // 2) + b"a" * (mlen % 2)
    # LZJB: literal "xyz" then a match of 66 bytes at offset 3 (the copy map byte marks item 4 as a match)
    lzjb = bytes([0x08]) + b"xyz" + bytes([(63 << 2) | 0, 3])
    assert zfscompress.lzjb(lzjb, 69) == b"xyz" * 23

    class Counting:
        """A bytearray that counts the copies appended to it."""

        def __init__(self, data):
            self.data, self.copies = bytearray(data), 0

        def __len__(self):
            return len(self.data)

        def __getitem__(self, key):
            return self.data[key]

        def __iadd__(self, more):
            self.data += more
            self.copies += 1
            return self

    out = Counting(b"q")
    zfscompress._copy_match(out, 0, 1 << 16)
    assert bytes(out.data) == b"q" * ((1 << 16) + 1) and out.copies <= 17, out.copies  # log2 of the run
