"""The firmware's loader booting a real Debian kernel: \\EFI\\Linux\\<target>.efi on a FAT ESP, the initrd
through the EFI stub's initrd= (the child's DeviceHandle is the volume) or through our LoadFile2 provider,
the command line from \\cmdline or the CloudBootCmdline variable."""

from __future__ import annotations

import re

import pytest

from cloudboot.harness import esp
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.profiles import profile
from cloudboot.harness.repl import Repl
from tests.e2e.conftest import firmware_file

pytestmark = pytest.mark.e2e
LINUX_ARCHES = ["x86_64", "aarch64", "riscv64", "loongarch64"]


def _esp(tmp_path, arch: str, cmdline: str | None):
    g = guest(arch)
    files = {"EFI/Linux/cloud-boot.efi": g.kernel, "EFI/Linux/initrd.cpio": g.initrd}
    if cmdline is not None:
        (tmp_path / "cmdline").write_text(cmdline + "\n")
        files["cmdline"] = tmp_path / "cmdline"
    return esp.make_esp(tmp_path / "esp.img", files, size_mb=96)


@pytest.mark.parametrize("arch", LINUX_ARCHES)
def test_cascade_boots_esp_target_with_cmdline_file(tmp_path, machine, arch: str) -> None:
    console = profile(arch).linux_console
    cmdline = f"console={console} panic=-1 initrd=\\EFI\\Linux\\initrd.cpio cb.marker=esp-{arch}"
    m = machine(arch, efi=firmware_file(arch), append="", disks=[_esp(tmp_path, arch, cmdline)],
                extra=["-no-reboot"])
    m.expect("press any key for the REPL", 120)
    m.expect(r"booting \EFI\Linux\cloud-boot.efi", 60)
    m.expect("command line from \\cmdline file", 10)
    m.expect(MARKER, 180)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert f"cb.marker=esp-{arch}" in line
    assert m.wait(120) == 0


def test_variable_cmdline_wins_and_loadfile2_initrd(tmp_path, machine) -> None:
    """CloudBootCmdline beats \\cmdline; the initrd comes from our LoadFile2 provider (no initrd= at all)."""
    arch = "x86_64"
    g = guest(arch)
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.repl",
                disks=[_esp(tmp_path, arch, "console=ttyS0 cb.marker=from-file")], extra=["-no-reboot"])
    repl = Repl(m)
    repl.wait_banner(120)
    repl.exec("import uefi\nuefi.set_variable('CloudBootCmdline', b'console=ttyS0 panic=-1 cb.marker=from-var\\n')")
    m.send(
        "from uefi import fs, handoff\n"
        "vol = [v for v in fs.volumes() if v.exists('\\\\EFI\\\\Linux\\\\cloud-boot.efi')][0]\n"
        "k = vol.read_into_pages('\\\\EFI\\\\Linux\\\\cloud-boot.efi')\n"
        "i = vol.read_into_pages('\\\\EFI\\\\Linux\\\\initrd.cpio')\n"
        "handoff.start_image(k[0], k[1], uefi.cmdline_variable(), i, vol.handle)\n\x04")
    m.expect(MARKER, 180)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert "cb.marker=from-var" in line and "from-file" not in line
    assert g.initrd.stat().st_size > 0
    assert m.wait(120) == 0
