"""LUKS1 and LUKS2 containers, read-only: the headers parsed and checked, a keyslot opened with a passphrase,
and the data segment as a decrypted block device (`LuksDevice`) that every reader opens like any other.

LUKS1: the 592-byte big-endian header, 8 keyslots (PBKDF2 with sha1/sha256/sha512, anti-forensic split with
its stripes), the master-key digest (PBKDF2, 20 bytes). LUKS2: both binary headers (magic, size from the
allowed set, SHA-256 checksum over header and JSON area, the newer sequence id wins), the JSON metadata
(keyslots with pbkdf2/argon2i/argon2id, an AF split, an encrypted area; segments with offset, size, IV tweak,
cipher and sector size 512..4096; digests binding keyslots to segments). Keyslots are tried by priority
(high, then normal; "ignore" never), then by number: the first that opens wins.

Everything a header asks for is checked before any KDF runs: areas inside the device and not overlapping
each other, the headers or the data; key sizes, stripes and ciphers known; KDF costs under `Limits`, which a
caller can raise (`luks_limits={"max_memory_kib": ...}`). The KDFs and ciphers come from diskfs.crypto
(CPython only: the firmware says "LUKS: needs the Linux init").
"""

import binascii
import hashlib
import struct

from diskfs import crypto
from diskfs.blockdev import BlockDevice, read
from diskfs.errors import Corrupt, LimitExceeded, Locked, Unsupported

MAGIC1, MAGIC2 = b"LUKS\xba\xbe", b"SKUL\xba\xbe"
HDR2_SIZES = (0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000)
SLOT_ACTIVE = 0x00AC71F3
HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")
SECTOR_SIZES = (512, 1024, 2048, 4096)
KEY_SIZES = (16, 24, 32, 48, 64)
CHUNK = 1 << 20  # bytes decrypted per step of a large read

#: name -> (default, what it bounds). cryptsetup's own maxima are 4 GiB of Argon2 memory and 4 threads.
LIMITS = {
    "max_iterations": (50000000, "PBKDF2 iterations of a keyslot or digest"),
    "max_memory_kib": (4194304, "Argon2 memory in KiB"),
    "max_time": (1000, "Argon2 passes"),
    "max_threads": (64, "Argon2 lanes"),
    "max_stripes": (65536, "anti-forensic stripes of a keyslot"),
}


class Limits:
    """The KDF and layout limits a header must stay under; `overrides` maps LIMITS names to new values."""

    def __init__(self, overrides=None):
        for name in LIMITS:
            setattr(self, name, LIMITS[name][0])
        for name, value in (overrides or {}).items():
            if name not in LIMITS:
                raise ValueError("unknown LUKS limit %r (known: %s)" % (name, ", ".join(sorted(LIMITS))))
            setattr(self, name, int(value))

    def check(self, where, name, value):
        if value > getattr(self, name):
            raise LimitExceeded("%s: %s %d is over the limit of %d (raise the LUKS limit %s to allow it)"
                                % (where, LIMITS[name][1], value, getattr(self, name), name), name)


class Keyslot:
    """A keyslot: its KDF, the AF split and the encrypted area holding the split volume key."""

    def __init__(self, number, key_size, kdf, af_hash, stripes, area_offset, area_size, area_cipher,
                 area_key_size, priority=1):
        self.number, self.key_size, self.kdf = number, key_size, kdf
        self.af_hash, self.stripes, self.priority = af_hash, stripes, priority
        self.area_offset, self.area_size = area_offset, area_size
        self.area_cipher, self.area_key_size = area_cipher, area_key_size

    def material_size(self):
        """Bytes of the split key, rounded up to whole 512-byte sectors (as they are encrypted)."""
        return (self.key_size * self.stripes + 511) // 512 * 512


class Header:
    """What both versions come down to: keyslots, the volume-key digest(s) and the data segment."""

    version = 0
    uuid = ""
    label = ""
    header_end = 0  # where the binary header(s) and JSON areas end
    seg_offset = 0
    seg_size = None  # None: to the end of the device
    seg_cipher = ""
    seg_sector = 512
    iv_tweak = 0
    key_size = 0

    def __init__(self, name):
        self.name = name
        self.keyslots = []
        self.digests = []  # (hash, iterations, salt, digest, keyslot numbers or None for all)


def _text(raw):
    return bytes(raw).split(b"\0")[0].decode("utf-8", "replace")


