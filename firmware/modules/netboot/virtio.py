"""Our virtio-net driver for the modern (1.0+) PCI device: capabilities, reset, feature negotiation (VERSION_1,
MAC, STATUS, MTU when offered), two split virtqueues in PciIo DMA memory, interrupts off. The per-packet
path (rings <-> lwIP) is C, `_net.attach_virtio`; this is the control side, run once per boot."""

import struct
import time

import _net
import _uefi

from uefi import core, guid

VENDOR = 0x1AF4
DEVICE_IDS = (0x1000, 0x1041)  # transitional and modern virtio-net
# virtio_pci_cap cfg_type
_COMMON, _NOTIFY, _ISR, _DEVICE = 1, 2, 3, 4
# common configuration offsets
(_DFSELECT, _DF, _GFSELECT, _GF, _MSIX, _NUMQ, _STATUS, _GEN, _QSELECT, _QSIZE, _QMSIX, _QENABLE, _QNOTIFY,
 _QDESC, _QDRIVER, _QDEVICE) = (0, 4, 8, 12, 16, 18, 20, 21, 22, 24, 26, 28, 30, 32, 40, 48)
ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, FAILED = 1, 2, 4, 8, 128
F_MTU, F_MAC, F_STATUS, F_VERSION_1, F_ACCESS_PLATFORM = 3, 5, 16, 32, 33
NO_VECTOR = 0xFFFF
RX, TX = 0, 1
QUEUE_MAX = 256
BUF_SIZE = 2048  # a 12-byte virtio_net_hdr and a 1514-byte frame, rounded


class VirtioError(OSError):
    """The device is not a usable modern virtio-net (the message says what it lacks or refused)."""


def is_virtio_net(fn):
    return fn.vendor == VENDOR and fn.device in DEVICE_IDS


