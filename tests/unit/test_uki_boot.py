"""A UKI built by `cloud-boot uki` on Debian's systemd-stub (the reference stub) boots Debian's kernel with
the initrd and command line from its sections, under EDK2 on x86_64. (UKIs on our own firmware as the stub
boot on all four arches in tests/e2e/test_uki.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from tests.unit.test_uki import _debian_stub

pytestmark = pytest.mark.e2e


def test_uki_on_systemd_stub_boots_linux(tmp_path: Path) -> None:
    stub = _debian_stub()
    if not stub.name.startswith("linuxx64"):
        pytest.skip(f"{stub} is not the x86_64 stub")
    g = guest("x86_64")
    uki = tmp_path / "uki.efi"
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "uki", "--stub", str(stub),
                           "--linux", str(g.kernel), "--initrd", str(g.initrd),
                           "--cmdline", "console=ttyS0 panic=-1 cb.marker=systemd-stub",
                           "--uname", g.version, "-o", str(uki)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with Machine("x86_64", efi=uki, append="", extra=["-no-reboot"]) as m:
        m.expect(MARKER, 180)
        line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
        assert "cb.marker=systemd-stub" in line
