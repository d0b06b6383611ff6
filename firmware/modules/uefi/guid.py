"""GUIDs: text form <-> the 16 on-disk/in-memory bytes (first three fields little-endian)."""

import binascii
import struct


def guid_bytes(text):
    """'8be4df61-93ca-11d2-aa0d-00e098032b8c' -> 16 bytes in UEFI memory order."""
    parts = text.split("-")
    if len(parts) != 5 or [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        raise ValueError("bad GUID %r" % text)
    return struct.pack("<IHH", int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)) + binascii.unhexlify(
        parts[3] + parts[4]
    )


def guid_str(data):
    """16 bytes in UEFI memory order -> lower-case text form."""
    a, b, c = struct.unpack("<IHH", data[:8])
    tail = binascii.hexlify(data[8:16]).decode()
    return "%08x-%04x-%04x-%s-%s" % (a, b, c, tail[:4], tail[4:])


GLOBAL_VARIABLE = guid_bytes("8be4df61-93ca-11d2-aa0d-00e098032b8c")
CLOUDBOOT_VENDOR = guid_bytes("c10ddb07-83c5-4d3e-9b76-1f4c0e7a3b8e")
LOADED_IMAGE_PROTOCOL = guid_bytes("5b1b31a1-9562-11d2-8e3f-00a0c969723b")
DEVICE_PATH_PROTOCOL = guid_bytes("09576e91-6d3f-11d2-8e39-00a0c969723b")
BLOCK_IO_PROTOCOL = guid_bytes("964e5b21-6459-11d2-8e39-00a0c969723b")
DISK_IO_PROTOCOL = guid_bytes("ce345171-ba0b-11d2-8e4f-00a0c969723b")
SIMPLE_NETWORK_PROTOCOL = guid_bytes("a19832b9-ac25-11d3-9a2d-0090273fc14d")
RNG_PROTOCOL = guid_bytes("3152bca5-eade-433d-862e-c01cdc291f44")
