"""`cloud-boot deps` installs HOST_PACKAGES from the system's own sources on Debian 12 and 13. On a Debian 12
host, the Debian 13 half is checked here: every package resolves from trixie's main component alone (read
through a private apt configuration from the machine's own mirror), zfs-fuse included, so no release needs
contrib or a change to its sources."""

from __future__ import annotations

import re

from cloudboot.run import run
from cloudboot.toolchain import apt
from cloudboot.toolchain.setup import HOST_PACKAGES


def test_host_packages_resolve_from_trixie_main() -> None:
    trixie = apt.PrivateApt("trixie", ["trixie"])  # main only; the lists qemu.ensure_firmware also reads
    trixie.update()
    assert "contrib" not in (trixie.root / "sources.list").read_text()
    policy = run(trixie.command("apt-cache", "policy", "zfs-fuse"), env=trixie.env(), capture=True).stdout.decode()
    assert re.search(r"^\s+\d+ \S+ trixie/main \S+ Packages$", policy, re.M), policy
    sim = run(trixie.command("apt-get", "install", "--simulate", "-q", "--no-install-recommends", *HOST_PACKAGES),
              env=trixie.env(), capture=True).stdout.decode()
    installs = set(re.findall(r"^Inst (\S+) ", sim, re.M))
    assert set(HOST_PACKAGES) <= installs, sorted(set(HOST_PACKAGES) - installs)