class VirtioNet:
    """One virtio-net PCI function driven by us. `up()` claims and starts it; `shutdown()` resets it (before
    any OS starts: the device must stop writing into memory that is not ours any more)."""

    def __init__(self, fn):
        self.fn = fn
        self.caps = {}
        for cap_id, off in fn.capabilities():
            if cap_id != 0x09:  # vendor-specific: virtio_pci_cap
                continue
            raw = fn.config(off, 20)
            cfg_type, bar = raw[3], raw[4]
            offset, length = struct.unpack_from("<II", raw, 8)
            if cfg_type not in self.caps:
                self.caps[cfg_type] = (bar, offset, length, struct.unpack_from("<I", raw, 16)[0])
        for need, name in ((_COMMON, "common"), (_NOTIFY, "notify"), (_DEVICE, "device")):
            if need not in self.caps:
                raise VirtioError("%s: no virtio 1.0 %s configuration (legacy-only device?)" % (fn.location(), name))
        self.dma = []
        self.mac = b""
        self.mtu = 1500
        self.features = 0

    def _common(self, offset, size, value=None):
        bar, base = self.caps[_COMMON][0], self.caps[_COMMON][1]
        if value is None:
            return self.fn.read(bar, base + offset, size)
        self.fn.write(bar, base + offset, size, value)
        return None

    def _device_cfg(self, offset, size):
        bar, base = self.caps[_DEVICE][0], self.caps[_DEVICE][1]
        return self.fn.read(bar, base + offset, size)

    def reset(self):
        """Status 0 and wait until the device says it is reset."""
        self._common(_STATUS, 1, 0)
        deadline = time.ticks_add(time.ticks_ms(), 1000)
        while time.ticks_diff(deadline, time.ticks_ms()) > 0:
            status = self._common(_STATUS, 1)
            if status == 0:
                return
            if status == 0xFF:
                raise VirtioError("%s: common configuration reads all ones (BAR not decoding)" % self.fn.location())
        raise VirtioError("%s: device did not reset within 1 s" % self.fn.location())

    def _negotiate(self):
        offered = 0
        for half in (0, 1):
            self._common(_DFSELECT, 4, half)
            offered |= self._common(_DF, 4) << (32 * half)
        if not offered >> F_VERSION_1 & 1:
            raise VirtioError("%s: device does not offer VIRTIO_F_VERSION_1" % self.fn.location())
        want = 0
        for bit in (F_VERSION_1, F_MAC, F_STATUS, F_MTU, F_ACCESS_PLATFORM):
            if offered >> bit & 1:
                want |= 1 << bit
        for half in (0, 1):
            self._common(_GFSELECT, 4, half)
            self._common(_GF, 4, (want >> (32 * half)) & 0xFFFFFFFF)
        self._common(_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK)
        if not self._common(_STATUS, 1) & FEATURES_OK:
            raise VirtioError("%s: device refused features 0x%x (offered 0x%x)" % (self.fn.location(), want, offered))
        self.features = want

    def _queue(self, index):
        self._common(_QSELECT, 2, index)
        size = self._common(_QSIZE, 2)
        if not size:
            raise VirtioError("%s: queue %d does not exist" % (self.fn.location(), index))
        pow2 = 1
        while pow2 * 2 <= min(size, QUEUE_MAX):  # a power of two (packed-ring sizes need not be)
            pow2 *= 2
        size = pow2
        self._common(_QSIZE, 2, size)
        # desc (16 B each), avail (4 + 2n + 2), used (4 + 8n + 2): a page-aligned area each, then the buffers
        ring_pages = [(16 * size + 4095) // 4096, (6 + 2 * size + 4095) // 4096, (6 + 8 * size + 4095) // 4096]
        buf_pages = (size * BUF_SIZE + 4095) // 4096
        total = sum(ring_pages) + buf_pages
        host, dev, mapping = self.fn.dma_buffer(total)
        self.dma.append((host, total, mapping))
        desc, avail = host, host + 4096 * ring_pages[0]
        used = avail + 4096 * ring_pages[1]
        bufs = used + 4096 * ring_pages[2]
        delta = dev - host
        self._common(_QMSIX, 2, NO_VECTOR)
        self._common(_QDESC, 8, desc + delta)
        self._common(_QDRIVER, 8, avail + delta)
        self._common(_QDEVICE, 8, used + delta)
        notify_off = self._common(_QNOTIFY, 2)
        self._common(_QENABLE, 2, 1)
        _, nbase, _, mult = self.caps[_NOTIFY]
        return (index, size, desc, avail, used, bufs, bufs + delta, BUF_SIZE, nbase + notify_off * mult)

    def up(self):
        """Claim the device from the firmware, negotiate, set up RX/TX queues, hand the rings to _net."""
        # EDK2's network stack (MNP, IP4, TCP, PXE/HTTP boot: bound once everything was connected and an
        # EFI_RNG_PROTOCOL exists) does not let go of the NIC through an exclusive open: stop it from the
        # top, at every SIMPLE_NETWORK handle, first.
        for h in core.locate_handles(guid.SIMPLE_NETWORK_PROTOCOL):
            _uefi.call(core.bs_fn("DisconnectController"), h, 0, 0)
        self.fn.claim()
        self.reset()
        self._common(_STATUS, 1, ACKNOWLEDGE)
        self._common(_STATUS, 1, ACKNOWLEDGE | DRIVER)
        try:
            self._negotiate()
            self._common(_MSIX, 2, NO_VECTOR)
            rxq, txq = self._queue(RX), self._queue(TX)
            if self.features >> F_MAC & 1:
                self.mac = bytes(self._device_cfg(i, 1) for i in range(6))
            else:  # a locally administered address from the PCI location
                self.mac = bytes([0x02, 0xCB]) + struct.pack(">I", hash(self.fn.location()) & 0xFFFFFFFF)
            if self.features >> F_MTU & 1:
                self.mtu = self._device_cfg(10, 2)
            self._common(_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)
        except Exception:
            self._common(_STATUS, 1, FAILED)
            self.shutdown()
            raise
        _net.attach_virtio(self.fn.iface, self.caps[_NOTIFY][0], self.mac, self.mtu, rxq, txq)

    def link_up(self):
        """The STATUS feature's link bit (True when the device does not report link state)."""
        if not self.features >> F_STATUS & 1:
            return True
        return bool(self._device_cfg(6, 2) & 1)

    def shutdown(self):
        """Detach from lwIP, reset the device (no more DMA), free the rings, give the device back."""
        _net.detach()
        try:
            self.reset()
        finally:
            for host, pages, mapping in self.dma:
                self.fn.free_dma(host, pages, mapping)
            self.dma = []
            self.fn.release()
