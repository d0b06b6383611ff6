"""Network bring-up for plan mode: links up, DHCPv4 on every ethernet link in parallel under one deadline
(or a static klibc `ip=`), address, default route and /etc/resolv.conf.

Interfaces are configured with the classic socket ioctls (their numbers and struct layouts are the same on
every 64-bit Linux arch we boot). DHCP speaks over an AF_PACKET datagram socket per link: before a link
has an address the kernel delivers nothing to a UDP socket, and the replies of some servers are unicast to
the offered address.
"""

from __future__ import annotations

import _socket as socket  # not socket.py (see netstack.http)
import fcntl
import os
import select
import struct
import time
import zlib

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.log import log

SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFHWADDR = 0x8913, 0x8914, 0x8927
SIOCSIFADDR, SIOCSIFNETMASK, SIOCADDRT = 0x8916, 0x891C, 0x890B
IFF_UP, IFF_RUNNING = 0x1, 0x40
RTF_UP, RTF_GATEWAY = 0x1, 0x2
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1

DHCP_DISCOVER, DHCP_OFFER, DHCP_REQUEST, DHCP_ACK, DHCP_NAK = 1, 2, 3, 5, 6
MAGIC = b"\x63\x82\x53\x63"
#: subnet mask, router, DNS servers, host name, domain name, lease time, server id, boot file name
PARAMS = bytes([1, 3, 6, 12, 15, 51, 54, 67])
OPT_OVERLOAD, OPT_BOOTFILE = 52, 67


class Lease:
    """An interface's IPv4 configuration (from DHCP or `ip=`)."""

    def __init__(self, iface: str, address: str, prefix: int, gateway: str = "", dns: list[str] | None = None,
                 server: str = "", lease: int = 0, source: str = "dhcp", bootfile: str = "") -> None:
        self.iface, self.address, self.prefix, self.gateway = iface, address, prefix, gateway
        self.dns, self.server, self.lease, self.source = dns or [], server, lease, source
        #: the DHCP boot file name (option 67, else the BOOTP header's `file` field); "" when none
        self.bootfile = bootfile

    @property
    def netmask(self) -> str:
        return socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - self.prefix)) & 0xFFFFFFFF))

    def __repr__(self) -> str:
        return (f"{self.iface} {self.address}/{self.prefix} gw {self.gateway or '-'} "
                f"dns {','.join(self.dns) or '-'} ({self.source})")


# ---- interfaces -----------------------------------------------------------------------------------------------

def ethernet_links(sysfs: str = "/sys/class/net") -> list[str]:
    """Names of ethernet interfaces (ARPHRD_ETHER, not virtual bridges/bonds' slaves), sorted."""
    out = []
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        return []
    for name in names:
        try:
            with open(f"{sysfs}/{name}/type") as f:
                kind = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if kind == ARPHRD_ETHER and name != "lo" and not os.path.exists(f"{sysfs}/{name}/bridge"):
            out.append(name)
    return out


def _ifreq(name: str, payload: bytes = b"") -> bytearray:
    raw = name.encode()
    if len(raw) > 15:
        raise InitError(f"interface name {name!r} is too long")
    return bytearray(raw.ljust(16, b"\0") + payload.ljust(24, b"\0"))


def _ioctl(request: int, buf: bytearray, what: str) -> bytearray:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), request, buf)
    except OSError as exc:
        raise InitError(f"{what}: {exc.strerror}") from None
    finally:
        s.close()
    return buf


def link_up(name: str) -> None:
    """Set IFF_UP on an interface."""
    buf = _ioctl(SIOCGIFFLAGS, _ifreq(name), f"{name}: get flags")
    flags = struct.unpack_from("H", buf, 16)[0]
    struct.pack_into("H", buf, 16, flags | IFF_UP)
    _ioctl(SIOCSIFFLAGS, buf, f"{name}: link up")


def mac_address(name: str) -> bytes:
    """The interface's 6-byte hardware address."""
    buf = _ioctl(SIOCGIFHWADDR, _ifreq(name), f"{name}: hardware address")
    return bytes(buf[18:24])


def _sockaddr_in(addr: str) -> bytes:
    return struct.pack("<H", socket.AF_INET) + b"\0\0" + socket.inet_aton(addr) + bytes(8)


