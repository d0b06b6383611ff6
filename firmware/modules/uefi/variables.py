"""UEFI variables: Get/SetVariable, and the CloudBootCmdline variable (REFERENCE §1.3)."""

import struct

from uefi import core, guid, mem

NV, BS, RT = 0x1, 0x2, 0x4
EFI_NOT_FOUND, EFI_BUFFER_TOO_SMALL = 14, 5


def get_variable(name, vendor=guid.CLOUDBOOT_VENDOR):
    """The variable's bytes, or None when it does not exist."""
    cname = mem.ucs2(name)
    size = bytearray(8)
    buf = bytearray(256)
    for _ in range(2):
        struct.pack_into("<Q", size, 0, len(buf))
        status = core.rt_call("GetVariable", cname, vendor, 0, size, buf)
        if status == 0:
            return bytes(buf[: struct.unpack("<Q", size)[0]])
        code = status & ~core.ERROR_BIT
        if code == EFI_NOT_FOUND:
            return None
        if code != EFI_BUFFER_TOO_SMALL:
            raise core.EfiError("GetVariable(%s)" % name, status)
        buf = bytearray(struct.unpack("<Q", size)[0])
    raise core.EfiError("GetVariable(%s)" % name, core.ERROR_BIT | EFI_BUFFER_TOO_SMALL)


def set_variable(name, data, vendor=guid.CLOUDBOOT_VENDOR, attrs=NV | BS | RT):
    """Create, replace or (with empty data) delete a variable."""
    core.check("SetVariable(%s)" % name, core.rt_call("SetVariable", mem.ucs2(name), vendor, attrs, len(data),
                                                      data if data else None))


_REPORTED = []


def cmdline_variable():
    """CloudBootCmdline as text, trailing CR/LF/space/tab/NUL trimmed ('' if unset). A value that is not
    printable ASCII (tabs allowed) or longer than 4095 characters is reported once and treated as unset."""
    raw = get_variable("CloudBootCmdline")
    if not raw:
        return ""
    text = "".join(chr(b) for b in raw).rstrip("\r\n \t\0")
    why = "longer than 4095 characters" if len(text) > 4095 else ""
    for i, c in enumerate(text):
        if not (" " <= c <= "~" or c == "\t"):
            why = "byte 0x%02x at offset %d is not printable ASCII" % (ord(c), i)
            break
    if why:
        if raw not in _REPORTED:
            _REPORTED.append(raw)
            print("cloud-boot: CloudBootCmdline ignored: %s" % why)
        return ""
    return text
