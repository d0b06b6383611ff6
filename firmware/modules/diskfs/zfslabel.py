"""ZFS vdev labels: which pool a device belongs to, where it sits in the pool, and the newest uberblock.

Four label copies (two at the front, two at the end of the device, the end ones placed on the size rounded
down to 256 KiB), each 256 KiB: 8 KiB blank, 8 KiB boot header, 112 KiB XDR-encoded nvlist (the pool's name,
GUID, this device's GUID and its top-level vdev's tree), then the uberblock ring (slots of max(1 KiB,
2^ashift)). Label nvlists and uberblocks carry an embedded SHA-256 whose verifier is their byte offset on the
device; a copy that fails it is skipped.
"""

import hashlib
import struct

from diskfs.blockdev import read
from diskfs.errors import Corrupt, Unsupported
from diskfs.formats import clean

LABEL = 256 * 1024
NVLIST_AT, NVLIST_SIZE = 16 * 1024, 112 * 1024
RING_AT, RING_SIZE = 128 * 1024, 128 * 1024
UB_MAGIC = 0x00BAB10C
UBERBLOCK_MAGICS = (b"\x0c\xb1\xba\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\xba\xb1\x0c")  # either byte order
ECK_MAGIC = 0x0210DA7AB10C7A11
MAX_PAIRS = 4096
MAX_NEST = 16

# nvpair data types (sys/nvpair.h)
BOOLEAN, BYTE, INT16, UINT16, INT32, UINT32, INT64, UINT64, STRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
BYTE_ARRAY, UINT64_ARRAY, STRING_ARRAY, HRTIME, NVLIST, NVLIST_ARRAY = 10, 16, 17, 18, 19, 20
BOOLEAN_VALUE, INT8, UINT8, BOOLEAN_ARRAY, UINT8_ARRAY = 21, 22, 23, 24, 26
_INTS = {BYTE: 4, INT16: 4, UINT16: 4, INT32: 4, UINT32: 4, BOOLEAN_VALUE: 4, INT8: 4, UINT8: 4,
         INT64: 8, UINT64: 8, HRTIME: 8}
_ARRAYS = {11: 4, 12: 4, 13: 4, 14: 4, 15: 8, UINT64_ARRAY: 8, BOOLEAN_ARRAY: 4, 25: 4, UINT8_ARRAY: 4}


def label_offsets(size):
    """Byte offsets of the four label copies on a device of `size` bytes (none when it is too small)."""
    psize = size - size % LABEL
    out = []
    for start in (0, LABEL, psize - 2 * LABEL, psize - LABEL):
        if 0 <= start and start + LABEL <= psize and start not in out:
            out.append(start)
    return out


def labels(dev):
    """Byte offsets of the label copies that start an XDR nvlist and hold an uberblock magic in their ring (a
    probe: no checksums)."""
    out = []
    for start in label_offsets(dev.size):
        head = read(dev, start + NVLIST_AT, 4)
        if head[0] != 1 or head[1] > 1 or head[2:4] != b"\0\0":
            continue
        ring = read(dev, start + RING_AT, RING_SIZE)
        for at in range(0, RING_SIZE, 1024):
            if ring[at:at + 8] in UBERBLOCK_MAGICS:
                out.append(start)
                break
    return out


def eck_ok(buf, offset):
    """Does `buf` (a label nvlist area or an uberblock slot) pass its embedded SHA-256, verifier `offset`?"""
    n = len(buf)
    magic = struct.unpack_from("<Q", buf, n - 40)[0]
    if magic != ECK_MAGIC:
        return False
    want = bytes(buf[n - 32:n])
    tmp = bytearray(buf)
    tmp[n - 32:n] = struct.pack("<QQQQ", offset, 0, 0, 0)
    got = struct.unpack(">QQQQ", hashlib.sha256(tmp).digest())
    return struct.pack("<QQQQ", *got) == want


def member(dev):
    """`dev` when it carries a ZFS label (checksummed at its own offsets), else its first partition that does
    (OpenZFS puts a pool given a whole disk in partition 1), else None."""
    from diskfs.partition import partitions

    for cand in [dev] + [p.device(dev) for p in partitions(dev) if p.number]:
        for start in labels(cand):
            if eck_ok(read(cand, start + NVLIST_AT, NVLIST_SIZE), start + NVLIST_AT):
                return cand
    return None


def pool(dev):
    """(pool name, pool GUID as blkid's decimal text) from the first label whose nvlist reads, or None."""
    for start in labels(dev):
        try:
            pairs = nvlist(read(dev, start + NVLIST_AT, NVLIST_SIZE))
        except Corrupt:
            continue
        guid = pairs.get("pool_guid")
        return (pairs.get("name") or "", "%d" % guid if isinstance(guid, int) else "")
    return None


def read_label(dev):
    """(byte offset, nvlist dict) of the first label copy whose nvlist passes its checksum; Corrupt if none."""
    problems = []
    for start in label_offsets(dev.size):
        raw = read(dev, start + NVLIST_AT, NVLIST_SIZE)
        if not eck_ok(raw, start + NVLIST_AT):
            problems.append("label at byte %d fails its checksum" % start)
            continue
        try:
            return start, nvlist(raw)
        except Corrupt as exc:
            problems.append(str(exc))
    raise Corrupt("%s: no readable ZFS label (%s)" % (dev.name, "; ".join(problems) or "device too small"),
                  "ZFS label", 0)


