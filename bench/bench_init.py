"""Path A's cost: kernel start -> the kexec call, from init's own timestamps (CLOCK_BOOTTIME, the kernel's clock),
split into its phases (mounts, modules, network, plan, download, disk, kexec-load), in disk mode and in plan
mode (DHCP, registry on 127.0.0.1 via QEMU user networking). Reference, same run: QEMU start -> the target's
marker when QEMU boots the target kernel + initrd directly, against QEMU start -> the init's first line and ->
marker through our init (as the cloud medium ships it by default: no cryptography or argon2), on Debian's kernel
and on our own cloud kernel (`cloud-boot kernel`), with both UKIs' sizes, per arch (loong64 through EDK2 both
ways: QEMU's direct boot has no ACPI tables for it). Each figure is the median of RUNS boots, the direct ones
interleaved with ours."""

from __future__ import annotations

import re
import secrets
import statistics
import tempfile
from pathlib import Path

import arches
from bench.report import report
from cloudboot.cli import main as cli
from cloudboot.harness import trial

ARCHES = ("amd64", "arm64", "riscv64", "loong64")
FIRST_LINE = r"cloud-boot: .* init: Python"
PHASE = re.compile(r"cloud-boot: \[\s*([\d.]+)\] phase (\S+) ([\d.]+)s")
KEXEC = re.compile(r"cloud-boot: \[\s*([\d.]+)\] kexec boot$")


KERNELS = ("debian", "our")
RUNS = 3


def _run(arch: str, append: str, disks: list[Path] | None = None, nic: bool = False,
         kernel: str = "debian") -> tuple[dict[str, float], float, float, float]:
    """(phase -> seconds, kernel start -> kexec call, QEMU start -> the init's first line, -> target marker)."""
    init = trial.initramfs(arch, kernel=kernel, cryptography=False)  # the medium's default (without --luks)
    q = trial.machine(arch, trial.boot_kernel(arch, kernel), init, f"panic=-1 {append}", disks, nic=nic).start()
    try:
        first = q.expect_line(FIRST_LINE, 600).at
        m = q.expect_line(trial.MARKER, 600)
        phases = {}
        kexec_at = 0.0
        for line in q.lines():
            if p := PHASE.search(line):
                phases[p.group(2)] = float(p.group(3))
            if k := KEXEC.search(line):
                kexec_at = float(k.group(1))
        return phases, kexec_at, first, m.at
    finally:
        q.kill()


def _direct(arch: str) -> float:
    """QEMU start -> marker, QEMU booting the target kernel and initrd itself."""
    q = trial.machine(arch, trial.boot_kernel(arch), trial.target_initrd(arch), "panic=-1").start()
    try:
        return q.expect_line(trial.MARKER, 600).at
    finally:
        q.kill()


def main() -> None:
    from cloudboot.registry.local import serving

    with serving(Path(tempfile.mkdtemp(prefix="cloudboot-bench-init-"))) as reg:
        for arch in ARCHES:
            _bench(arch, reg)


def _bench(arch: str, reg) -> None:
    # the target's command line, through the init as in the direct boot (trial.machine's)
    cmdline = f"console={arches.get(arch).linux_console} {trial.GUEST_CMDLINE} panic=-1"
    disk, _ = trial.target_disk(arch)
    kernels = [k for k in KERNELS if k == "debian" or not trial.own_kernel_missing(arch)]
    port = reg.host.split(":")[1]
    ref = f"boot/k:{arch}-{secrets.token_hex(3)}"
    plan = Path(tempfile.mkdtemp()) / "plan.hcl"
    plan.write_text(f'target "t" {{\n  index = "10.0.2.2:{port}/{ref}"\n  cmdline = "{cmdline}"\n}}\n')
    cli(["push", "artifact", f"{reg.host}/{ref}", "--platform", f"linux/{arch}", "--kernel",
         str(trial.boot_kernel(arch)), "--initrd", str(trial.target_initrd(arch))])
    cli(["push", "plan", f"{reg.host}/plans/bench-{arch}:v1", str(plan)])
    modes = {"disk": (f'cloudboot.disk=LABEL=CBTARGET cloudboot.cmdline="{cmdline}"', [disk], False),
             "plan": (f"cloudboot.plan=10.0.2.2:{port}/plans/bench-{arch}:v1 cloudboot.insecure=1 "
                      "cloudboot.lldp=0", None, True)}
    # RUNS rounds, each a direct boot and every (mode, kernel) once: a slower spell of the host touches both
    # sides of a ratio; the medians are reported
    direct: list[float] = []
    runs: dict[tuple[str, str], list] = {(m, k): [] for m in modes for k in kernels}
    for _ in range(RUNS):
        direct.append(_direct(arch))
        for (mode, kernel), out in runs.items():
            append, disks, nic = modes[mode]
            out.append(_run(arch, append, disks, nic=nic, kernel=kernel))
    reference = statistics.median(direct)
    for (mode, kernel), out in runs.items():
        phases, kexec_at, first, marker = sorted(out, key=lambda r: r[3])[len(out) // 2]  # the median run
        print(f"  {arch} {mode} mode, {kernel} kernel: QEMU start -> init's first line {first:.2f}s; kernel "
              f"start -> kexec call {kexec_at:.2f}s; phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items())
              + f" (QEMU start -> target, {len(out)} runs: " + ", ".join(f"{r[3]:.2f}" for r in out) + ")", flush=True)
        report(f"init {mode} mode QEMU->target ({arch}, {kernel} kernel)", marker, "direct -kernel", reference)
    if kernels != list(KERNELS):
        print(f"  {arch}: our kernel is not built (make kernel ARCH={arches.get(arch).name}): Debian's only")
        return
    sizes = {k: _uki_size(arch, k) for k in KERNELS}
    report(f"UKI size ({arch}, ours vs Debian's kernel)", sizes["our"] / 2**20, "Debian kernel",
           sizes["debian"] / 2**20, "MiB")


def _uki_size(arch: str, kernel: str) -> int:
    """Bytes of the cloud medium's UKI (firmware stub + kernel + the init's initramfs) for `kernel`."""
    from cloudboot.medium.build import build
    from cloudboot.medium.options import Options, check

    with tempfile.TemporaryDirectory() as d:
        res = build(check(Options(arch=[arch], kernel=kernel, output=Path(d) / "boot.iso")), say=lambda _: None)
        return res.arches[0].uki_size
