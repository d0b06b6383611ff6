"""The firmware's network interface: our virtio-net driver on the first virtio-net PCI function, else the
firmware's EFI_SIMPLE_NETWORK_PROTOCOL (real hardware NICs); then a DHCPv4 lease from lwIP's client."""

import time

import _net
import _uefi

from uefi import core, guid, mem, pci

SIMPLE_NETWORK = guid.SIMPLE_NETWORK_PROTOCOL


class NetError(OSError):
    """The network could not be brought up: no NIC, no link, no lease (the message says which)."""


class Lease:
    """What DHCP gave: address, netmask, gateway, dns (list), bootfile (option 67 or the BOOTP file field),
    domain (option 15), server (option 54), seconds (option 51)."""

    def __init__(self, t):
        self.address, self.netmask, self.gateway, self.dns, self.bootfile, self.domain, self.server, \
            self.seconds = t

    def __str__(self):
        return "%s/%s gw %s dns %s%s lease %ds from %s" % (
            self.address, self.netmask, self.gateway, ",".join(self.dns) or "-",
            " domain " + self.domain if self.domain else "", self.seconds, self.server)


class SnpNic:
    """A NIC driven through the firmware's EFI_SIMPLE_NETWORK_PROTOCOL (frames only; our lwIP above it)."""

    kind = "snp"

    def __init__(self, handle):
        self.handle = handle
        self.snp = core.handle_protocol(handle, SIMPLE_NETWORK)
        self.where = "SNP handle %x" % handle

    def _fn(self, off):
        return mem.u64(self.snp + off)

    def up(self):
        mode = mem.u64(self.snp + 120)
        state = mem.u32(mode)
        if state == 0:  # Stopped
            core.check("SNP.Start", _uefi.call(self._fn(8), self.snp))
        if mem.u32(mode) == 1:  # Started
            core.check("SNP.Initialize", _uefi.call(self._fn(24), self.snp, 0, 0))
        # unicast + broadcast (ReceiveFilters: enable bits 0x1 | 0x4)
        _uefi.call(self._fn(48), self.snp, 0x1 | 0x4, 0, 0, 0, None)
        self.mac = mem.read(mode + 552, 6)  # EFI_SIMPLE_NETWORK_MODE.CurrentAddress
        mtu = mem.u32(mode + 12)  # MaxPacketSize
        _net.attach_snp(self.snp, self.mac, min(mtu or 1500, 1500))

    def link_up(self):
        supported, present = mem.read(mem.u64(self.snp + 120) + 651, 2)  # MediaPresentSupported, MediaPresent
        return not supported or bool(present)

    def shutdown(self):
        _net.detach()


def find_nic(log):
    """Our driver for the first virtio-net function, else the first SNP; NetError when there is neither."""
    from netboot import virtio

    for attempt in (0, 1):
        for fn in pci.functions():
            if virtio.is_virtio_net(fn):
                nic = virtio.VirtioNet(fn)
                nic.kind = "virtio"
                nic.where = "virtio-net %04x:%04x at %s" % (fn.vendor, fn.device, fn.location())
                return nic
        if attempt == 0:
            core.connect_all()  # a fast-boot BDS may not have enumerated PCI or started SNP drivers yet
    handles = core.locate_handles(SIMPLE_NETWORK)
    if handles:
        return SnpNic(handles[0])
    raise NetError("no network interface: no virtio-net PCI function and no SIMPLE_NETWORK protocol")


def bring_up(log, link_s=5.0, dhcp_s=20.0):
    """(nic, Lease): the NIC up with a DHCP lease, or NetError naming what was missing in time."""
    nic = find_nic(log)
    t0 = time.ticks_ms()
    nic.up()
    log("net: %s (%s driver), MAC %s" % (nic.where, "our virtio-net" if nic.kind == "virtio" else "firmware SNP",
                                          ":".join("%02x" % b for b in nic.mac)))
    deadline = time.ticks_add(t0, int(link_s * 1000))
    while not nic.link_up():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            nic.shutdown()
            raise NetError("net: no link on %s after %.0f s" % (nic.where, link_s))
        core.stall(10000)
    _net.dhcp_start()
    deadline = time.ticks_add(time.ticks_ms(), int(dhcp_s * 1000))
    while True:
        _net.poll()
        lease = _net.lease()
        if lease:
            break
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            nic.shutdown()
            raise NetError("net: no DHCP lease on %s within %.0f s" % (nic.where, dhcp_s))
    lease = Lease(lease)
    log("net: lease %s in %d ms" % (lease, time.ticks_diff(time.ticks_ms(), t0)))
    return nic, lease
