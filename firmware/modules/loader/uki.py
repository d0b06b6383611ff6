"""This image's own PE sections (UKI stub mode: .linux, .initrd, .cmdline added by `cloud-boot uki`)."""

import struct

import uefi
from uefi import mem


def own_sections():
    """{name: (address, size)} of the running image's sections, read from its PE headers in memory."""
    li = uefi.loaded_image()
    base = li.image_base
    head = mem.read(base, 1024)
    if head[:2] != b"MZ":
        return {}
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    count, opt_size = struct.unpack_from("<H", head, pe + 6)[0], struct.unpack_from("<H", head, pe + 20)[0]
    table = mem.read(base + pe + 24 + opt_size, 40 * count)
    out = {}
    for i in range(count):
        name, vsize, rva = struct.unpack_from("<8sII", table, 40 * i)
        out[name.rstrip(b"\0").decode()] = (base + rva, vsize)
    return out


def text_at(addr, size):
    """ASCII/UTF-8 text of a section, without trailing NULs and whitespace."""
    return mem.read(addr, size).decode().strip("\r\n \t\0")
