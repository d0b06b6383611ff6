"""Checksums the filesystems use, in plain Python (MicroPython has only CRC-32 and SHA-256 built in).

`crc32c_raw(crc, data)` is the kernel's crc32c(): no inversion on the way in or out (ext4 and jbd2 use it
so). The standard CRC-32C (btrfs, XFS) is `crc32c(data)`. Tables are built on first use (8 KiB), not at import;
on CPython the `crc32c` package (hardware CRC-32C) is used instead when it is installed.

`crc32c_sectors_key(sums, sector)` (once per run of stored CRCs) and `crc32c_sectors_check(data, key, sector)`
(per read) check a run of sectors against their stored CRCs with one CRC pass over the run instead of one call
per sector (btrfs data checksums); slices of a key serve slices of the run.
"""

import struct

from compat.xxhash import xxh64 as xxhash64  # noqa: F401 - XXH64 for btrfs, shared with zstd

_T8 = None
_T16 = None
_FAST = None


def _tables():
    global _T8
    if _T8 is None:
        import array

        t0 = array.array("I", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            t0[i] = c
        ts = [t0]
        for _ in range(7):
            prev = ts[-1]
            ts.append(array.array("I", [(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)]))
        _T8 = ts
    return _T8


def accelerated():
    """The hardware CRC-32C function `fn(data, crc)` of CPython's `crc32c` package when installed, else False
    (the tables below are used then)."""
    global _FAST
    if _FAST is None:
        try:
            import crc32c as mod

            _FAST = mod.crc32c if mod.crc32c(b"123456789") == 0xE3069283 else False
        except (ImportError, AttributeError, TypeError):
            _FAST = False
    return _FAST


def crc32c_raw(crc: int, data) -> int:
    """CRC-32C (Castagnoli) update without pre/post inversion, like the kernel's crc32c(crc, p, len)."""
    fast = _FAST if _FAST is not None else accelerated()
    if fast:
        return fast(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _crc32c_tables(crc, data)


def _crc32c_tables(crc, data):
    t0, t1, t2, t3, t4, t5, t6, t7 = _tables()
    n = len(data)
    k = n & ~7
    if k:
        words = struct.unpack("<%dI" % (k // 4), data[:k] if k != n else data)
        for i in range(0, k // 4, 2):
            a = words[i] ^ crc
            b = words[i + 1]
            crc = (t7[a & 0xFF] ^ t6[(a >> 8) & 0xFF] ^ t5[(a >> 16) & 0xFF] ^ t4[a >> 24]
                   ^ t3[b & 0xFF] ^ t2[(b >> 8) & 0xFF] ^ t1[(b >> 16) & 0xFF] ^ t0[b >> 24])
    for i in range(k, n):
        crc = t0[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c(data, crc: int = 0) -> int:
    """The standard CRC-32C of data (continuing from a previous standard value `crc`)."""
    return crc32c_raw(crc ^ 0xFFFFFFFF, data) ^ 0xFFFFFFFF


_POLY = 0x82F63B78  # CRC-32C, bit-reflected
_SECTOR_MAPS = {}  # sector size -> (translate tables, tables of the final map), or False


def mulmod(a, b, poly=_POLY):
    """a * b in GF(2)[X] modulo a CRC-32 polynomial (CRC-32C's by default), both in the bit-reflected form of CRC
    values (X^0 is 0x80000000): the multiplication zlib's crc32_combine uses."""
    p = 0
    m = 0x80000000
    while m:
        if a & m:
            p ^= b
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return p


def _linear_tables(cols):
    """4 tables of 256 for the GF(2)-linear map with column j = cols[j]: f(v) = t0[v & 255] ^ t1[v >> 8 & 255]..."""
    out = []
    for b in range(4):
        t = [0] * 256
        for x in range(1, 256):
            low = x & -x
            j = 0
            while low >> j != 1:
                j += 1
            t[x] = t[x ^ low] ^ cols[8 * b + j]
        out.append(t)
    return out


def _sector_maps(sector):
    """What crc32c_sectors_key/check need for one sector size (False when the trick does not apply).

    The CRC of a run of n sectors is C = sum_i c_i * g^(n-1-i) (c_i the sectors' CRCs, g = X^(8*sector)), by the
    combine rule crc(A+B) = crc(A) * X^(8*len(B)) + crc(B). With sector = 4 * 2^k, g = phi^k(X^32), phi the
    squaring map (a ring homomorphism in characteristic 2), so C = phi^k(sum_i e_i * X^(32*(n-1-i))) with
    e_i = phi^-k(c_i); that sum (times X^32) is the raw CRC of the e_i packed as little-endian words. phi^-k is
    applied to all the c_i at once as 16 bytes.translate tables (one per input and output byte). The check is
    then raw_crc(packed e_i) == phi^-k(C * X^(8*sector)), a linear map of C (4 tables)."""
    k, s = 0, 4
    while s < sector:
        s, k = s * 2, k + 1
    if s != sector or not k:
        return False
    cols = []
    for j in range(32):
        v = 1 << j
        for _ in range(k):
            v = mulmod(v, v)
        cols.append(v)
    # invert phi^k (Gaussian elimination over GF(2)); squaring is invertible when the polynomial is squarefree
    pivots = {}  # top bit -> (image, preimage)
    for j in range(32):
        img, pre = cols[j], 1 << j
        for bit in range(31, -1, -1):
            if img >> bit & 1 and bit in pivots:
                img ^= pivots[bit][0]
                pre ^= pivots[bit][1]
        if not img:
            return False
        top = 31
        while not img >> top & 1:
            top -= 1
        pivots[top] = (img, pre)
    inv = []
    for j in range(32):
        v, pre = 1 << j, 0
        for bit in range(31, -1, -1):
            if v >> bit & 1:
                v ^= pivots[bit][0]
                pre ^= pivots[bit][1]
        inv.append(pre)
    inv_t = _linear_tables(inv)
    tr = [[bytes((inv_t[b][x] >> (8 * o)) & 0xFF for x in range(256)) for o in range(4)] for b in range(4)]
    g = 1 << 30  # X, then X^(8 * sector) = X^(2^(k + 5))
    for _ in range(k + 5):
        g = mulmod(g, g)
    final = []
    for j in range(32):
        v, out = mulmod(1 << j, g), 0
        for bit in range(32):
            if v >> bit & 1:
                out ^= inv[bit]
        final.append(out)
    return tr, _linear_tables(final)


def _maps(sector):
    maps = _SECTOR_MAPS.get(sector)
    if maps is None:
        maps = _SECTOR_MAPS[sector] = _sector_maps(sector)
    return maps


def crc32c_sectors_key(sums, sector: int):
    """The stored CRC-32Cs of a run of `sector`-byte sectors (bytes: a little-endian 32-bit word per sector) made
    ready for crc32c_sectors_check: bytes, again a word per sector, so slices of it serve slices of the run. None
    when this runtime has no fast CRC-32C (check sector by sector then)."""
    fast = _FAST if _FAST is not None else accelerated()
    if not fast:
        return None
    maps = _maps(sector)
    if not maps:
        return None
    tr = maps[0]
    n = len(sums) // 4
    if len(sums) != 4 * n:
        raise ValueError("%d bytes of 32-bit checksums" % len(sums))
    if not isinstance(sums, bytes):
        sums = bytes(sums)
    acc = [0, 0, 0, 0]  # output byte lanes of phi^-k(c_i), as little-endian integers
    for b in range(4):
        lane = sums[b::4]
        row = tr[b]
        for o in range(4):
            acc[o] ^= int.from_bytes(lane.translate(row[o]), "little")
    packed = bytearray(4 * n)
    for o in range(4):
        packed[o::4] = acc[o].to_bytes(n, "little")
    return bytes(packed)


def crc32c_sectors_check(data, key, sector: int) -> bool:
    """Whether every `sector`-byte piece of data matches its stored CRC-32C, given crc32c_sectors_key's bytes for
    those sectors: one CRC pass over data. As strong as one CRC-32C over the run: an error inside one sector is
    always caught, several bad sectors cancel out with probability 2^-32. False says only that some sector is bad."""
    n = len(key) // 4
    if len(data) != n * sector or len(key) != 4 * n:
        raise ValueError("%d bytes of data for %d checksums of %d-byte sectors" % (len(data), n, sector))
    if not n:
        return True
    fast = _FAST
    m0, m1, m2, m3 = _SECTOR_MAPS[sector][1]
    c = fast(data)
    return fast(key, 0xFFFFFFFF) ^ 0xFFFFFFFF == m0[c & 0xFF] ^ m1[(c >> 8) & 0xFF] ^ m2[(c >> 16) & 0xFF] ^ m3[c >> 24]


def crc16(crc: int, data) -> int:
    """CRC-16 (ANSI, reflected polynomial 0xA001) update, as ext4's gdt_csum uses it."""
    global _T16
    if _T16 is None:
        import array

        t = array.array("H", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t[i] = c
        _T16 = t
    t = _T16
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc

