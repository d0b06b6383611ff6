"""Parity arithmetic for btrfs RAID5/6 degraded reads: XOR (P) and Reed-Solomon over GF(2^8) with the
polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d) and generator 2 (Q = sum of g^i * D_i), as Linux's raid6 code.

Buffers are bytes-like of equal length; results are bytes. Tables (768 bytes) are built on first use.
"""

_EXP = None
_LOG = None


def _tables():
    global _EXP, _LOG
    if _EXP is None:
        exp = bytearray(512)
        log = bytearray(256)
        x = 1
        for i in range(255):
            exp[i] = x
            log[x] = i
            x <<= 1
            if x & 0x100:
                x ^= 0x11D
        for i in range(255, 512):
            exp[i] = exp[i - 255]
        _EXP, _LOG = exp, log
    return _EXP, _LOG


def xor(a, b):
    """a XOR b, byte for byte."""
    n = len(a)
    try:
        return (int.from_bytes(bytes(a), "little") ^ int.from_bytes(bytes(b), "little")).to_bytes(n, "little")
    except (OverflowError, ValueError, AttributeError):  # pragma: no cover - a runtime without long ints
        return bytes(a[i] ^ b[i] for i in range(n))


def gf_pow2(k):
    """g^k for the generator g = 2 (k may be negative)."""
    exp, _ = _tables()
    return exp[k % 255]


def gf_inv(c):
    exp, log = _tables()
    if not c:
        raise ZeroDivisionError("GF(2^8) inverse of 0")
    return exp[(255 - log[c]) % 255]


def gf_scale(data, c):
    """Every byte of data multiplied by the constant c in GF(2^8)."""
    exp, log = _tables()
    if c == 0:
        return bytes(len(data))
    if c == 1:
        return bytes(data)
    lc = log[c]
    table = bytearray(256)
    for v in range(1, 256):
        table[v] = exp[log[v] + lc]
    try:
        return bytes(data).translate(bytes(table))
    except AttributeError:  # MicroPython: no bytes.translate
        return bytes(table[v] for v in data)


def recover_one_p(others, p):
    """A missing data stripe from P and every other data stripe."""
    out = p
    for d in others:
        out = xor(out, d)
    return out


def recover_one_q(index, others, q):
    """Missing data stripe `index` from Q and every other data stripe ({position: bytes})."""
    acc = q
    for i, d in others.items():
        acc = xor(acc, gf_scale(d, gf_pow2(i)))
    return gf_scale(acc, gf_inv(gf_pow2(index)))


def recover_two(x, y, others, p, q):
    """Missing data stripes x < y from P, Q and the other data stripes ({position: bytes}): (D_x, D_y)."""
    pxy, qxy = p, q
    for i, d in others.items():
        pxy = xor(pxy, d)
        qxy = xor(qxy, gf_scale(d, gf_pow2(i)))
    # Qxy = g^x Dx + g^y Dy and Pxy = Dx + Dy, so Dx = (Qxy + g^y Pxy) / (g^x + g^y)
    gx, gy = gf_pow2(x), gf_pow2(y)
    dx = gf_scale(xor(qxy, gf_scale(pxy, gy)), gf_inv(gx ^ gy))
    return dx, xor(pxy, dx)