def _where(hdr):
    return "%s: LUKS%d" % (hdr.name, hdr.version)


# ---------------------------------------------------------------------------------------------- LUKS1 ----
def parse_luks1(dev):
    """The header of a LUKS1 device."""
    raw = read(dev, 0, 592)
    hdr = Header(dev.name)
    hdr.version = 1
    cipher, mode, hash_name = _text(raw[8:40]), _text(raw[40:72]), _text(raw[72:104])
    payload, key_bytes = struct.unpack_from(">II", raw, 104)
    mk_digest, mk_salt = raw[112:132], raw[132:164]
    mk_iter = struct.unpack_from(">I", raw, 164)[0]
    hdr.uuid = _text(raw[168:208])
    hdr.key_size = key_bytes
    hdr.seg_cipher = cipher + "-" + mode
    hdr.seg_offset = payload * 512
    hdr.header_end = 592
    hdr.digests.append((hash_name, mk_iter, bytes(mk_salt), bytes(mk_digest), None))
    for i in range(8):
        at = 208 + 48 * i
        active, iterations = struct.unpack_from(">II", raw, at)
        km_offset, stripes = struct.unpack_from(">II", raw, at + 40)
        if active != SLOT_ACTIVE:
            continue
        kdf = {"type": "pbkdf2", "hash": hash_name, "iterations": iterations, "salt": bytes(raw[at + 8:at + 40])}
        size = (key_bytes * stripes + 511) // 512 * 512
        hdr.keyslots.append(Keyslot(i, key_bytes, kdf, hash_name, stripes, km_offset * 512, size, hdr.seg_cipher,
                                    key_bytes))
    return hdr


# ---------------------------------------------------------------------------------------------- LUKS2 ----
def _binary2(dev, offset, magic):
    """(seqid, hdr_size, label, uuid, raw header area) of a valid LUKS2 binary header at `offset`, else a
    string saying what is wrong with it."""
    if offset + 4096 > dev.size:
        return "no room for a header at byte %d" % offset
    b = read(dev, offset, 4096)
    if b[:6] != magic or struct.unpack_from(">H", b, 6)[0] != 2:
        return "no LUKS2 header magic at byte %d" % offset
    hdr_size, seqid = struct.unpack_from(">QQ", b, 8)
    if hdr_size not in HDR2_SIZES:
        return "header size %d at byte %d is not a LUKS2 size (16 KiB to 4 MiB, a power of two)" % (hdr_size, offset)
    if struct.unpack_from(">Q", b, 256)[0] != offset:
        return "header at byte %d says it is at byte %d" % (offset, struct.unpack_from(">Q", b, 256)[0])
    if offset + hdr_size > dev.size:
        return "header at byte %d (%d bytes) runs past the device" % (offset, hdr_size)
    alg = _text(b[72:104])
    area = bytearray(read(dev, offset, hdr_size))
    want = bytes(area[448:448 + 64])
    area[448:448 + 64] = bytes(64)
    if alg == "sha256":
        got = hashlib.sha256(area).digest()
    elif alg in HASHES:
        got = crypto.provider("LUKS2 %s header checksum" % alg).digest(alg, area)
    else:
        return "header checksum algorithm %r at byte %d is unknown" % (alg, offset)
    if want[:len(got)] != got:
        return "header at byte %d fails its %s checksum" % (offset, alg)
    return seqid, hdr_size, _text(b[24:72]), _text(b[168:208]), area


def _json_int(obj, key, what, lo=0, hi=(1 << 64) - 1):
    """An integer field of the JSON metadata (LUKS2 writes 64-bit values as decimal strings)."""
    if not isinstance(obj, dict) or key not in obj:
        raise Corrupt("%s: no %r" % (what, key), "LUKS2 JSON")
    v = obj[key]
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise Corrupt("%s: %r is %r, not a number in %d..%d" % (what, key, obj[key], lo, hi), "LUKS2 JSON")
    return v


def _json_str(obj, key, what):
    if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
        raise Corrupt("%s: no text %r" % (what, key), "LUKS2 JSON")
    return obj[key]


def _json_b64(obj, key, what):
    try:
        return binascii.a2b_base64(_json_str(obj, key, what))
    except (ValueError, binascii.Error):
        raise Corrupt("%s: %r is not base64" % (what, key), "LUKS2 JSON") from None


