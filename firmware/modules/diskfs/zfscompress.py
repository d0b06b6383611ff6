"""ZFS block decompression: lzjb, lz4 (ZFS's framing: a 4-byte big-endian length, then an LZ4 block), gzip
(zlib streams), zle and zstd (ZFS's 8-byte header, then a zstd frame). Every decoder is bounded by the
block's logical size and reports bad input as Corrupt."""

import struct

from diskfs.errors import Corrupt, Unsupported

#: compression id -> name (zio_compress.h); 5..13 are gzip-1..9
NAMES = {0: "inherit", 1: "on", 2: "off", 3: "lzjb", 4: "empty", 14: "zle", 15: "lz4", 16: "zstd"}
for _i in range(1, 10):
    NAMES[4 + _i] = "gzip-%d" % _i


def name(comp):
    return NAMES.get(comp, "compression %d" % comp)


def decompress(comp, src, lsize):
    """The `lsize` bytes a block of compression `comp` holds."""
    if comp == 3:
        return lzjb(src, lsize)
    if comp == 15:
        return lz4(src, lsize)
    if 5 <= comp <= 13:
        return gzip(src, lsize)
    if comp == 14:
        return zle(src, lsize)
    if comp == 16:
        return zstd(src, lsize)
    if comp == 4:
        return bytes(lsize)
    raise Unsupported("ZFS %s unsupported" % name(comp), name(comp))


def _short(what, got, want):
    return Corrupt("ZFS %s block decodes to %d bytes, want %d" % (what, got, want), "ZFS " + what)


def _copy_match(out, start, mlen):
    """Append mlen bytes copied from out[start:] one by one as LZ decoders do (a match may overlap what it
    writes: a run of one byte is offset 1), in slices that double: a long run costs a few copies, not one per
    byte or per `offset` bytes (that made listing a 10,000-entry lz4 directory take seconds)."""
    while mlen > 0:
        piece = out[start:start + min(len(out) - start, mlen)]
        out += piece
        mlen -= len(piece)


def lzjb(src, lsize):
    """LZJB: a copy map byte per 8 items; an item is a literal byte or a 2-byte (length, offset) match (a map of
    eight literals is copied at once)."""
    out = bytearray()
    i, n = 0, len(src)
    while len(out) < lsize and i < n:
        copymap = src[i]
        i += 1
        if copymap == 0:  # eight literals at once
            take = min(8, n - i, lsize - len(out))
            out += src[i:i + take]
            i += take
            continue
        for bit in (1, 2, 4, 8, 16, 32, 64, 128):
            if len(out) >= lsize:
                break
            if copymap & bit:
                if i + 2 > n:
                    i = n  # the input ends inside a match: stop (the length check below says so)
                    break
                mlen = (src[i] >> 2) + 3
                offset = ((src[i] << 8) | src[i + 1]) & 0x3FF
                i += 2
                start = len(out) - offset
                if start < 0 or offset == 0:
                    raise Corrupt("ZFS lzjb: match reaches before the block start", "ZFS lzjb")
                mlen = min(mlen, lsize - len(out))
                if offset >= mlen:
                    out += out[start:start + mlen]
                else:
                    _copy_match(out, start, mlen)
            elif i < n:
                out.append(src[i])
                i += 1
            else:
                break
    if len(out) != lsize:
        raise _short("lzjb", len(out), lsize)
    return bytes(out)


def lz4(src, lsize):
    """ZFS's LZ4: a big-endian 32-bit payload length, then one LZ4 block."""
    if len(src) < 4:
        raise Corrupt("ZFS lz4: %d-byte block" % len(src), "ZFS lz4")
    end = 4 + struct.unpack_from(">I", src, 0)[0]
    if end > len(src):
        raise Corrupt("ZFS lz4: payload of %d bytes in a %d-byte block" % (end - 4, len(src)), "ZFS lz4")
    out = bytearray()
    i = 4
    while i < end:
        token = src[i]
        i += 1
        lit, i = _lz4_length(src, i, end, token >> 4)
        if i + lit > end or len(out) + lit > lsize:
            raise Corrupt("ZFS lz4: literals run past the block", "ZFS lz4")
        out += src[i:i + lit]
        i += lit
        if i >= end:
            break
        if i + 2 > end:
            raise Corrupt("ZFS lz4: truncated match offset", "ZFS lz4")
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        mlen, i = _lz4_length(src, i, end, token & 15)
        mlen += 4
        start = len(out) - offset
        if offset == 0 or start < 0 or len(out) + mlen > lsize:
            raise Corrupt("ZFS lz4: match outside the block", "ZFS lz4")
        if offset >= mlen:
            out += out[start:start + mlen]
        else:
            _copy_match(out, start, mlen)
    if len(out) != lsize:
        raise _short("lz4", len(out), lsize)
    return bytes(out)


def _lz4_length(src, i, end, n):
    """A token's 4-bit length, extended by bytes while they are 255: (length, next position)."""
    if n != 15:
        return n, i
    while True:
        if i >= end:
            raise Corrupt("ZFS lz4: truncated length", "ZFS lz4")
        b = src[i]
        i += 1
        n += b
        if b != 255:
            return n, i


def gzip(src, lsize):
    from compat import zlib_decompress

    try:
        out = zlib_decompress(bytes(src))
    except Exception:  # noqa: BLE001 - zlib.error / OSError / ValueError by runtime
        raise Corrupt("ZFS gzip: not a zlib stream", "ZFS gzip") from None
    if len(out) < lsize:
        raise _short("gzip", len(out), lsize)
    return out[:lsize]


def zle(src, lsize, n=64):
    """Zero-length encoding: a length byte, then that many literal bytes (<= n) or a run of zeros."""
    out = bytearray()
    i = 0
    while i < len(src) and len(out) < lsize:
        ln = 1 + src[i]
        i += 1
        if ln <= n:
            out += src[i:i + ln]
            i += ln
        else:
            out += bytes(min(ln - n, lsize - len(out)))
    if len(out) < lsize:
        raise _short("zle", len(out), lsize)
    return bytes(out[:lsize])


def zstd(src, lsize):
    """ZFS's zstd: an 8-byte header (big-endian payload length, version and level), then a zstd frame without
    its 4-byte magic."""
    if len(src) < 8:
        raise Corrupt("ZFS zstd: %d-byte block" % len(src), "ZFS zstd")
    end = 8 + struct.unpack_from(">I", src, 0)[0]
    if end > len(src):
        raise Corrupt("ZFS zstd: payload past the block", "ZFS zstd")
    payload = b"\x28\xb5\x2f\xfd" + bytes(src[8:end])  # ZFS writes magicless frames: the magic put back
    try:
        import zstandard

        out = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    except ImportError:
        try:
            from compat import zstd as pyzstd
        except ImportError:
            raise Unsupported("ZFS zstd compression (no zstd decoder on this runtime)", "zstd") from None
        out = pyzstd.decompress(payload, lsize, single=True)
    except Exception:  # noqa: BLE001 - zstandard.ZstdError
        raise Corrupt("ZFS zstd: not a zstd frame", "ZFS zstd") from None
    if len(out) < lsize:
        raise _short("zstd", len(out), lsize)
    return out[:lsize]
