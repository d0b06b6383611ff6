"""XXH64 (the 64-bit xxHash), portable: MicroPython and CPython. Used for the zstd Content_Checksum.

`xxh64(data, seed=0) -> int`; `data` is any buffer (bytes, bytearray, memoryview)."""

import struct

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = 0xFFFFFFFFFFFFFFFF
_CHUNK = 8192  # 64-bit words unpacked at a time (bounded temporary memory)


def _round(acc, x):
    acc = (acc + x * _P2) & _M
    return (((acc << 31) & _M) | (acc >> 33)) * _P1 & _M


def _merge(h, v):
    h ^= _round(0, v)
    return (h * _P1 + _P4) & _M


def xxh64(data, seed=0):
    n = len(data)
    p = 0
    if n >= 32:
        M = _M
        P1 = _P1
        P2 = _P2
        v1 = (seed + _P1 + _P2) & M
        v2 = (seed + _P2) & M
        v3 = seed & M
        v4 = (seed - _P1) & M
        stripes = n >> 5
        # Lane round: v = rotl64(v + w * P2, 31) * P1. The product is left unreduced (only its low 64 bits
        # matter to the next round's masked sum), and the rotation's overflow above bit 64 vanishes mod 2**64
        # once multiplied: fewer big-int operations, which MicroPython allocates one by one.
        while stripes:
            k = stripes if stripes < _CHUNK // 4 else _CHUNK // 4
            w = struct.unpack_from("<%dQ" % (4 * k), data, p)
            for j in range(0, 4 * k, 4):
                a = (v1 + w[j] * P2) & M
                v1 = ((a << 31) | (a >> 33)) * P1
                a = (v2 + w[j + 1] * P2) & M
                v2 = ((a << 31) | (a >> 33)) * P1
                a = (v3 + w[j + 2] * P2) & M
                v3 = ((a << 31) | (a >> 33)) * P1
                a = (v4 + w[j + 3] * P2) & M
                v4 = ((a << 31) | (a >> 33)) * P1
            p += 32 * k
            stripes -= k
        v1 &= M
        v2 &= M
        v3 &= M
        v4 &= M
        h = (((v1 << 1) | (v1 >> 63)) + ((v2 << 7) | (v2 >> 57)) + ((v3 << 12) | (v3 >> 52))
             + ((v4 << 18) | (v4 >> 46))) & M
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while p + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, p)[0])
        h = ((((h << 27) & _M) | (h >> 37)) * _P1 + _P4) & _M
        p += 8
    if p + 4 <= n:
        h ^= (struct.unpack_from("<I", data, p)[0] * _P1) & _M
        h = ((((h << 23) & _M) | (h >> 41)) * _P2 + _P3) & _M
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _M
        h = ((((h << 11) & _M) | (h >> 53)) * _P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h