def configure(lease: Lease, default_route: bool = True) -> None:
    """Give the interface its address and netmask, and add the default route through the gateway."""
    _ioctl(SIOCSIFADDR, _ifreq(lease.iface, _sockaddr_in(lease.address)), f"{lease.iface}: set address")
    _ioctl(SIOCSIFNETMASK, _ifreq(lease.iface, _sockaddr_in(lease.netmask)), f"{lease.iface}: set netmask")
    if default_route and lease.gateway:
        # struct rtentry (LP64): pad1, dst, gateway, genmask, flags, pad2, pad3, pad4, metric, dev, mtu, window,
        # irtt; dev NULL: the kernel finds the interface from the gateway.
        rt = struct.pack("=Q16s16s16sHhxxxxQQhxxxxxxQQQHxxxxxx", 0, _sockaddr_in("0.0.0.0"),
                         _sockaddr_in(lease.gateway), _sockaddr_in("0.0.0.0"), RTF_UP | RTF_GATEWAY, 0, 0, 0, 0, 0,
                         0, 0, 0)
        buf = bytearray(rt)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            fcntl.ioctl(s.fileno(), SIOCADDRT, buf)
        except OSError as exc:
            if exc.errno != 17:  # EEXIST: a route is already there
                raise InitError(f"{lease.iface}: default route via {lease.gateway}: {exc.strerror}") from None
        finally:
            s.close()


def write_resolv_conf(servers: list[str], path: str = "/etc/resolv.conf") -> list[str]:
    """`nameserver` lines for the valid IPv4/IPv6 addresses in `servers` (others skipped); returns those used."""
    good = []
    for s in servers:
        s = s.strip()
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, s)
            except OSError:
                continue
            if s not in good:
                good.append(s)
            break
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(f"nameserver {s}\n" for s in good)
    return good


# ---- static ip= (klibc: client:server:gw:netmask:hostname:device:autoconf:dns0:dns1) ----------------------

def parse_ip_arg(value: str, links: list[str]) -> Lease | None:
    """A static Lease from `ip=`, or None when it asks for DHCP (`dhcp`, `on`, `any`, empty autoconf)."""
    if value in ("", "dhcp", "on", "any", "both", "dhcp,ipv4"):
        return None
    f = value.split(":")
    if len(f) < 5:
        raise InitError(f"ip={value!r}: want client:server:gateway:netmask:hostname[:device[:autoconf[:dns0"
                        "[:dns1]]]] (or ip=dhcp)")
    f += [""] * (9 - len(f))
    client, _, gw, mask, _, dev, auto, dns0, dns1 = f[:9]
    if not client:
        return None if auto in ("", "dhcp", "on", "any") else None
    for what, addr in (("client", client), ("gateway", gw), ("netmask", mask), ("dns0", dns0), ("dns1", dns1)):
        if addr:
            try:
                socket.inet_aton(addr)
            except OSError:
                raise InitError(f"ip={value!r}: {what} {addr!r} is not an IPv4 address") from None
    prefix = 24
    if mask:
        bits = struct.unpack("!I", socket.inet_aton(mask))[0]
        prefix = bin(bits).count("1")
        if bits != ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF):
            raise InitError(f"ip={value!r}: netmask {mask} is not contiguous")
    if not dev:
        if not links:
            raise InitError(f"ip={value!r}: no ethernet link to configure")
        dev = links[0]
    return Lease(dev, client, prefix, gw, [d for d in (dns0, dns1) if d], source="ip=")


# ---- DHCPv4 ---------------------------------------------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dhcp_message(kind: int, xid: int, mac: bytes, requested: str = "", server: str = "", hostname: str = "") -> bytes:
    """A BOOTP request carrying DHCP message `kind` (broadcast flag set: we have no address yet)."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                        bytes(4), mac.ljust(16, b"\0"), b"", b"")
    opts = bytearray(MAGIC)
    opts += bytes([53, 1, kind])
    opts += bytes([61, 7, 1]) + mac
    opts += bytes([55, len(PARAMS)]) + PARAMS
    if requested:
        opts += bytes([50, 4]) + socket.inet_aton(requested)
    if server:
        opts += bytes([54, 4]) + socket.inet_aton(server)
    if hostname:
        name = hostname.encode()[:63]
        opts += bytes([12, len(name)]) + name
    opts += b"\xff"
    return bootp + bytes(opts)


def udp_ip_packet(payload: bytes, src: str = "0.0.0.0", dst: str = "255.255.255.255", sport: int = 68,
                  dport: int = 67) -> bytes:
    """An IPv4 packet holding one UDP datagram (UDP checksum 0: optional over IPv4)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(src),
                      socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:] + udp