def _json_dict(obj, key, what):
    if not isinstance(obj, dict) or not isinstance(obj.get(key), dict):
        raise Corrupt("%s: no object %r" % (what, key), "LUKS2 JSON")
    return obj[key]


def parse_luks2(dev):
    """The header of a LUKS2 device: the newer of the two binary headers that pass their checksums."""
    first = _binary2(dev, 0, MAGIC1)
    tried = [] if isinstance(first, tuple) else [first]
    cands = [first] if isinstance(first, tuple) else []
    for off in ((first[1],) if cands else HDR2_SIZES):
        second = _binary2(dev, off, MAGIC2)
        if isinstance(second, tuple):
            cands.append(second)
            break
        tried.append(second)
    if not cands:
        raise Corrupt("%s: LUKS2: no valid header (%s)" % (dev.name, "; ".join(tried[:3])), "LUKS2 header", 0)
    seqid, hdr_size, label, uuid, area = max(cands, key=lambda c: c[0])
    text = bytes(area[4096:]).split(b"\0")[0]
    try:
        import json

        meta = json.loads(text.decode())
    except (ValueError, UnicodeError):
        raise Corrupt("%s: LUKS2: the JSON metadata does not parse" % dev.name, "LUKS2 JSON", 4096) from None
    except RecursionError:
        raise Corrupt("%s: LUKS2: the JSON metadata nests too deep" % dev.name, "LUKS2 JSON", 4096) from None
    hdr = Header(dev.name)
    hdr.version, hdr.label, hdr.uuid = 2, label, uuid
    hdr.header_end = 2 * hdr_size
    where = "%s: LUKS2" % dev.name
    if not isinstance(meta, dict):
        raise Corrupt("%s: JSON metadata is not an object" % where, "LUKS2 JSON")
    config = _json_dict(meta, "config", where)
    if _json_int(config, "json_size", where + " config") != hdr_size - 4096:
        raise Corrupt("%s: config json_size %s does not match the %d-byte header" % (where, config["json_size"],
                                                                                     hdr_size), "LUKS2 JSON")
    reqs = config.get("requirements")
    if isinstance(reqs, dict) and reqs.get("mandatory"):
        raise Unsupported("%s: requirement %s unsupported (an unfinished reencryption?)"
                          % (where, ", ".join(str(r) for r in reqs["mandatory"])), "LUKS2 requirements")
    _segment2(hdr, _json_dict(meta, "segments", where), where)
    slots = _json_dict(meta, "keyslots", where)
    if len(slots) > 32:
        raise Corrupt("%s: %d keyslots (at most 32)" % (where, len(slots)), "LUKS2 JSON")
    for sid in sorted(slots, key=lambda k: int(k) if k.isdigit() else -1):
        ks = _keyslot2(sid, slots[sid], where)
        if ks is not None:
            hdr.keyslots.append(ks)
    digests = _json_dict(meta, "digests", where)
    for did in sorted(digests):
        d = digests[did]
        what = "%s digest %s" % (where, did)
        if _json_str(d, "type", what) != "pbkdf2":
            raise Unsupported("%s: type %r unsupported" % (what, d["type"]), "LUKS2 digest")
        if "0" not in [str(s) for s in d.get("segments", [])]:
            continue
        bound = [int(s) for s in d.get("keyslots", []) if str(s).isdigit()]
        hdr.digests.append((_json_str(d, "hash", what), _json_int(d, "iterations", what, 1), _json_b64(d, "salt", what),
                            _json_b64(d, "digest", what), bound))
    if not hdr.digests:
        raise Corrupt("%s: no digest covers segment 0" % where, "LUKS2 JSON")
    return hdr


def _segment2(hdr, segments, where):
    if "0" not in segments or len(segments) != 1:
        raise Unsupported("%s: %d segments (one crypt segment is read; an unfinished reencryption?)"
                          % (where, len(segments)), "LUKS2 segments")
    seg = segments["0"]
    what = where + " segment 0"
    if _json_str(seg, "type", what) != "crypt":
        raise Unsupported("%s: type %r unsupported" % (what, seg["type"]), "LUKS2 segment")
    hdr.seg_offset = _json_int(seg, "offset", what)
    hdr.seg_size = None if seg.get("size") == "dynamic" else _json_int(seg, "size", what)
    hdr.iv_tweak = _json_int(seg, "iv_tweak", what)
    hdr.seg_cipher = _json_str(seg, "encryption", what)
    hdr.seg_sector = _json_int(seg, "sector_size", what)
    if hdr.seg_sector not in SECTOR_SIZES:
        raise Corrupt("%s: sector size %d (512, 1024, 2048 or 4096)" % (what, hdr.seg_sector), "LUKS2 segment")
    if hdr.seg_offset % hdr.seg_sector or (hdr.seg_size or 0) % hdr.seg_sector:
        raise Corrupt("%s: offset %d / size %s not in whole %d-byte sectors" % (what, hdr.seg_offset, hdr.seg_size,
                                                                              hdr.seg_sector), "LUKS2 segment")


