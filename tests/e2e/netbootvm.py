"""Path D test and bench helpers: the guest's view of QEMU user networking, the netboot plan, pushing Debian
kernels + the marker initrd as a multi-arch index (tests/e2e/test_netboot.py, bench/bench_netboot.py)."""

from __future__ import annotations

import arches
from cloudboot.cli import main as cli
from cloudboot.harness.guests import guest

GO = {a.name: a.go for a in arches.ARCHES}  # Go/OCI names, from the one table
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
    """Push plan `text` (HCL) as `name`; returns the URL the guest uses for it."""
    plan = tmp_path / f"{name.replace('/', '-').replace(':', '-')}.hcl"
    plan.write_text(text)
    assert cli(["push", "plan", f"{registry.host}/{name}", str(plan)]) == 0
    return f"http://{GUEST_HOST}:{registry.port}/{name}"
