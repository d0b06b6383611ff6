"""Path D end to end: the firmware alone (no UKI, no disk) boots from the network. QEMU user networking hands
out the plan reference as the DHCP boot file name; Debian's docker-registry on 127.0.0.1 (10.0.2.2 to the
guest) serves the plan's parsed form and a multi-arch index of Debian kernels + the marker initrd; the
firmware's own virtio-net driver, lwIP and HTTP client pull them, and the initrd prints the plan's command
line. Faults are checked at the REPL (one boot, many cases)."""

from __future__ import annotations

import re
import secrets

import pytest

from cloudboot.cli import main as cli
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from cloudboot.harness.profiles import profile
from cloudboot.harness.repl import Repl
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e

ARCHES = ["x86_64", "aarch64", "riscv64", "loongarch64"]
GO = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "loongarch64": "loong64"}
GUEST_HOST = "10.0.2.2"  # QEMU user networking's name for the host's 127.0.0.1
PLAN = """
default_target = "debian"
target "debian" {{
  label   = "Debian from the network"
  index   = "http://{reg}/boot/debian:netboot"
  cmdline = [arch == "arm64" ? "console=ttyAMA0" : "console=ttyS0", "panic=-1", "cbnet={token}"]
}}
"""


def nic_args(bootfile: str = "") -> list[str]:
    """A user-net NIC (modern virtio-net) whose DHCP reply carries `bootfile`."""
    net = "user,id=n0" + (f",bootfile={bootfile}" if bootfile else "")
    return ["-netdev", net, "-device", "virtio-net-pci,netdev=n0,romfile=,disable-legacy=on"]


def push_boot_index(registry, tmp_path, arches: list[str], tag: str = "netboot") -> None:
    """Each arch's Debian kernel + marker initrd as an artifact, then a multi-arch index at boot/debian:<tag>."""
    refs = []
    for arch in arches:
        g = guest(arch)
        ref = f"{registry.host}/boot/debian:{tag}-{GO[arch]}"
        assert cli(["push", "artifact", ref, "--platform", f"linux/{GO[arch]}", "--kernel", str(g.kernel),
                    "--initrd", str(g.initrd)]) == 0
        refs += ["-p", f"linux/{GO[arch]}={ref}"]
    assert cli(["push", "index", f"{registry.host}/boot/debian:{tag}", *refs]) == 0


def push_plan(registry, tmp_path, name: str, text: str) -> str:
    plan = tmp_path / f"{name.replace('/', '-').replace(':', '-')}.hcl"
    plan.write_text(text)
    assert cli(["push", "plan", f"{registry.host}/{name}", "--file", str(plan)]) == 0
    return f"http://{GUEST_HOST}:{registry.port}/{name}"


@pytest.fixture(scope="module")
def netboot_registry(registry, tmp_path_factory):
    """The plan and the multi-arch index in the session's plain registry; the token the command line shows."""
    work = tmp_path_factory.mktemp("netboot")
    token = secrets.token_hex(4)
    push_boot_index(registry, work, ARCHES)
    plan_url = push_plan(registry, work, "plans/netboot:v1",
                         PLAN.format(reg=f"{GUEST_HOST}:{registry.port}", token=token))
    return plan_url, token


@pytest.mark.parametrize("arch", ARCHES)
def test_firmware_alone_boots_plan_from_dhcp_bootfile(netboot_registry, machine, arch: str) -> None:
    plan_url, token = netboot_registry
    m = machine(arch, efi=firmware_file(arch), extra=nic_args(plan_url) + ["-no-reboot"])
    m.expect_line(r"network boot after the disks", 180)
    m.expect_line(r"net: virtio-net 1af4:1041 .*\(our virtio-net driver\)", 120)
    m.expect_line(r"net: lease 10\.0\.2\.15/255\.255\.255\.0 gw 10\.0\.2\.2", 60)
    m.expect_line(re.escape(f"net: plan {plan_url} (from the DHCP boot file name)"), 30)
    m.expect_line(r'net: target "debian"', 120)
    m.expect_line(r"net: kernel: \d+ bytes in \d+ ms .*sha256 verified", 300)
    m.expect_line(r"net: initrd: \d+ bytes in \d+ ms .*sha256 verified", 120)
    m.expect(MARKER, 240)
    line = m.expect_line(r"^cmdline: ", 60).text
    assert f"cbnet={token}" in line and f"console={profile(arch).linux_console}" in line, line
