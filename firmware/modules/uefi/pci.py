"""EFI_PCI_IO_PROTOCOL: find PCI functions, read their config space, claim them from the firmware's drivers,
BAR access and DMA buffers (AllocateBuffer + Map as a common buffer)."""

import struct

import _uefi

from uefi import core, guid, mem

PCI_IO_PROTOCOL = guid.guid_bytes("4cf5b200-68b8-4ca5-9eec-b23e3f50029a")
# EFI_PCI_IO_PROTOCOL members (64-bit offsets).
_MEM_READ, _MEM_WRITE, _PCI_READ, _PCI_WRITE = 16, 24, 48, 56
_MAP, _UNMAP, _ALLOCATE, _FREE, _GET_LOCATION, _ATTRIBUTES = 72, 80, 88, 96, 112, 120
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}
ATTR_IO, ATTR_MEMORY, ATTR_BUS_MASTER, ATTR_DUAL_ADDRESS_CYCLE = 0x100, 0x200, 0x400, 0x8000
_ATTR_ENABLE, _ATTR_SUPPORTED = 2, 4
_BUS_MASTER_COMMON_BUFFER = 2
_BOOT_SERVICES_DATA = 4
# OpenProtocol attributes: BY_DRIVER | EXCLUSIVE disconnects the drivers that hold the device and keeps
# them (and ConnectController) off it until we close it.
_BY_DRIVER_EXCLUSIVE = 0x10 | 0x20


class PciFunction:
    """One PCI function behind its EFI_PCI_IO_PROTOCOL."""

    def __init__(self, handle):
        self.handle = handle
        self.iface = core.handle_protocol(handle, PCI_IO_PROTOCOL)
        self.claimed = False
        self.vendor, self.device = struct.unpack("<HH", self.config(0, 4))

    def _fn(self, offset):
        return mem.u64(self.iface + offset)

    def location(self):
        """'seg:bus:dev.fn' as lspci writes it."""
        out = [bytearray(8) for _ in range(4)]
        core.check("PciIo.GetLocation", _uefi.call(self._fn(_GET_LOCATION), self.iface, *out))
        seg, bus, dev, fn = (struct.unpack("<Q", o)[0] for o in out)
        return "%04x:%02x:%02x.%x" % (seg, bus, dev, fn)

    def config(self, offset, size):
        """`size` bytes of configuration space from `offset` (read a byte at a time: any alignment)."""
        buf = bytearray(size)
        core.check("PciIo.Pci.Read", _uefi.call(self._fn(_PCI_READ), self.iface, 0, offset, size, buf))
        return bytes(buf)

    def capabilities(self):
        """[(capability id, config offset)] of the capability list."""
        status = struct.unpack("<H", self.config(6, 2))[0]
        if not status & 0x10:
            return []
        out = []
        ptr = self.config(0x34, 1)[0] & 0xFC
        while ptr and len(out) < 48:
            cap_id, nxt = self.config(ptr, 2)
            out.append((cap_id, ptr))
            ptr = nxt & 0xFC
        return out

    def claim(self):
        """Open the PciIo BY_DRIVER|EXCLUSIVE for this image: the firmware's driver for the device (and the
        SNP/MNP stack above it) is disconnected and cannot bind again; memory decoding, bus mastering and 64-bit
        DMA addresses (when supported) on."""
        out = bytearray(8)
        args = (self.handle, PCI_IO_PROTOCOL, out, core.image_handle(), self.handle, _BY_DRIVER_EXCLUSIVE)
        status = _uefi.call(core.bs_fn("OpenProtocol"), *args)
        if status & core.ERROR_BIT:
            # A driver stack that will not let go when asked through EXCLUSIVE (EDK2's network drivers after
            # a ConnectController of everything): disconnect the controller's drivers first, then claim.
            _uefi.call(core.bs_fn("DisconnectController"), self.handle, 0, 0)
            core.bs_call("OpenProtocol", *args)
        self.claimed = True
        supported = bytearray(8)
        core.check("PciIo.Attributes(supported)", _uefi.call(self._fn(_ATTRIBUTES), self.iface, _ATTR_SUPPORTED, 0,
                                                             supported))
        want = struct.unpack("<Q", supported)[0] & (ATTR_MEMORY | ATTR_BUS_MASTER | ATTR_DUAL_ADDRESS_CYCLE)
        core.check("PciIo.Attributes(enable)", _uefi.call(self._fn(_ATTRIBUTES), self.iface, _ATTR_ENABLE, want,
                                                          None))

    def release(self):
        """Close what claim() opened (the firmware's drivers may bind again)."""
        if self.claimed:
            core.bs_call("CloseProtocol", self.handle, PCI_IO_PROTOCOL, core.image_handle(), self.handle)
            self.claimed = False

    def read(self, bar, offset, size):
        """An int of `size` bytes (1, 2, 4, 8) from a memory BAR."""
        buf = bytearray(size)
        core.check("PciIo.Mem.Read", _uefi.call(self._fn(_MEM_READ), self.iface, WIDTH[size], bar, offset, 1, buf))
        return int.from_bytes(buf, "little")

    def write(self, bar, offset, size, value):
        """Store an int of `size` bytes into a memory BAR."""
        buf = value.to_bytes(size, "little")
        core.check("PciIo.Mem.Write", _uefi.call(self._fn(_MEM_WRITE), self.iface, WIDTH[size], bar, offset, 1, buf))

    def dma_buffer(self, pages):
        """(host address, device address, mapping) of `pages` zeroed pages the device may read and write."""
        host = bytearray(8)
        core.check("PciIo.AllocateBuffer", _uefi.call(self._fn(_ALLOCATE), self.iface, 0, _BOOT_SERVICES_DATA,
                                                      pages, host, 0))
        addr = struct.unpack("<Q", host)[0]
        mem.view(addr, pages * 4096)[:] = bytes(pages * 4096)
        size = bytearray(struct.pack("<Q", pages * 4096))
        dev, mapping = bytearray(8), bytearray(8)
        core.check("PciIo.Map", _uefi.call(self._fn(_MAP), self.iface, _BUS_MASTER_COMMON_BUFFER, addr, size, dev,
                                           mapping))
        if struct.unpack("<Q", size)[0] < pages * 4096:
            raise core.EfiError("PciIo.Map (mapped less than asked)", core.ERROR_BIT | 9)
        return addr, struct.unpack("<Q", dev)[0], struct.unpack("<Q", mapping)[0]

    def free_dma(self, addr, pages, mapping):
        """Unmap and free a dma_buffer."""
        _uefi.call(self._fn(_UNMAP), self.iface, mapping)
        _uefi.call(self._fn(_FREE), self.iface, pages, addr)


def functions():
    """Every PCI function the firmware enumerated."""
    return [PciFunction(h) for h in core.locate_handles(PCI_IO_PROTOCOL)]
