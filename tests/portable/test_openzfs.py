"""Pools OpenZFS itself made (tests/portable/openzfs.py: zfs-dkms in a VM), read by diskfs: feature flags,
lz4 and zstd, embedded blocks (the tree's tiny files), large dnodes, system attributes, SHA-512 checksums, a fat
ZAP directory, raidz2 with two devices missing; natively encrypted datasets (passphrase and raw key, GCM and
CCM). CPython (pytest) and the MicroPython unix port (there: no crypto, as in the firmware)."""

import hashlib

import fstree

import diskfs
from diskfs import crypto
from diskfs.errors import Corrupt, Locked, Unsupported
from diskfs.partition import partitions
from diskfs.probe import probe

POOL = "cbopenzfs"


def part1(path):
    """Partition 1 of an image, where OpenZFS put the pool (as it does on a whole disk)."""
    disk = fstree.dev(path)
    return [p for p in partitions(disk) if p.number == 1][0].device(disk)


def pool(dataset, name="openzfs.img", count=1, drop=(), **options):
    stem = name[:-4]
    paths = [name] + ["%s.dev%d" % (stem, i) for i in range(1, count)]
    devs = [part1(p) for i, p in enumerate(paths) if i not in drop]
    return diskfs.open(devs[0], devices=devs[1:], dataset=dataset, **options)


def _has_sha512_256():
    try:
        hashlib.new("sha512_256")
        return True
    except (AttributeError, ValueError):  # MicroPython's hashlib has no new()
        return False


def test_feature_flag_datasets_read_back_their_trees():
    for dataset in ("lz4", "zstd", "sha512"):
        if dataset == "sha512" and not _has_sha512_256():
            exc = fstree.raises(Unsupported, pool, dataset)
            assert "ZFS sha512 checksums (no SHA-512/256 on this runtime)" in str(exc), exc
            continue
        fs = pool(dataset)
        fstree.check_tree(fs, "tree")
    fstree.check_tree(pool("many"), "many")
    assert probe(part1("openzfs.img"))[:2] == ("zfs_member", POOL)


def test_raidz2_with_two_devices_missing():
    fs = pool("data", "openzfs-raidz2.img", 4, (1, 2))
    assert fs.info()["devices"] == "2 found, 2 missing"
    fstree.check_tree(fs, "tree")


PASSPHRASE, RAW_KEY = b"openzfs passphrase", bytes(range(32))  # tests/portable/openzfs.py KEYS


def test_encrypted_datasets_with_a_passphrase_and_a_raw_key():
    """aes-256-gcm with keyformat=passphrase, aes-256-ccm with keyformat=raw: the wrapped master key unwrapped,
    dnode blocks (encrypted bonus buffers, authenticated cores) and data blocks decrypted, every MAC checked."""
    if not crypto.has_provider():  # MicroPython, as the firmware
        exc = fstree.raises(Unsupported, pool, "enc-pass", passphrase=PASSPHRASE)
        assert "ZFS native encryption: needs the Linux init" in str(exc), exc
        return
    fstree.check_tree(pool("enc-pass", passphrase=PASSPHRASE), "tree")
    fstree.check_tree(pool("enc-raw", key=RAW_KEY), "tree")
    for dataset, options in (("enc-pass", {"passphrase": b"not the passphrase"}), ("enc-raw", {"key": bytes(32)})):
        exc = fstree.raises(Locked, pool, dataset, **options)
        assert str(exc).endswith("ZFS dataset %s/%s: wrong key: it does not unwrap the dataset's master key"
                                 % (POOL, dataset)), exc
    exc = fstree.raises(Locked, pool, "enc-pass")
    assert "ZFS dataset %s/enc-pass is encrypted (keyformat passphrase): a passphrase is needed" % POOL in str(exc)
    exc = fstree.raises(Locked, pool, "enc-raw", key=b"short")
    assert "a raw key is 32 bytes, not 5" in str(exc), exc


def test_a_tampered_encrypted_block_fails_its_mac():
    if not crypto.has_provider():
        return
    fs = pool("enc-pass", passphrase=PASSPHRASE)
    node = fs.lookup("/boot/vmlinuz-6.1.0-9-amd64")
    bp = fs.objsets[0][1].bp_of(node.dn, 3)
    vdev, offset, _, _ = bp.dvas[0]
    # the same block with one ciphertext byte flipped, its checksum words left as they were: the MAC catches it
    dev = fstree.Patched("openzfs.img", "tampered")
    at = part1("openzfs.img").offset + (4 << 20) + offset + 100
    dev.flip(at)
    disk = [p for p in partitions(dev) if p.number == 1][0].device(dev)
    tampered = diskfs.open(disk, dataset="enc-pass", passphrase=PASSPHRASE, verify_data=False)
    exc = fstree.raises(Corrupt, tampered.read, "/boot/vmlinuz-6.1.0-9-amd64")
    assert "encrypted block fails its MAC" in str(exc), exc