def _options(b: bytes, i: int, end: int, into: dict[int, bytes]) -> bool:
    """Options from b[i:end] into `into` (a repeated option is concatenated, RFC 3396); False if truncated."""
    while i < end:
        code = b[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 2 > end or i + 2 + b[i + 1] > end:
            return False  # truncated option: not a reply we can trust
        into[code] = into.get(code, b"") + bytes(b[i + 2:i + 2 + b[i + 1]])
        i += 2 + b[i + 1]
    return True


def _cstring(field: bytes) -> str:
    """A NUL-terminated BOOTP header field as text (bytes that are not ASCII make it unusable: "")."""
    raw = field.split(b"\0", 1)[0]
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return ""


def parse_reply(packet: bytes, xid: int) -> dict | None:
    """The DHCP reply in an IPv4 packet for transaction `xid`, as a dict; None for anything else.

    `bootfile` is option 67, else the header's `file` field (what QEMU's user networking fills from
    `bootfile=`); with option 52 (overload) the `file`/`sname` fields carry more options instead."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 0xF) * 4
    if len(packet) < ihl + 8 + 240:
        return None
    dport = struct.unpack_from("!H", packet, ihl + 2)[0]
    b = packet[ihl + 8:]
    if dport != 68 or b[0] != 2 or struct.unpack_from("!I", b, 4)[0] != xid or b[236:240] != MAGIC:
        return None
    out: dict = {"yiaddr": socket.inet_ntoa(b[16:20]), "options": {}}
    if not _options(b, 240, len(b), out["options"]):
        return None
    overload = (out["options"].get(OPT_OVERLOAD) or b"\0")[0]
    if overload & 1 and not _options(b, 108, 236, out["options"]):  # `file` holds options
        return None
    if overload & 2 and not _options(b, 44, 108, out["options"]):  # `sname` holds options
        return None
    name = out["options"].get(OPT_BOOTFILE, b"").split(b"\0", 1)[0]
    out["bootfile"] = _cstring(name) if name else ("" if overload & 1 else _cstring(b[108:236]))
    kind = out["options"].get(53, b"")
    out["type"] = kind[0] if len(kind) == 1 else 0
    return out


def _lease_from(iface: str, reply: dict) -> Lease:
    o = reply["options"]
    prefix = 24
    if len(o.get(1, b"")) == 4:
        prefix = bin(struct.unpack("!I", o[1])[0]).count("1")
    routers = o.get(3, b"")
    dns = [socket.inet_ntoa(o[6][i:i + 4]) for i in range(0, len(o.get(6, b"")) // 4 * 4, 4)]
    server = socket.inet_ntoa(o[54]) if len(o.get(54, b"")) == 4 else ""
    lease = struct.unpack("!I", o[51])[0] if len(o.get(51, b"")) == 4 else 0
    return Lease(iface, reply["yiaddr"], prefix, socket.inet_ntoa(routers[:4]) if len(routers) >= 4 else "", dns,
                 server, lease, bootfile=reply.get("bootfile", ""))


def new_xid(mac: bytes) -> int:
    """A fresh DHCP transaction id: from the kernel's RNG when it is ready (linux.fresh_random), else the MAC and
    the clock; it need not be secret (and the random module's import alone is 0.15 s under riscv64 TCG)."""
    if (rand := linux.fresh_random(4)) is not None:
        return int.from_bytes(rand, "little")
    return zlib.crc32(mac + time.monotonic_ns().to_bytes(8, "little"))


#: Seconds before a DHCP message is first sent again (then doubling to 8 s). A just-raised link can lose the first
#: DISCOVER: in one of a dozen boots under QEMU the lease came a whole retransmission later.
FIRST_RETRANSMIT = 0.5


class _Client:
    """DHCP state for one link: DISCOVER -> OFFER -> REQUEST -> ACK, retransmitting with backoff."""

    def __init__(self, iface: str, hostname: str) -> None:
        self.iface, self.hostname = iface, hostname
        self.mac = mac_address(iface)
        self.xid = new_xid(self.mac)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.sock.bind((iface, ETH_P_IP))
        self.sock.setblocking(False)
        self.state, self.offer, self.lease = "discover", None, None
        self.next_send, self.interval = 0.0, FIRST_RETRANSMIT

    def send(self, now: float) -> None:
        if self.state == "discover":
            msg = dhcp_message(DHCP_DISCOVER, self.xid, self.mac, hostname=self.hostname)
        else:
            msg = dhcp_message(DHCP_REQUEST, self.xid, self.mac, self.offer["yiaddr"],
                               _lease_from(self.iface, self.offer).server, self.hostname)
        try:
            self.sock.sendto(udp_ip_packet(msg), (self.iface, ETH_P_IP, 0, ARPHRD_ETHER, b"\xff" * 6))
        except OSError as exc:
            log(f"dhcp: {self.iface}: send: {exc.strerror}")
        self.next_send = now + self.interval
        self.interval = min(self.interval * 2, 8.0)

    def receive(self, now: float) -> None:
        while True:
            try:
                packet = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            reply = parse_reply(packet, self.xid)
            if reply is None:
                continue
            if self.state == "discover" and reply["type"] == DHCP_OFFER:
                self.offer, self.state, self.interval = reply, "request", FIRST_RETRANSMIT
                self.send(now)
            elif self.state == "request" and reply["type"] == DHCP_ACK:
                self.lease, self.state = _lease_from(self.iface, reply), "bound"
            elif self.state == "request" and reply["type"] == DHCP_NAK:
                self.state, self.offer, self.interval = "discover", None, FIRST_RETRANSMIT
                self.xid = new_xid(self.mac)
                self.send(now)

    def close(self) -> None:
        self.sock.close()


def dhcp(links: list[str], deadline: float, hostname: str = "cloud-boot") -> list[Lease]:
    """DHCPv4 on every link at once; returns the leases obtained once all links are bound or, after the first
    lease, after a short grace period (so one dead port does not hold the boot), or at the deadline."""
    clients = []
    for name in links:
        try:
            clients.append(_Client(name, hostname))
        except (OSError, InitError) as exc:
            log(f"dhcp: {name}: {getattr(exc, 'strerror', None) or exc}")
    if not clients:
        raise InitError("dhcp: no usable ethernet link")
    end = time.monotonic() + deadline
    grace_end = None
    try:
        while True:
            now = time.monotonic()
            for c in clients:
                if c.state != "bound" and now >= c.next_send:
                    c.send(now)
            pending = [c for c in clients if c.state != "bound"]
            if not pending or now >= end or (grace_end is not None and now >= grace_end):
                break
            wait = min([c.next_send for c in pending] + [end] + ([grace_end] if grace_end else [])) - now
            ready, _, _ = select.select([c.sock for c in pending], [], [], max(0.0, wait))
            for c in pending:
                if c.sock in ready:
                    c.receive(time.monotonic())
            if grace_end is None and any(c.state == "bound" for c in clients):
                grace_end = time.monotonic() + 2.0
    finally:
        for c in clients:
            c.close()
    return [c.lease for c in clients if c.lease]


def bring_up(cmd: dict[str, str], deadline: float = 30.0, link_wait: float = 10.0) -> list[Lease]:
    """lo up; every ethernet link up; `ip=` static or DHCP; addresses, default route (first lease), DNS
    (cloudboot.dns wins over DHCP's). InitError when no link got an address."""
    try:
        link_up("lo")
    except InitError as exc:
        log(f"net: {exc}")
    end = time.monotonic() + link_wait
    links = ethernet_links()
    while not links and time.monotonic() < end:
        time.sleep(0.2)
        links = ethernet_links()
    if not links:
        raise InitError(f"net: no ethernet link appeared within {link_wait:g}s "
                        f"(interfaces: {', '.join(sorted(os.listdir('/sys/class/net'))) or 'none'})")
    for name in links:
        link_up(name)
    static = parse_ip_arg(cmd.get("ip", ""), links)
    if static:
        leases = [static]
    else:
        log(f"net: DHCPv4 on {', '.join(links)} (deadline {deadline:g}s)")
        leases = dhcp(links, deadline)
        if not leases:
            raise InitError(f"net: no DHCP lease on {', '.join(links)} within {deadline:g}s")
    for n, lease in enumerate(leases):
        configure(lease, default_route=n == 0)
        log(f"net: {lease}" + (f" boot file {lease.bootfile!r}" if lease.bootfile else ""))
    dns = [d for d in cmd.get("cloudboot.dns", "").split(",") if d] or [d for lz in leases for d in lz.dns]
    used = write_resolv_conf(dns)
    log(f"net: resolv.conf nameservers {' '.join(used) or 'none'}")
    return leases
