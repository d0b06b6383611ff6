"""LUKS1 and LUKS2 on images whose every byte real LUKS code wrote (tests/portable/images.py: cryptsetup
luksFormat / reencrypt --encrypt, QEMU's LUKS driver), each holding a filesystem checked file by file against
its source tree; wrong passphrases; hostile headers refused by name before any KDF runs. CPython (pytest) and
the MicroPython unix port, where there is no crypto: there the header checks still run and opening says
"LUKS: needs the Linux init", as the firmware does."""

import hashlib
import json
import struct

import fstree

import diskfs
from diskfs import crypto
from diskfs.errors import Corrupt, LimitExceeded, Locked, Unsupported
from diskfs.probe import probe

PASSPHRASE = b"correct horse \xe2\x9c\x93"
SECOND = b"second slot"
#: image -> (LUKS version, filesystem inside)
VARIANTS = {
    "luks1-xts-sha1.img": (1, "ext4"),
    "luks1-essiv-sha256.img": (1, "ext4"),
    "luks1-xts-sha512.img": (1, "btrfs"),
    "luks2-pbkdf2.img": (2, "ext4"),
    "luks2-argon2i.img": (2, "xfs"),
    "luks2-argon2id.img": (2, "ext4"),
}


def _without_crypto(fn, *args, **kw):
    """fn(...) on a runtime without a crypto provider (as the firmware is); returns what it raised."""
    saved = crypto._PROVIDER[:]
    crypto.set_provider(None)
    try:
        fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - the caller asserts on it
        return exc
    finally:
        crypto._PROVIDER[:] = saved
    raise AssertionError("no error")


def test_every_variant_reads_back_its_tree():
    for name, (version, fstype) in VARIANTS.items():
        if not crypto.has_provider():
            exc = fstree.raises(Unsupported, fstree.fs, name, passphrase=PASSPHRASE)
            assert "LUKS: needs the Linux init" in str(exc), exc
            continue
        fs = fstree.fs(name, passphrase=PASSPHRASE)
        assert fs.TYPE == fstype and fs.dev.name.endswith("(LUKS%d)" % version), (name, fs.TYPE, fs.dev.name)
        fstree.check_tree(fs, "tree", hardlinks=fstype != "xfs")  # mkfs.xfs -p copies hard links


def test_probe_names_versions_labels_and_uuids():
    for name, (version, _) in VARIANTS.items():
        kind, label, uuid = probe(fstree.dev(name))
        assert kind == "luks%d" % version and len(uuid) == 36, (name, kind, uuid)
        assert label == (name[:-4] if version == 2 else ""), (name, label)


def test_keyslots_wrong_passphrases_and_key_files():
    if not crypto.has_provider():
        return
    exc = fstree.raises(Locked, fstree.fs, "luks2-argon2id.img", passphrase=b"wrong")
    assert str(exc).endswith("LUKS2: wrong passphrase: no keyslot opens with it (tried keyslots 0, 1)"), exc
    assert "wrong" not in str(exc).split(":")[0]
    exc = fstree.raises(Locked, fstree.fs, "luks1-xts-sha1.img")
    assert "LUKS1 is encrypted: a passphrase or key file is needed" in str(exc), exc
    fs = fstree.fs("luks2-argon2id.img", passphrase=SECOND)  # the second keyslot opens the same volume
    assert fs.read("/etc/hostname") == b"cloud-boot\n"
    fs = fstree.fs("luks1-xts-sha1.img", key=PASSPHRASE)  # a key file's bytes are a passphrase, as cryptsetup's
    assert fs.read("/etc/hostname") == b"cloud-boot\n"
    fs = fstree.fs("luks2-pbkdf2.img", passphrase=PASSPHRASE.decode())  # text is taken as UTF-8
    assert fs.exists("/boot/vmlinuz-6.12.117-amd64")