def uberblocks(dev, ashift):
    """Every uberblock slot of every label that passes its checksum: a list of (txg, timestamp, raw slot)."""
    slot = max(1024, 1 << min(ashift, 13))
    out = []
    for start in label_offsets(dev.size):
        ring = read(dev, start + RING_AT, RING_SIZE)
        for i in range(RING_SIZE // slot):
            ub = ring[i * slot:(i + 1) * slot]
            magic = struct.unpack_from("<Q", ub, 0)[0]
            if magic != UB_MAGIC:
                if struct.unpack_from(">Q", ub, 0)[0] == UB_MAGIC:
                    raise Unsupported("%s: big-endian ZFS pool (written on SPARC or POWER) unsupported" % dev.name,
                                      "ZFS big-endian")
                continue
            if not eck_ok(ub, start + RING_AT + i * slot):
                continue
            txg, _, timestamp = struct.unpack_from("<QQQ", ub, 16)
            out.append((txg, timestamp, ub))
    return out


# ---- XDR nvlists ----
def nvlist(raw):
    """A packed nvlist (4-byte nvs header, XDR encoding) as a dict: nested nvlists are dicts, arrays lists."""
    if len(raw) < 12 or raw[0] != 1:
        raise Corrupt("ZFS label: nvlist is not XDR-encoded", "ZFS nvlist", 0)
    out, _ = _nvlist(raw, 4, 0)
    return out


def nvlist_top(raw):
    """The nvlist's top-level pairs (kept for callers that need only those)."""
    return nvlist(raw)


def _u32(buf, pos):
    if pos + 4 > len(buf):
        raise Corrupt("ZFS nvlist: truncated at byte %d" % pos, "ZFS nvlist", pos)
    return struct.unpack_from(">I", buf, pos)[0]


def _nvlist(buf, pos, depth):
    if depth > MAX_NEST:
        raise Corrupt("ZFS nvlist: nested more than %d deep" % MAX_NEST, "ZFS nvlist", pos)
    pos += 8  # version, flags
    out = {}
    for _ in range(MAX_PAIRS):
        if pos + 8 > len(buf):
            raise Corrupt("ZFS nvlist: runs off its %d bytes" % len(buf), "ZFS nvlist", pos)
        esize, dsize = struct.unpack_from(">ii", buf, pos)
        if esize == 0 and dsize == 0:
            return out, pos + 8
        if esize < 8 or pos + esize > len(buf):
            raise Corrupt("ZFS nvlist: pair of %d bytes at byte %d" % (esize, pos), "ZFS nvpair", pos)
        name, p = _xdr_string(buf, pos + 8)
        ptype, nelem = struct.unpack_from(">ii", buf, p) if p + 8 <= len(buf) else (0, 0)
        p += 8
        if nelem < 0 or nelem > len(buf):
            raise Corrupt("ZFS nvlist: %s has %d elements" % (name, nelem), "ZFS nvpair", pos)
        if ptype == NVLIST:
            out[name], _ = _nvlist(buf, p, depth + 1)
        elif ptype == NVLIST_ARRAY:
            items = []
            for _ in range(nelem):
                item, p = _nvlist(buf, p, depth + 1)
                items.append(item)
            out[name] = items
        else:
            out[name] = _value(buf, p, pos + esize, ptype, nelem, name)
        pos += esize
    raise Corrupt("ZFS nvlist: more than %d pairs" % MAX_PAIRS, "ZFS nvlist", pos)


def _value(buf, p, end, ptype, nelem, name):
    if ptype in _INTS:
        width = _INTS[ptype]
        if p + width > end:
            raise Corrupt("ZFS nvlist: %s overruns its pair" % name, "ZFS nvpair", p)
        return struct.unpack_from(">Q" if width == 8 else ">i", buf, p)[0]
    if ptype == STRING:
        return _xdr_string(buf, p)[0]
    if ptype == BOOLEAN:
        return True
    if ptype == BYTE_ARRAY:
        if p + 4 + nelem > end:
            raise Corrupt("ZFS nvlist: %s overruns its pair" % name, "ZFS nvpair", p)
        return bytes(buf[p + 4:p + 4 + nelem])
    if ptype in _ARRAYS:
        width = _ARRAYS[ptype]
        if p + width * nelem > end:
            raise Corrupt("ZFS nvlist: %s overruns its pair" % name, "ZFS nvpair", p)
        return [struct.unpack_from(">Q" if width == 8 else ">i", buf, p + width * i)[0] for i in range(nelem)]
    if ptype == STRING_ARRAY:
        items = []
        for _ in range(nelem):
            s, p = _xdr_string(buf, p)
            items.append(s)
        return items
    return None  # a type nothing here reads (double...)


def _xdr_string(buf, pos):
    n = _u32(buf, pos)
    if pos + 4 + n > len(buf):
        raise Corrupt("ZFS nvlist: string of %d bytes overruns its pair" % n, "ZFS nvpair", pos)
    return clean(buf[pos + 4:pos + 4 + n]), pos + 4 + ((n + 3) & ~3)