def _keyslot2(sid, ks, where):
    what = "%s keyslot %s" % (where, sid)
    if not sid.isdigit() or int(sid) > 31:
        raise Corrupt("%s: keyslot id %r" % (where, sid), "LUKS2 JSON")
    kind = _json_str(ks, "type", what)
    if kind != "luks2":
        return None  # e.g. a reencryption slot: it holds no volume key
    priority = _json_int(ks, "priority", what, 0, 2) if "priority" in ks else 1
    af = _json_dict(ks, "af", what)
    if _json_str(af, "type", what + " af") != "luks1":
        raise Unsupported("%s: AF type %r unsupported" % (what, af["type"]), "LUKS2 af")
    area = _json_dict(ks, "area", what)
    if _json_str(area, "type", what + " area") != "raw":
        raise Unsupported("%s: area type %r unsupported" % (what, area["type"]), "LUKS2 area")
    kdf = _json_dict(ks, "kdf", what)
    ktype = _json_str(kdf, "type", what + " kdf")
    out = {"type": ktype, "salt": _json_b64(kdf, "salt", what + " kdf")}
    if ktype == "pbkdf2":
        out["hash"] = _json_str(kdf, "hash", what + " kdf")
        out["iterations"] = _json_int(kdf, "iterations", what + " kdf", 1)
    elif ktype in ("argon2i", "argon2id"):
        out["time"] = _json_int(kdf, "time", what + " kdf", 1)
        out["memory"] = _json_int(kdf, "memory", what + " kdf", 8)
        out["cpus"] = _json_int(kdf, "cpus", what + " kdf", 1)
    else:
        raise Unsupported("%s: KDF %r unsupported (pbkdf2, argon2i, argon2id are)" % (what, ktype), ktype)
    return Keyslot(int(sid), _json_int(ks, "key_size", what, 1, 512), out, _json_str(af, "hash", what + " af"),
                   _json_int(af, "stripes", what + " af", 1), _json_int(area, "offset", what + " area"),
                   _json_int(area, "size", what + " area"), _json_str(area, "encryption", what + " area"),
                   _json_int(area, "key_size", what + " area", 1, 512), priority)


# --------------------------------------------------------------------------------------------- checks ----
def parse(dev):
    """The LUKS1 or LUKS2 header of `dev` (Corrupt when there is none)."""
    head = read(dev, 0, 8) if dev.size >= 592 else b""
    if head[:6] != MAGIC1:
        raise Corrupt("%s: no LUKS header" % dev.name, "LUKS header", 0)
    version = struct.unpack_from(">H", head, 6)[0]
    if version == 1:
        return parse_luks1(dev)
    if version == 2:
        return parse_luks2(dev)
    raise Unsupported("%s: LUKS version %d unsupported" % (dev.name, version), "LUKS version")


def _known_cipher(spec, key_size, what):
    cipher, _, mode = spec.partition("-")
    if cipher != "aes" or mode not in ("xts-plain64", "xts-plain", "cbc-essiv:sha256", "cbc-plain64", "cbc-plain",
                                       "ecb"):
        raise Unsupported("%s: cipher %s unsupported (aes in xts-plain64, xts-plain, cbc-essiv:sha256, cbc-plain64, "
                          "cbc-plain or ecb is)" % (what, spec), spec)
    sizes = (32, 64) if mode.startswith("xts") else (16, 24, 32)
    if key_size not in sizes:
        raise Corrupt("%s: %d-byte key for %s (want %s)" % (what, key_size, spec, " or ".join(map(str, sizes))),
                      "LUKS key size")


