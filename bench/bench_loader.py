"""QEMU start -> the Linux test initrd's marker: our firmware loading \\EFI\\Linux\\cloud-boot.efi from an
ESP (cascade, LoadImage, LoadFile2 initrd) against EDK2 loading the same kernel itself (-kernel/-initrd),
same machine, same kernel and initrd, same run."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness import esp
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from cloudboot.harness.profiles import profile

RUNS = 3


def _marker_seconds(arch: str, **kw) -> float:
    with Machine(arch, extra=["-no-reboot"], **kw) as m:
        m.expect(MARKER, 300, mark="marker")
        return m.marks["marker"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-loader-"))
    for arch in ("x86_64", "aarch64"):
        g = guest(arch)
        cmdline = f"console={profile(arch).linux_console} panic=-1"
        (work / "cmdline").write_text(cmdline + " initrd=\\EFI\\Linux\\initrd.cpio\n")
        image = esp.make_esp(work / f"esp-{arch}.img", {"EFI/Linux/cloud-boot.efi": g.kernel,
                                                         "EFI/Linux/initrd.cpio": g.initrd,
                                                         "cmdline": work / "cmdline"}, size_mb=96)
        ours = firmware_dir() / profile(arch).efi_name
        t_ours = statistics.median(_marker_seconds(arch, efi=ours, append="cloudboot.wait=0", disks=[image])
                                   for _ in range(RUNS))
        t_ref = statistics.median(_marker_seconds(arch, extra_kernel=(g.kernel, g.initrd, cmdline))
                                  for _ in range(RUNS))
        report(f"{arch}: QEMU start -> Linux /init", t_ours, "EDK2 -kernel/-initrd", t_ref)
