"""Checksums the filesystems use, in plain Python (MicroPython has only CRC-32 and SHA-256 built in).

`crc32c_raw(crc, data)` is the kernel's crc32c(): no inversion on the way in or out (ext4 and jbd2 use it
so). The standard CRC-32C (btrfs, XFS) is `crc32c(data)`. Tables are built on first use (8 KiB), not at import;
on CPython the `crc32c` package (hardware CRC-32C) is used instead when it is installed.
"""

import struct

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


def _accelerated():
    """CPython's `crc32c` package (hardware CRC-32C) when installed, else False: the tables below."""
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
    fast = _FAST if _FAST is not None else _accelerated()
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


_M64 = 0xFFFFFFFFFFFFFFFF
_P1, _P2, _P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
_P4, _P5 = 9650029242287828579, 2870177450012600261


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def xxhash64(data, seed: int = 0) -> int:
    """XXH64 (btrfs's xxhash checksum), in plain Python."""
    n = len(data)
    pos = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64
        while pos + 32 <= n:
            a, b, c, d = struct.unpack_from("<QQQQ", data, pos)
            v1 = (_rotl((v1 + a * _P2) & _M64, 31) * _P1) & _M64
            v2 = (_rotl((v2 + b * _P2) & _M64, 31) * _P1) & _M64
            v3 = (_rotl((v3 + c * _P2) & _M64, 31) * _P1) & _M64
            v4 = (_rotl((v4 + d * _P2) & _M64, 31) * _P1) & _M64
            pos += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M64
        for v in (v1, v2, v3, v4):
            h ^= (_rotl((v * _P2) & _M64, 31) * _P1) & _M64
            h = (h * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while pos + 8 <= n:
        k = (_rotl((struct.unpack_from("<Q", data, pos)[0] * _P2) & _M64, 31) * _P1) & _M64
        h = (_rotl(h ^ k, 27) * _P1 + _P4) & _M64
        pos += 8
    if pos + 4 <= n:
        h = (_rotl(h ^ ((struct.unpack_from("<I", data, pos)[0] * _P1) & _M64), 23) * _P2 + _P3) & _M64
        pos += 4
    while pos < n:
        h = (_rotl(h ^ ((data[pos] * _P5) & _M64), 11) * _P1) & _M64
        pos += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h
