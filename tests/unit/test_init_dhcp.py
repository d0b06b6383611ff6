"""The init's DHCP client (`net.dhcp`, AF_PACKET) against dnsmasq, over a veth pair in a network namespace the
test makes: a DISCOVER nobody answers is sent again, and the lease comes from a retransmission."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

from cloudboot.init import net
from tests.netns import Netns, _ip

CLIENT, SERVER = "cbdhcpc", "cbdhcps"
LEASED = "10.77.0.20"


def _discover_at(sock: socket.socket, deadline: float) -> float | None:
    """The time the next DHCPDISCOVER arrives on the server's end (an IPv4/UDP frame to port 67, option 53 = 1)."""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return None
        frame = sock.recv(2048)
        ihl = (frame[0] & 15) * 4
        if frame[9] == 17 and int.from_bytes(frame[ihl + 2:ihl + 4], "big") == 67 \
                and bytes([53, 1, net.DHCP_DISCOVER]) in frame[ihl + 8 + 240:]:
            return time.monotonic()
    return None


def test_dhcp_retransmits_a_discover_nobody_answered(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces and AF_PACKET sockets need root")
    dnsmasq = shutil.which("dnsmasq") or pytest.fail("dnsmasq is missing (Debian package dnsmasq-base)")
    ns = Netns()
    server = None
    try:
        for args in (("link", "add", CLIENT, "type", "veth", "peer", "name", SERVER),
                     ("addr", "add", "10.77.0.1/24", "dev", SERVER), ("link", "set", SERVER, "up")):
            ns.run_inside(lambda args=args: _ip(*args))
        watch = ns.run_inside(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)))
        watch.bind((SERVER, 0x0800))
        got: dict[str, object] = {}
        client = threading.Thread(target=lambda: got.update(leases=ns.run_inside(lambda: net.dhcp([CLIENT], 20))))
        ns.run_inside(lambda: net.link_up(CLIENT))
        client.start()
        first = _discover_at(watch, time.monotonic() + 10)
        assert first is not None, "the client sent no DISCOVER"
        # only now a server: the first DISCOVER went unanswered
        server = ns.popen([dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                           "--port=0", f"--interface={SERVER}", "--bind-interfaces", "--user=root",
                           f"--dhcp-range={LEASED},{LEASED},255.255.255.0,10m",
                           f"--dhcp-leasefile={tmp_path / 'leases'}", "--pid-file=", "--log-facility=-"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        again = _discover_at(watch, time.monotonic() + 10)
        client.join(30)
        assert again is not None and again - first >= net.FIRST_RETRANSMIT * 0.9, (first, again)
        (lease,) = got.get("leases") or pytest.fail("no lease (see the client thread's error above)")
        assert (lease.iface, lease.address, lease.prefix) == (CLIENT, LEASED, 24)
        watch.close()
    finally:
        if server is not None:
            server.kill()
            server.wait()
        ns.close()
