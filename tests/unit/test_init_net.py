"""Init's network pieces without a network: DHCP packets (built and parsed), klibc ip=, LLDP TLVs, the
original's cmdline templating, and the legacy cloudboot.image plan."""

from __future__ import annotations

import socket
import struct

import pytest

from cloudboot.init import lldp, net, planmode
from cloudboot.init.errors import InitError

MAC = bytes.fromhex("525400123456")


def _reply(kind: int, xid: int, yiaddr: str, options: bytes) -> bytes:
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, xid, 0, 0, bytes(4), socket.inet_aton(yiaddr),
                        bytes(4), bytes(4), MAC.ljust(16, b"\0"), b"", b"")
    payload = bootp + net.MAGIC + bytes([53, 1, kind]) + options + b"\xff"
    return net.udp_ip_packet(payload, "10.0.2.2", "255.255.255.255", 67, 68)


def test_discover_is_a_valid_ip_udp_bootp_packet() -> None:
    pkt = net.udp_ip_packet(net.dhcp_message(net.DHCP_DISCOVER, 0x1234, MAC, hostname="cb"))
    assert pkt[0] == 0x45 and pkt[9] == 17 and net._checksum(pkt[:20]) == 0  # header checksum verifies
    sport, dport, length = struct.unpack_from("!HHH", pkt, 20)
    assert (sport, dport, length) == (68, 67, len(pkt) - 20)
    bootp = pkt[28:]
    assert bootp[0] == 1 and struct.unpack_from("!I", bootp, 4)[0] == 0x1234 and bootp[28:34] == MAC
    assert struct.unpack_from("!H", bootp, 10)[0] == 0x8000  # broadcast replies: we have no address yet
    assert bootp[236:240] == net.MAGIC and bytes([53, 1, 1]) in bootp[240:]


def test_ack_parsed_into_a_lease() -> None:
    opts = (bytes([1, 4]) + socket.inet_aton("255.255.255.0") + bytes([3, 4]) + socket.inet_aton("10.0.2.2")
            + bytes([6, 8]) + socket.inet_aton("10.0.2.3") + socket.inet_aton("1.1.1.1")
            + bytes([51, 4]) + struct.pack("!I", 86400) + bytes([54, 4]) + socket.inet_aton("10.0.2.2"))
    reply = net.parse_reply(_reply(net.DHCP_ACK, 77, "10.0.2.15", opts), 77)
    assert reply["type"] == net.DHCP_ACK
    lease = net._lease_from("eth0", reply)
    assert (lease.address, lease.prefix, lease.gateway, lease.dns, lease.lease) == \
        ("10.0.2.15", 24, "10.0.2.2", ["10.0.2.3", "1.1.1.1"], 86400)
    assert lease.netmask == "255.255.255.0"
    assert net.parse_reply(_reply(net.DHCP_ACK, 77, "10.0.2.15", opts), 78) is None  # another transaction
    truncated = _reply(net.DHCP_ACK, 77, "10.0.2.15", bytes([6, 200, 1, 2]))
    assert net.parse_reply(truncated, 77) is None
    assert net.parse_reply(b"\x45" + bytes(30), 77) is None


def test_static_ip_argument() -> None:
    lease = net.parse_ip_arg("192.168.1.5::192.168.1.1:255.255.255.0::eth1:off:9.9.9.9", ["eth0", "eth1"])
    assert (lease.iface, lease.address, lease.prefix, lease.gateway, lease.dns) == \
        ("eth1", "192.168.1.5", 24, "192.168.1.1", ["9.9.9.9"])
    assert net.parse_ip_arg("dhcp", ["eth0"]) is None
    assert net.parse_ip_arg("10.0.0.2::10.0.0.1:255.255.0.0:host", ["enp0s3"]).iface == "enp0s3"
    for bad, what in (("1.2.3", "want client"), ("1.2.3.4::1.2.3.999:255.0.0.0::eth0", "gateway"),
                      ("1.2.3.4::1.2.3.1:255.0.255.0::eth0", "not contiguous")):
        with pytest.raises(InitError, match=what):
            net.parse_ip_arg(bad, ["eth0"])


def test_resolv_conf_skips_invalid(tmp_path) -> None:
    path = tmp_path / "etc/resolv.conf"
    assert net.write_resolv_conf(["10.0.2.3", "bogus", "fd00::1", "10.0.2.3"], str(path)) == ["10.0.2.3", "fd00::1"]
    assert path.read_text() == "nameserver 10.0.2.3\nnameserver fd00::1\n"


def test_lldp_frame_round_trip_and_garbage() -> None:
    payload = lldp.frame_payload(MAC, "Eth1", "sw-rack7")
    values = lldp.parse(payload)
    assert values["chassis_id"] == "52:54:00:12:34:56" and values["port_id"] == "Eth1"
    assert values["system_name"] == "sw-rack7" and values["system_desc"] == "cloud-boot-init"
    assert lldp.parse(payload[:7])["port_id"] == ""  # cut inside a TLV: what came before is kept, no error
    assert lldp.parse(b"\xff" * 40) == dict.fromkeys(lldp.FIELDS, "")


def test_cmdline_templating_as_the_original() -> None:
    from oci.ref import parse

    lease = net.Lease("eth0", "10.0.2.15", 24, "10.0.2.2", ["10.0.2.3"])
    out = planmode.render_cmdline("ip={{.IPSpec}} reg={{ .RegistryBase }} x={{.Registry}}", lease,
                                  parse("10.0.2.2:5000/boot/k:1", plain_http=True))
    assert out == "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3 reg=http://10.0.2.2:5000/v2 x=10.0.2.2:5000"
    assert planmode.render_cmdline("plain", None, None) == "plain"


def test_legacy_image_plan_selects_its_one_target() -> None:
    from bootplan import plan

    t = plan.render(planmode.legacy_plan("10.0.2.2:5000/boot/x:${odd}"), "amd64")
    assert (t["name"], t["index"], t["source"]) == ("legacy-image", "10.0.2.2:5000/boot/x:${odd}", "oci")