def check(hdr, dev, limits):
    """Refuse, by name and before any KDF runs, what no honest header holds or what costs more than `limits`."""
    where = _where(hdr)
    seg_end = dev.size if hdr.seg_size is None else hdr.seg_offset + hdr.seg_size
    if hdr.seg_offset < hdr.header_end or seg_end > dev.size or seg_end <= hdr.seg_offset:
        raise Corrupt("%s: data segment [%d, %d) is not between the header (ends at %d) and the device end (%d)"
                      % (where, hdr.seg_offset, seg_end, hdr.header_end, dev.size), "LUKS segment", hdr.seg_offset)
    for name, iterations, _, digest, _ in hdr.digests:
        if name not in HASHES:
            raise Unsupported("%s: digest hash %r unsupported" % (where, name), name)
        limits.check(where + " digest", "max_iterations", iterations)
        if not digest or len(digest) > 64:
            raise Corrupt("%s: a %d-byte digest" % (where, len(digest)), "LUKS digest")
    if hdr.version == 1:
        _known_cipher(hdr.seg_cipher, hdr.key_size, where + " data")
    areas = [(0, hdr.header_end, "the header"), (hdr.seg_offset, seg_end, "the data segment")]
    for ks in hdr.keyslots:
        what = "%s keyslot %d" % (where, ks.number)
        if ks.key_size not in KEY_SIZES:
            raise Corrupt("%s: %d-byte volume key" % (what, ks.key_size), "LUKS keyslot")
        _known_cipher(hdr.seg_cipher, ks.key_size, where + " data")
        _known_cipher(ks.area_cipher, ks.area_key_size, what + " area")
        limits.check(what, "max_stripes", ks.stripes)
        if ks.af_hash not in HASHES:
            raise Unsupported("%s: AF hash %r unsupported" % (what, ks.af_hash), ks.af_hash)
        kdf = ks.kdf
        if kdf["type"] == "pbkdf2":
            if kdf["hash"] not in HASHES:
                raise Unsupported("%s: PBKDF2 hash %r unsupported" % (what, kdf["hash"]), kdf["hash"])
            limits.check(what, "max_iterations", kdf["iterations"])
        else:
            limits.check(what, "max_time", kdf["time"])
            limits.check(what, "max_memory_kib", kdf["memory"])
            limits.check(what, "max_threads", kdf["cpus"])
        end = ks.area_offset + ks.area_size
        if ks.material_size() > ks.area_size:
            raise Corrupt("%s: %d stripes of a %d-byte key do not fit its %d-byte area"
                          % (what, ks.stripes, ks.key_size, ks.area_size), "LUKS keyslot", ks.area_offset)
        if end > dev.size:
            raise Corrupt("%s: area [%d, %d) runs past the %d-byte device" % (what, ks.area_offset, end, dev.size),
                          "LUKS keyslot", ks.area_offset)
        for a, b, name in areas:
            if ks.area_offset < b and end > a:
                raise Corrupt("%s: area [%d, %d) overlaps %s [%d, %d)" % (what, ks.area_offset, end, name, a, b),
                              "LUKS keyslot", ks.area_offset)
        areas.append((ks.area_offset, end, "keyslot %d's area" % ks.number))


# --------------------------------------------------------------------------------------------- unlock ----
def _xor(a, b):
    n = len(a)
    return (int.from_bytes(bytes(a), "little") ^ int.from_bytes(bytes(b), "little")).to_bytes(n, "little")