def test_unaligned_reads_decrypt_the_same_bytes():
    if not crypto.has_provider():
        return
    for name in ("luks2-argon2id.img", "luks1-essiv-sha256.img"):
        from diskfs.luks import open_device

        dev = open_device(fstree.dev(name), {"passphrase": PASSPHRASE})
        whole = dev.read(0, 3 * dev.sector_size + 8192)
        for start, length in ((1, 10), (511, 2), (4095, 4098), (100, 3 * dev.sector_size)):
            assert dev.read(start, length) == whole[start:start + length], (name, start, length)
        assert fstree.raises(Corrupt, dev.read, dev.size - 10, 11)


def test_the_firmware_says_it_needs_the_linux_init():
    exc = _without_crypto(diskfs.open, fstree.dev("luks2-pbkdf2.img"), passphrase=PASSPHRASE)
    assert isinstance(exc, Unsupported) and "LUKS: needs the Linux init" in str(exc), exc


def _luks2(name, edit, label="hostile"):
    """The LUKS2 image with its JSON metadata changed by edit(meta) in both headers, checksums redone."""
    dev = fstree.Patched(name, label)
    hdr_size = struct.unpack_from(">Q", dev.read(0, 4096), 8)[0]
    for off in (0, hdr_size):
        area = bytearray(dev.read(off, hdr_size))
        meta = json.loads(bytes(area[4096:]).split(b"\0")[0])
        edit(meta)
        text = json.dumps(meta).encode()
        area[4096:] = text + bytes(hdr_size - 4096 - len(text))
        area[448:512] = bytes(64)
        area[448:480] = hashlib.sha256(area).digest()
        dev.put(off, area)
    return dev


def _slot(meta):
    return meta["keyslots"]["0"]


def test_hostile_luks2_headers_are_refused_before_any_kdf():
    base = "luks2-argon2id.img"
    cases = [
        (lambda m: _slot(m)["kdf"].update({"memory": 1 << 30}), LimitExceeded,
         "keyslot 0: Argon2 memory in KiB 1073741824 is over the limit of 4194304 (raise the LUKS limit "
         "max_memory_kib"),
        (lambda m: _slot(m)["kdf"].update({"time": 1 << 20}), LimitExceeded, "Argon2 passes 1048576"),
        (lambda m: _slot(m)["kdf"].update({"cpus": 1 << 16}), LimitExceeded, "max_threads"),
        (lambda m: m["keyslots"]["1"]["kdf"].update({"iterations": 1 << 40}), LimitExceeded,
         "keyslot 1: PBKDF2 iterations of a keyslot or digest 1099511627776 is over"),
        (lambda m: m["digests"]["0"].update({"iterations": 1 << 33}), LimitExceeded, "digest: PBKDF2 iterations"),
        (lambda m: _slot(m)["area"].update({"offset": str(1 << 40)}), Corrupt, "keyslot 0: area [1099511627776,"),
        (lambda m: _slot(m)["area"].update({"offset": "4096"}), Corrupt, "overlaps the header [0, 32768)"),
        (lambda m: m["keyslots"]["1"]["area"].update({"offset": _slot(m)["area"]["offset"]}), Corrupt,
         "keyslot 1: area [32768, 290816) overlaps keyslot 0's area"),
        (lambda m: m["segments"]["0"].update({"offset": "8192"}), Corrupt, "data segment [8192,"),
        (lambda m: _slot(m)["af"].update({"stripes": 1 << 30}), LimitExceeded, "anti-forensic stripes"),
        (lambda m: _slot(m)["af"].update({"stripes": 40000}), Corrupt, "40000 stripes of a 64-byte key do not fit"),
        (lambda m: m["segments"]["0"].update({"sector_size": 8192}), Corrupt, "sector size 8192"),
        (lambda m: m["segments"]["0"].update({"encryption": "serpent-xts-plain64"}), Unsupported,
         "cipher serpent-xts-plain64 unsupported"),
        (lambda m: _slot(m)["kdf"].update({"type": "scrypt"}), Unsupported, "KDF 'scrypt' unsupported"),
        (lambda m: m["config"].update({"json_size": "1"}), Corrupt, "config json_size 1 does not match"),
        (lambda m: m["config"].update({"requirements": {"mandatory": ["online-reencrypt-v2"]}}), Unsupported,
         "requirement online-reencrypt-v2 unsupported"),
        (lambda m: _slot(m).update({"key_size": "a lot"}), Corrupt, "'key_size' is 'a lot'"),
    ]
    for edit, kind, text in cases:
        dev = _luks2(base, edit)
        exc = _without_crypto(diskfs.open, dev, passphrase=PASSPHRASE)  # no KDF could run: there is no crypto
        assert isinstance(exc, kind) and text in str(exc), (text, exc)
        assert str(exc).startswith("hostile: LUKS2"), exc
    # a limit a user raised lets the header through, to the KDF (here: no crypto on this runtime)
    dev = _luks2(base, lambda m: _slot(m)["kdf"].update({"memory": 1 << 23}))
    exc = _without_crypto(diskfs.open, dev, passphrase=PASSPHRASE, luks_limits={"max_memory_kib": 1 << 23})
    assert isinstance(exc, Unsupported) and "needs the Linux init" in str(exc), exc


