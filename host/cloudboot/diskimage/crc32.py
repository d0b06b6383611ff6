"""CRC-32 (zlib's) of a message after some of its bytes changed, without reading the rest of it.

CRC-32 is affine over GF(2): for two messages of the same length, crc(A) ^ crc(B) = raw(A ^ B), where raw is
the CRC with zero initial value and no final inversion. A ^ B is zero except where bytes changed, leading zeros
do not change a zero-initialised CRC, and trailing zeros multiply it by x^(8n) modulo the polynomial. So a
changed window costs a CRC of the window and one modular power: what lets a label written into a multi-GiB
UDIF image keep its checksums true without reading the image.
"""

from __future__ import annotations

import zlib

from diskfs.checksum import mulmod

POLY = 0xEDB88320  # bit-reflected: X^0 is 0x80000000


def _mulmod(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial, both bit-reflected."""
    return mulmod(a, b, POLY)


def _x8n(n: int) -> int:
    """x^(8n) modulo the polynomial, bit-reflected."""
    result, square = 0x80000000, 0x00800000  # x^0, and x^8
    while n:
        if n & 1:
            result = _mulmod(square, result)
        square = _mulmod(square, square)
        n >>= 1
    return result


def raw(data) -> int:
    """The CRC of `data` with zero initial value and no final inversion."""
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def update(crc: int, total: int, offset: int, old, new) -> int:
    """The CRC-32 of a `total`-byte message whose CRC was `crc`, after the bytes `old` at `offset` became
    `new` (same length)."""
    if len(old) != len(new) or offset < 0 or offset + len(new) > total:
        raise ValueError("crc32.update: window outside the message")
    delta = bytes(a ^ b for a, b in zip(old, new, strict=True))
    return crc ^ _mulmod(_x8n(total - offset - len(new)), raw(delta))
