"""Path D against Linux's own network stack: the guest's virtio-net NIC is a TAP device in a network namespace
the test makes, dnsmasq there hands out the lease and the plan reference (the BOOTP `file` field), and the
registry is reached through a relay whose listening socket lives in the namespace - so every frame the
firmware's driver and lwIP exchange meets Linux's ARP, IPv4 and TCP instead of QEMU's user-mode emulation."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess

import pytest

import arches
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from tests.e2e.conftest import firmware_file
from tests.e2e.netbootvm import PLAN, push_boot_index, push_plan
from tests.netns import Forwarder, Netns

pytestmark = pytest.mark.e2e

GUEST = "10.77.0.15"


@pytest.fixture
def tap_net(registry):
    """(namespace, relay to the registry) with dnsmasq serving DHCP on the TAP device; all torn down after."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces and TAP devices need root")
    dnsmasq = shutil.which("dnsmasq") or pytest.fail("dnsmasq is missing (Debian package dnsmasq-base)")
    ns = Netns()
    fwd = Forwarder(ns, registry.port)
    yield ns, fwd, dnsmasq
    fwd.close()
    ns.close()


def test_firmware_boots_over_a_tap_device_against_linux_tcp(registry, tap_net, tmp_path) -> None:
    ns, fwd, dnsmasq = tap_net
    arch = "x86_64"
    token = secrets.token_hex(4)
    push_boot_index(registry, tmp_path, [arch], tag="tap")
    reg = f"{ns.addr}:{fwd.port}"
    plan = push_plan(registry, tmp_path, "plans/tap:v1",
                     PLAN.format(reg=reg, token=token).replace("debian:netboot", "debian:tap"))
    plan = plan.replace(plan.split("/")[2], reg)  # the guest's address for the registry: the relay
    dhcp = ns.popen([dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                     "--port=0", f"--interface={ns.tap}", "--bind-interfaces", "--user=root",
                     f"--dhcp-range={GUEST},{GUEST},255.255.255.0,10m", f"--dhcp-option=option:router,{ns.addr}",
                     f"--dhcp-boot={plan}", f"--dhcp-leasefile={tmp_path / 'leases'}", "--pid-file=",
                     "--log-facility=-"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nic = ["-netdev", f"tap,id=n0,ifname={ns.tap},script=no,downscript=no",
           "-device", "virtio-net-pci,netdev=n0,romfile=,disable-legacy=on", "-no-reboot"]
    m = ns.run_inside(lambda: Machine(arch, efi=firmware_file(arch), extra=nic).start())
    try:
        m.expect_line(r"net: virtio-net 1af4:1041 .*\(our virtio-net driver\)", 300)
        m.expect_line(rf"net: lease {re.escape(GUEST)}/255\.255\.255\.0 gw {re.escape(ns.addr)}", 120)
        m.expect_line(re.escape(f"net: plan {plan} (from the DHCP boot file name)"), 30)
        m.expect_line(r"net: kernel: \d+ bytes in \d+ ms .*sha256 verified", 300)
        m.expect_line(r"net: initrd: \d+ bytes in \d+ ms .*sha256 verified", 120)
        m.expect(MARKER, 240)
        line = m.expect_line(r"^cmdline: ", 60).text
        assert f"cbnet={token}" in line and f"console={arches.get(arch).linux_console}" in line, line
        g = guest(arch)
        assert fwd.relayed > g.kernel.stat().st_size + g.initrd.stat().st_size  # it all crossed the TAP device
    finally:
        m.kill()
        dhcp.kill()
        dhcp.wait()
