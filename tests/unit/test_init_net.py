"""Init's network pieces without a network: DHCP packets (built and parsed), klibc ip=, LLDP TLVs, the
original's cmdline templating, and the legacy cloudboot.image plan."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from cloudboot.init import lldp, net, planmode
from cloudboot.init.errors import InitError

MAC = bytes.fromhex("525400123456")


def _reply(kind: int, xid: int, yiaddr: str, options: bytes, file: bytes = b"", sname: bytes = b"") -> bytes:
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, xid, 0, 0, bytes(4), socket.inet_aton(yiaddr),
                        bytes(4), bytes(4), MAC.ljust(16, b"\0"), sname, file)
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


def test_boot_file_name_from_option_67_or_the_file_field() -> None:
    """Option 67 wins over the BOOTP `file` field (what QEMU user networking's bootfile= fills); with option 52
    the `file` field holds options, not a name; the discover asks for option 67."""
    ref = b"http://10.0.2.2:5000/cloud-boot/demo-plan:v1"
    assert 67 in net.PARAMS
    reply = net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", b"", file=ref), 9)
    assert reply["bootfile"] == ref.decode()
    assert net._lease_from("eth0", reply).bootfile == ref.decode()
    opt67 = bytes([67, 11]) + b"reg.x/p:one"
    assert net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", opt67, file=ref), 9)["bootfile"] == "reg.x/p:one"
    overloaded = bytes([52, 1, 1])  # `file` carries options: option 67 inside it
    file_opts = bytes([67, 11]) + b"reg.y/p:two" + b"\xff"
    assert net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", overloaded, file=file_opts), 9)["bootfile"] == \
        "reg.y/p:two"
    assert net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", bytes([52, 1, 1]), file=b"\x43\xc8abc"), 9) is None
    assert net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", bytes([52, 0])), 9)["bootfile"] == ""
    assert net.parse_reply(_reply(net.DHCP_ACK, 9, "10.0.2.15", b"", file=b"\xffbinary"), 9)["bootfile"] == ""


def test_plan_source_order() -> None:
    """Baked (the kernel command line's own plan) > DHCP boot file > CloudBootCmdline > metadata URL."""
    boot = "http://10.0.2.2:5000/cloud-boot/demo-plan:v1"
    meta = {"cloudboot.plan": "meta.example/p:1", "cloudboot.target": "t2"}
    var = {"cloudboot.plan": "var.example/p:1"}
    src = planmode.plan_source
    assert src({"cloudboot.plan": "baked.example/p:1"}, var, boot, meta)[1:] == \
        ("baked.example/p:1", "the kernel command line (baked into the medium)")
    assert src({"cloudboot.image": "baked.example/i:1"}, None, boot, {})[:2] == ("cloudboot.image", "baked.example/i:1")
    # the same plan as CloudBootCmdline's: the firmware passed the variable as the command line
    assert src({"cloudboot.plan": "var.example/p:1"}, var, boot, meta)[1:] == (boot, "the DHCP boot file name")
    assert src({"cloudboot.plan": "var.example/p:1"}, var, "", meta)[1:] == \
        ("var.example/p:1", "the CloudBootCmdline variable")
    assert src({"cloudboot.metadata.url": "http://169.254.169.254/m"}, None, "", meta)[1:] == \
        ("meta.example/p:1", "the metadata URL http://169.254.169.254/m")
    for not_oci in ("pxelinux.0", "boot/grubx64.efi", "undionly.kpxe"):
        assert src({}, None, not_oci, meta)[1] == "meta.example/p:1"
    assert src({}, None, "localhost/p:1", {})[1] == "localhost/p:1"
    assert src({}, None, "", {}) is None


def test_settle_source_keeps_one_plan_key_and_metadata_overrides() -> None:
    cmd = {"cloudboot.image": "var.example/i:1", "cloudboot.target": "a", "cloudboot.metadata.url": "http://m/x"}
    planmode.settle_source(cmd, {"cloudboot.image": "var.example/i:1"}, "reg.example:5000/p:2",
                           {"cloudboot.plan": "meta.example/p:1", "cloudboot.target": "b"})
    assert cmd == {"cloudboot.plan": "reg.example:5000/p:2", "cloudboot.target": "b",
                   "cloudboot.metadata.url": "http://m/x"}


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

    t = plan.render(planmode.legacy_plan("10.0.2.2:5000/boot/x:v1"), "amd64")
    assert (t["name"], t["index"], t["source"]) == ("legacy-image", "10.0.2.2:5000/boot/x:v1", "oci")
    # taken literally, never as a template: `${odd}` stays, and is then no OCI tag
    with pytest.raises(plan.PlanError, match=r"index \"10.0.2.2:5000/boot/x:\$\{odd\}\" is not an OCI reference"):
        plan.render(planmode.legacy_plan("10.0.2.2:5000/boot/x:${odd}"), "amd64")


def test_xid_never_waits_for_the_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    """Early in boot the kernel's RNG may not be seeded: the xid then comes from the MAC and the clock instead of
    blocking (os.urandom waited ~1 s there)."""
    def not_ready(n, flags):
        assert flags & os.GRND_NONBLOCK
        raise BlockingIOError(11, "Resource temporarily unavailable")

    assert 0 <= net.new_xid(b"\x52\x54\x00\x12\x34\x56") < 1 << 32
    monkeypatch.setattr(os, "getrandom", not_ready)
    a, b = net.new_xid(b"\x52\x54\x00\x12\x34\x56"), net.new_xid(b"\x52\x54\x00\x12\x34\x57")
    assert a != b and 0 <= a < 1 << 32
