"""The cloud medium's cost: QEMU start -> the demo target's marker, booting the medium `make iso` builds (EDK2 ->
our firmware -> its UKI -> Debian's kernel + the init: DHCP, the plan from the boot file name, the download ->
kexec -> the target), next to QEMU booting the same kernel and demo initrd directly with -kernel/-initrd, per
arch, as a ratio; and the sizes of the UKIs and the ISO."""

from __future__ import annotations

import arches
from bench.report import report
from cloudboot.harness import trial
from cloudboot.harness.machine import Machine
from cloudboot.initramfs import debian
from cloudboot.medium import demo
from cloudboot.medium.build import build
from cloudboot.medium.build import report as sizes
from cloudboot.medium.options import Options, check
from cloudboot.paths import build_dir

ARCHES = arches.NAMES


def _direct(arch: arches.Arch) -> float:
    """QEMU start -> marker, QEMU booting the demo target's kernel and initrd itself (loongarch64 through EDK2:
    Debian's kernel oopses probing i8042 on QEMU's direct boot, which has no ACPI tables)."""
    kernel, _ = debian.kernel_image(arch.debian)
    cmdline = f"console={arch.linux_console} quiet demo.target=direct demo.then=poweroff"
    with Machine(arch.name, extra_kernel=(kernel, demo.demo_initrd(arch), cmdline),
                 uefi=trial.needs_efi(arch.name)) as vm:
        return vm.expect_line(demo.MARKER, 600).at


def main() -> None:
    out = build_dir() / "bench" / "boot.iso"
    out.parent.mkdir(parents=True, exist_ok=True)
    res = build(check(Options(output=out)), say=lambda m: None)
    print(sizes(res), flush=True)
    with demo.registry(say=lambda m: None) as pub:
        for name in ARCHES:
            arch = arches.get(name)
            direct = _direct(arch)
            with demo.machine(out, arch, pub.bootfile, echo=False) as vm:
                seen = demo.check(vm, 900)
            marks = ", ".join(f"{k} {v:.1f}s" for k, v in seen.marks.items())
            print(f"  {name} through the medium: {marks}", flush=True)
            report(f"medium QEMU->demo target ({name})", seen.marks["target up"], "direct -kernel/-initrd",
                   direct)