def test_damaged_luks2_binary_headers():
    name = "luks2-pbkdf2.img"
    # the primary's checksum broken: the secondary (at the primary's size) is used
    dev = fstree.Patched(name, "hostile").flip(4096 + 10)
    if crypto.has_provider():
        assert diskfs.open(dev, passphrase=PASSPHRASE).exists("/etc/hostname")
    else:
        assert isinstance(_without_crypto(diskfs.open, dev, passphrase=PASSPHRASE), Unsupported)
    both = fstree.Patched(name, "hostile").flip(4096 + 10).flip(16384 + 4096 + 10)
    exc = _without_crypto(diskfs.open, both, passphrase=PASSPHRASE)
    assert isinstance(exc, Corrupt) and "LUKS2: no valid header (header at byte 0 fails its sha256" in str(exc), exc
    huge = fstree.Patched(name, "hostile")  # 8 MiB headers: not a LUKS2 size
    huge.put(8, struct.pack(">Q", 8 << 20)).put(16384 + 8, struct.pack(">Q", 8 << 20))
    exc = _without_crypto(diskfs.open, huge, passphrase=PASSPHRASE)
    assert "header size 8388608 at byte 0 is not a LUKS2 size" in str(exc), exc


def test_hostile_luks1_headers():
    name = "luks1-xts-sha1.img"
    slot0 = 208
    cases = [
        (lambda d: d.put(slot0 + 4, struct.pack(">I", 0xFFFFFFFF)), LimitExceeded,
         "LUKS1 keyslot 0: PBKDF2 iterations of a keyslot or digest 4294967295 is over the limit"),
        (lambda d: d.put(slot0 + 44, struct.pack(">I", 1 << 24)), LimitExceeded,
         "anti-forensic stripes of a keyslot 16777216"),
        (lambda d: d.put(slot0 + 40, struct.pack(">I", 1 << 30)), Corrupt, "runs past the"),
        (lambda d: d.put(208 + 48 + 40, struct.pack(">I", 8)).put(208 + 48, struct.pack(">I", 0x00AC71F3)), Corrupt,
         "LUKS1 keyslot 1: area [4096, 132096) overlaps keyslot 0's area [4096, 132096)"),
        (lambda d: d.put(104, struct.pack(">I", 1)), Corrupt, "data segment [512,"),
        (lambda d: d.put(164, struct.pack(">I", 1 << 31)), LimitExceeded, "LUKS1 digest: PBKDF2 iterations"),
        (lambda d: d.put(8, b"twofish\0"), Unsupported, "cipher twofish-xts-plain64 unsupported"),
        (lambda d: d.put(108, struct.pack(">I", 20)), Corrupt, "20-byte key for aes-xts-plain64"),
        (lambda d: d.put(72, b"md5\0"), Unsupported, "digest hash 'md5' unsupported"),
    ]
    for patch, kind, text in cases:
        dev = fstree.Patched(name, "hostile")
        patch(dev)
        exc = _without_crypto(diskfs.open, dev, passphrase=PASSPHRASE)
        assert isinstance(exc, kind) and text in str(exc), (text, exc)
