"""Handing over to a Linux kernel (or any EFI image) from memory: LoadImage, LoadOptions, the initrd through
LoadFile2 under LINUX_EFI_INITRD_MEDIA_GUID, StartImage.

The LoadFile2 callback itself is C (`_uefi.initrd_protocol`); everything else is here.
"""

import struct

import _uefi

from uefi import core, guid, mem

LINUX_EFI_INITRD_MEDIA = guid.guid_bytes("5568e427-68fc-4f3d-ac74-ca555231cc68")
LOAD_FILE2_PROTOCOL = guid.guid_bytes("4006c0c1-fcb3-403e-996d-4a6c8724e06d")
# VenMedia(LINUX_EFI_INITRD_MEDIA) followed by the end-of-path node.
INITRD_DEVICE_PATH = bytes([4, 3, 20, 0]) + LINUX_EFI_INITRD_MEDIA + bytes([0x7F, 0xFF, 4, 0])


def _ptr(buf):
    return struct.unpack("<Q", buf)[0]


class InitrdProvider:
    """EFI_LOAD_FILE2_PROTOCOL + the initrd media device path on a handle of our own."""

    def __init__(self, addr, size):
        if not size:
            raise ValueError("a zero-length initrd is never installed (the kernel would fail to unpack it)")
        self.addr, self.size = addr, size
        self.path = bytes(INITRD_DEVICE_PATH)  # the firmware keeps pointers into these two objects
        self.iface = 0
        self.handle = 0

    @staticmethod
    def existing():
        """The handle already serving the initrd device path, or 0."""
        path = bytearray(INITRD_DEVICE_PATH)
        pp = struct.pack("<Q", _uefi.addressof(path))
        handle = bytearray(8)
        fn = core.bs_fn("LocateDevicePath")
        status = _uefi.call(fn, LOAD_FILE2_PROTOCOL, pp, handle)
        if status & core.ERROR_BIT:
            return 0
        rest = _ptr(pp)
        return _ptr(handle) if mem.read(rest, 2) == b"\x7f\xff" else 0

    def install(self):
        """Install, replacing any provider installed before (ours or another loader's)."""
        old = self.existing()
        if old:
            iface = core.handle_protocol(old, LOAD_FILE2_PROTOCOL)
            dp = core.handle_protocol(old, guid.DEVICE_PATH_PROTOCOL)
            core.bs_call("UninstallProtocolInterface", old, LOAD_FILE2_PROTOCOL, iface)
            core.bs_call("UninstallProtocolInterface", old, guid.DEVICE_PATH_PROTOCOL, dp)
        self.iface = _uefi.initrd_protocol(self.addr, self.size)
        handle = bytearray(8)
        core.bs_call("InstallProtocolInterface", handle, guid.DEVICE_PATH_PROTOCOL, 0, self.path)
        self.handle = _ptr(handle)
        core.bs_call("InstallProtocolInterface", handle, LOAD_FILE2_PROTOCOL, 0, self.iface)

    def uninstall(self):
        """Remove both protocols again (when StartImage returns)."""
        if self.handle:
            core.bs_call("UninstallProtocolInterface", self.handle, LOAD_FILE2_PROTOCOL, self.iface)
            core.bs_call("UninstallProtocolInterface", self.handle, guid.DEVICE_PATH_PROTOCOL, self.path)
            self.handle = 0


def load_image(addr, size):
    """LoadImage from memory; returns the new image handle."""
    handle = bytearray(8)
    core.bs_call("LoadImage", 0, core.image_handle(), 0, addr, size, handle)
    return _ptr(handle)


def set_load_options(child, cmdline, device_handle=0):
    """Patch the child's LoadOptions (UCS-2, size including the NUL) and DeviceHandle; returns the buffer,
    which the caller keeps alive until the child has read it."""
    li = core.handle_protocol(child, guid.LOADED_IMAGE_PROTOCOL)
    opts = mem.ucs2(cmdline)
    struct.pack_into("<I", mem.view(li + 48, 4), 0, len(opts))
    struct.pack_into("<Q", mem.view(li + 56, 8), 0, _uefi.addressof(opts))
    if device_handle:
        struct.pack_into("<Q", mem.view(li + 24, 8), 0, device_handle)
    return opts


def start_image(addr, size, cmdline="", initrd=None, device_handle=0):
    """Load and start an EFI image (a Linux kernel with its EFI stub) held in memory.

    `initrd` is (addr, size) or None. Returns only if the image returns; raises EfiError on failure.
    """
    child = load_image(addr, size)
    opts = set_load_options(child, cmdline, device_handle)
    provider = InitrdProvider(*initrd) if initrd and initrd[1] else None
    if provider:
        provider.install()
    try:
        exit_size, exit_data = bytearray(8), bytearray(8)
        status = _uefi.call(core.bs_fn("StartImage"), child, exit_size, exit_data)
    finally:
        if provider:
            provider.uninstall()
    del opts
    return core.check("StartImage", status)
