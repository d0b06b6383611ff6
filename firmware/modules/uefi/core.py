"""System table, boot and runtime services: offsets from the UEFI 2.10 spec, calls through _uefi.call."""

import struct

import _uefi

from uefi import mem

ARCH = _uefi.ARCH

# EFI_SYSTEM_TABLE field offsets (64-bit).
_ST_VENDOR, _ST_CONIN, _ST_CONOUT, _ST_RT, _ST_BS = 24, 48, 64, 88, 96
# Boot services, by index after the 24-byte table header.
_BS = {
    "AllocatePages": 2, "FreePages": 3, "GetMemoryMap": 4, "AllocatePool": 5, "FreePool": 6,
    "CreateEvent": 7, "WaitForEvent": 9, "CheckEvent": 12, "InstallProtocolInterface": 13,
    "UninstallProtocolInterface": 15, "HandleProtocol": 16, "LocateHandle": 19, "LocateDevicePath": 20, "LoadImage": 22,
    "StartImage": 23, "Exit": 24, "UnloadImage": 25, "Stall": 28, "SetWatchdogTimer": 29,
    "ConnectController": 30, "DisconnectController": 31, "OpenProtocol": 32, "CloseProtocol": 33,
    "LocateHandleBuffer": 36,
    "LocateProtocol": 37, "InstallMultipleProtocolInterfaces": 38, "UninstallMultipleProtocolInterfaces": 39,
    "CalculateCrc32": 40, "CopyMem": 41, "SetMem": 42,
}
_RT = {"GetTime": 0, "GetVariable": 6, "GetNextVariableName": 7, "SetVariable": 8, "ResetSystem": 10}

_ERRORS = {
    1: "EFI_LOAD_ERROR", 2: "EFI_INVALID_PARAMETER", 3: "EFI_UNSUPPORTED", 4: "EFI_BAD_BUFFER_SIZE",
    5: "EFI_BUFFER_TOO_SMALL", 6: "EFI_NOT_READY", 7: "EFI_DEVICE_ERROR", 8: "EFI_WRITE_PROTECTED",
    9: "EFI_OUT_OF_RESOURCES", 14: "EFI_NOT_FOUND", 15: "EFI_ACCESS_DENIED", 18: "EFI_TIMEOUT",
    21: "EFI_ABORTED", 26: "EFI_SECURITY_VIOLATION",
}
ERROR_BIT = 1 << 63
ALLOCATE_ANY_PAGES, LOADER_DATA = 0, 2
RESET_COLD, RESET_WARM, RESET_SHUTDOWN = 0, 1, 2


class EfiError(OSError):
    """A firmware call returned an error status; `.status` holds the code without the high bit."""

    def __init__(self, what, status):
        self.status = status & ~ERROR_BIT
        name = _ERRORS.get(self.status, "status 0x%x" % self.status)
        super().__init__("%s failed: %s" % (what, name))


def system_table():
    """Address of EFI_SYSTEM_TABLE."""
    return _uefi.system_table()


def image_handle():
    """This image's EFI_HANDLE."""
    return _uefi.image_handle()


def _table_fn(table, index):
    return mem.u64(table + 24 + 8 * index)


def check(what, status):
    """Raise EfiError for an error status; return warnings and success unchanged."""
    if status & ERROR_BIT:
        raise EfiError(what, status)
    return status


def bs_fn(name):
    """Address of a boot service (for calls whose status the caller interprets itself)."""
    return _table_fn(mem.u64(_uefi.system_table() + _ST_BS), _BS[name])


def bs_call(name, *args):
    """Call a boot service by name; raises EfiError on an error status."""
    return check(name, _uefi.call(bs_fn(name), *args))


def rt_call(name, *args):
    """Call a runtime service by name, returning the raw status (callers decide what is an error)."""
    rt = mem.u64(_uefi.system_table() + _ST_RT)
    return _uefi.call(_table_fn(rt, _RT[name]), *args)


def conin():
    """Address of the console input protocol (EFI_SIMPLE_TEXT_INPUT_PROTOCOL)."""
    return mem.u64(_uefi.system_table() + _ST_CONIN)


def firmware_vendor():
    """The firmware vendor string from the system table (e.g. 'EDK II')."""
    return mem.ucs2_at(mem.u64(_uefi.system_table() + _ST_VENDOR))


def stall(us):
    """Busy-wait `us` microseconds in the firmware."""
    bs_call("Stall", us)


def allocate_pages(count, memory_type=LOADER_DATA):
    """Allocate `count` 4 KiB pages anywhere; returns the physical address."""
    out = bytearray(8)
    bs_call("AllocatePages", ALLOCATE_ANY_PAGES, memory_type, count, out)
    return struct.unpack("<Q", out)[0]


def free_pages(addr, count):
    """Free pages from allocate_pages."""
    bs_call("FreePages", addr, count)


def _out_ptr():
    return bytearray(8)


def handle_protocol(handle, guid):
    """The interface address of protocol `guid` on `handle` (OpenProtocol GET_PROTOCOL)."""
    out = _out_ptr()
    bs_call("OpenProtocol", handle, guid, out, _uefi.image_handle(), 0, 0x02)
    return struct.unpack("<Q", out)[0]


def locate_handles(guid=None):
    """All handles that carry protocol `guid` (every handle when guid is None; empty list if none)."""
    count, buf = _out_ptr(), _out_ptr()
    search = 0 if guid is None else 2  # AllHandles / ByProtocol
    status = _uefi.call(bs_fn("LocateHandleBuffer"), search, guid, 0, count, buf)
    if status & ERROR_BIT:
        if status & ~ERROR_BIT == 14:  # EFI_NOT_FOUND
            return []
        raise EfiError("LocateHandleBuffer", status)
    n, addr = struct.unpack("<Q", count)[0], struct.unpack("<Q", buf)[0]
    handles = list(struct.unpack("<%dQ" % n, mem.read(addr, 8 * n)))
    bs_call("FreePool", addr)
    return handles


_connected = False


def connect_all():
    """Connect every driver to every controller once (a direct -kernel boot or a fast-boot BDS leaves
    disks and NICs unconnected, so their BlockIo/SNP handles would not exist yet)."""
    global _connected
    if _connected:
        return
    for h in locate_handles():
        _uefi.call(bs_fn("ConnectController"), h, 0, 0, 1)
    _connected = True


def reset_system(kind=RESET_COLD, status=0):
    """ResetSystem: RESET_COLD, RESET_WARM or RESET_SHUTDOWN. Does not return."""
    rt_call("ResetSystem", kind, status, 0, 0)


def poweroff():
    """Power the machine off (QEMU exits with status 0)."""
    reset_system(RESET_SHUTDOWN)
