"""ZFS vdev labels: the pool a device belongs to. Four label copies (two at the front, two at the end), each
an XDR-encoded nvlist followed by uberblocks; the pool name and GUID are top-level pairs of the nvlist."""

import struct

from diskfs.blockdev import read
from diskfs.errors import Corrupt
from diskfs.formats import clean

NV_UINT64, NV_STRING = 8, 9
LABEL = 256 * 1024
UBERBLOCK_MAGICS = (b"\x0c\xb1\xba\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\xba\xb1\x0c")  # either byte order


def labels(dev):
    """Byte offsets of the label copies whose first uberblock has the magic."""
    out = []
    if dev.size < LABEL:
        return out
    for start in (0, LABEL, dev.size - 2 * LABEL, dev.size - LABEL):
        if start < 0 or start + LABEL > dev.size:
            continue
        if read(dev, start + 128 * 1024, 8) in UBERBLOCK_MAGICS:
            out.append(start)
    return out


def pool(dev):
    """(pool name, pool GUID as blkid's decimal text) from the first label whose nvlist reads, or None."""
    for start in labels(dev):
        try:
            pairs = nvlist_top(read(dev, start + 16 * 1024, 112 * 1024))
        except Corrupt:
            continue
        guid = pairs.get("pool_guid")
        return (pairs.get("name") or "", "%d" % guid if isinstance(guid, int) else "")
    return None


def nvlist_top(raw):
    """Top-level string and uint64 pairs of an XDR-encoded nvlist (nvs header first); others are skipped."""
    if len(raw) < 12 or raw[0] != 1:
        raise Corrupt("ZFS label: nvlist is not XDR-encoded", "ZFS nvlist", 0)
    pos = 12  # 4-byte nvs header, then version and flags
    out = {}
    for _ in range(4096):
        if pos + 8 > len(raw):
            raise Corrupt("ZFS label: nvlist runs off its 112 KiB", "ZFS nvlist", pos)
        esize, dsize = struct.unpack_from(">ii", raw, pos)
        if esize == 0 and dsize == 0:
            return out
        if esize < 8 or pos + esize > len(raw):
            raise Corrupt("ZFS label: nvpair of %d bytes" % esize, "ZFS nvpair", pos)
        pair = raw[pos + 8:pos + esize]
        name, p = _xdr_string(pair, 0)
        if p + 8 <= len(pair):
            ptype, nelem = struct.unpack_from(">ii", pair, p)
            p += 8
            if ptype == NV_UINT64 and nelem == 1 and p + 8 <= len(pair):
                out[name] = struct.unpack_from(">Q", pair, p)[0]
            elif ptype == NV_STRING and nelem == 1:
                out[name] = _xdr_string(pair, p)[0]
        pos += esize
    raise Corrupt("ZFS label: more than 4096 nvpairs", "ZFS nvlist", pos)


def _xdr_string(buf, pos):
    if pos + 4 > len(buf):
        raise Corrupt("ZFS label: truncated string", "ZFS nvpair", pos)
    n = struct.unpack_from(">I", buf, pos)[0]
    if pos + 4 + n > len(buf):
        raise Corrupt("ZFS label: string of %d bytes overruns its pair" % n, "ZFS nvpair", pos)
    return clean(buf[pos + 4:pos + 4 + n]), pos + 4 + ((n + 3) & ~3)
