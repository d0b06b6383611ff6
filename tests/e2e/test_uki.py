"""A UKI whose stub is our firmware: `cloud-boot uki` output booted under EDK2; the loader's UKI-stub step
starts .linux with .cmdline, the initrd served from .initrd through LoadFile2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import arches
from cloudboot.harness.guests import MARKER, guest
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "riscv64", "loongarch64"])
def test_uki_with_our_stub_boots_linux(tmp_path, machine, arch: str) -> None:
    g = guest(arch)
    uki = tmp_path / "uki.efi"
    cmdline = f"console={arches.get(arch).linux_console} panic=-1 cb.marker=uki-{arch}"
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "uki", "--stub", str(firmware_file(arch)),
                           "--linux", str(g.kernel), "--initrd", str(g.initrd), "--cmdline", cmdline,
                           "--uname", g.version, "-o", str(uki)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = machine(arch, efi=uki, append="", extra=["-no-reboot"])
    m.expect("UKI stub mode: .linux", 120)
    m.expect("command line from .cmdline section", 10)
    m.expect(MARKER, 180)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert f"cb.marker=uki-{arch}" in line
    assert m.wait(120) == 0
