"""Raw memory access over uctypes: integers and UCS-2 strings at firmware addresses."""

import struct

import uctypes


def view(addr, size):
    """A bytearray aliasing `size` bytes at `addr` (writes go to memory)."""
    return uctypes.bytearray_at(addr, size)


def u64(addr):
    """The little-endian 64-bit word at addr."""
    return struct.unpack("<Q", uctypes.bytearray_at(addr, 8))[0]


def u32(addr):
    """The little-endian 32-bit word at addr."""
    return struct.unpack("<I", uctypes.bytearray_at(addr, 4))[0]


def read(addr, size):
    """A copy of `size` bytes at addr."""
    return bytes(uctypes.bytearray_at(addr, size))


def ucs2_at(addr, limit=4096):
    """The NUL-terminated UCS-2 string at addr (at most `limit` characters)."""
    out = []
    for i in range(limit):
        c = struct.unpack("<H", uctypes.bytearray_at(addr + 2 * i, 2))[0]
        if c == 0:
            break
        out.append(chr(c))
    return "".join(out)


def ucs2(text):
    """`text` as a NUL-terminated UCS-2 buffer (for CHAR16* arguments)."""
    buf = bytearray(2 * len(text) + 2)
    for i, ch in enumerate(text):
        c = ord(ch)
        struct.pack_into("<H", buf, 2 * i, c if c < 0x10000 else 0xFFFD)
    return buf


def ucs2_decode(data):
    """Decode UCS-2LE bytes up to the first NUL."""
    out = []
    for i in range(0, len(data) - 1, 2):
        c = data[i] | (data[i + 1] << 8)
        if c == 0:
            break
        out.append(chr(c))
    return "".join(out)