def _diffuse(p, block, hash_name):
    """The AF diffusion: each digest-sized piece j replaced by H(be32(j) || piece), cut to the piece's length."""
    size = len(p.digest(hash_name, b""))
    out = []
    for j in range(0, len(block), size):
        piece = block[j:j + size]
        out.append(p.digest(hash_name, struct.pack(">I", j // size) + piece)[:len(piece)])
    return b"".join(out)


def af_merge(p, material, key_size, stripes, hash_name):
    """The volume key from its anti-forensic split (LUKS's AF_merge)."""
    d = bytes(key_size)
    for i in range(stripes - 1):
        d = _diffuse(p, _xor(d, material[i * key_size:(i + 1) * key_size]), hash_name)
    return _xor(d, material[(stripes - 1) * key_size:stripes * key_size])


def _derive(p, kdf, passphrase, length):
    if kdf["type"] == "pbkdf2":
        return p.pbkdf2(kdf["hash"], passphrase, kdf["salt"], kdf["iterations"], length)
    return p.argon2(kdf["type"], passphrase, kdf["salt"], kdf["time"], kdf["memory"], kdf["cpus"], length)


def _ordered(keyslots):
    """Keyslots in the order they are tried: priority high (2) first, then normal; 'ignore' (0) never."""
    return [ks for ks in keyslots if ks.priority == 2] + [ks for ks in keyslots if ks.priority == 1]


def verify_key(p, hdr, key, slot=None):
    """Does `key` match a digest (one bound to `slot`, when given)?"""
    for name, iterations, salt, digest, bound in hdr.digests:
        if bound is not None and slot is not None and slot not in bound:
            continue
        if p.pbkdf2(name, key, salt, iterations, len(digest)) == digest:
            return True
    return False


def unlock(dev, hdr, passphrase):
    """(volume key, keyslot number) for a passphrase (bytes); Locked when no keyslot opens with it."""
    p = crypto.provider("LUKS")
    slots = _ordered(hdr.keyslots)
    if not slots:
        raise Locked("%s: no active keyslot" % _where(hdr))
    for ks in slots:
        derived = _derive(p, ks.kdf, passphrase, ks.area_key_size)
        size = ks.material_size()
        material = bytearray(read(dev, ks.area_offset, size))
        p.sector_cipher(ks.area_cipher, derived).decrypt(material, material, 0, 512)
        key = af_merge(p, material, ks.key_size, ks.stripes, ks.af_hash)
        if verify_key(p, hdr, key, ks.number):
            return key, ks.number
    raise Locked("%s: wrong passphrase: no keyslot opens with it (tried keyslot%s %s)"
                 % (_where(hdr), "s" if len(slots) > 1 else "", ", ".join(str(ks.number) for ks in slots)))


class LuksDevice(BlockDevice):
    """The decrypted data segment of an unlocked LUKS device, read in whole sectors and decrypted in runs."""

    def __init__(self, parent, hdr, key):
        self.parent, self.hdr, self.base = parent, hdr, hdr.seg_offset
        self.sector_size = hdr.seg_sector
        size = hdr.seg_size if hdr.seg_size is not None else parent.size - hdr.seg_offset
        self.size = size - size % self.sector_size
        self.name = "%s (LUKS%d)" % (parent.name, hdr.version)
        self.cipher = crypto.provider("LUKS").sector_cipher(hdr.seg_cipher, key)

    def _decrypt(self, start, mv):
        """Fill mv (whole sectors) with the plaintext of the sectors at byte `start` of the segment."""
        self.parent.readinto(self.base + start, mv)
        # dm-crypt's IV counts 512-byte sectors whatever the sector size (LUKS2 sets no iv_large_sectors)
        self.cipher.decrypt(mv, mv, start // 512 + self.hdr.iv_tweak, self.sector_size, self.sector_size // 512)

    def readinto(self, offset, buf):
        n = len(buf)
        self.check(offset, n)
        ss = self.sector_size
        mv = memoryview(buf)
        pos = 0
        while pos < n:
            at = offset + pos
            first = at - at % ss
            end = min(first + CHUNK, (offset + n + ss - 1) // ss * ss)
            take = min(n - pos, end - at)
            if at == first and take == end - first:  # whole sectors: decrypt in the caller's buffer
                self._decrypt(first, mv[pos:pos + take])
            else:
                tmp = bytearray(end - first)
                self._decrypt(first, memoryview(tmp))
                mv[pos:pos + take] = memoryview(tmp)[at - first:at - first + take]
            pos += take

    def close(self):
        self.parent.close()


def _secret(options):
    """The passphrase (bytes) in `options` (`passphrase`, text or bytes, or `key`: a key file's bytes)."""
    for name in ("passphrase", "key"):
        value = options.get(name)
        if value is not None:
            return value.encode() if isinstance(value, str) else bytes(value)
    return None


def open_device(dev, options):
    """The decrypted device inside LUKS device `dev`: header checked under options["luks_limits"], keyslots
    tried with options["passphrase"] (or the bytes of a key file, options["key"])."""
    hdr = parse(dev)
    check(hdr, dev, Limits(options.get("luks_limits")))
    try:
        crypto.provider("LUKS")
    except Unsupported as exc:  # the firmware: name the device in the one line it prints
        raise Unsupported("%s: %s" % (dev.name, exc), "LUKS") from None
    secret = _secret(options)
    if secret is None:
        raise Locked("%s is encrypted: a passphrase or key file is needed to open it" % _where(hdr))
    key, _ = unlock(dev, hdr, secret)
    return LuksDevice(dev, hdr, key)
