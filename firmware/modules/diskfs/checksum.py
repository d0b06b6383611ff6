"""Checksums the filesystems use, in plain Python (MicroPython has only CRC-32 and SHA-256 built in).

`crc32c_raw(crc, data)` is the kernel's crc32c(): no inversion on the way in or out (ext4 and jbd2 use it
so). The standard CRC-32C (btrfs, XFS) is `crc32c(data)`. Tables are built on first use (8 KiB), not at import;
on CPython the `crc32c` package (hardware CRC-32C) is used instead when it is installed.
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

