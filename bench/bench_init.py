"""Path A's cost: kernel start -> the kexec call, from init's own timestamps (CLOCK_BOOTTIME, the kernel's clock),
split into its phases (mounts, modules, network, plan, download, disk, kexec-load), in disk mode and in plan
mode (DHCP, registry on 127.0.0.1 via QEMU user networking). Reference, same run: QEMU start -> the target's
marker when QEMU boots the target kernel + initrd directly, against QEMU start -> marker through our init."""

from __future__ import annotations

import re
import secrets
import tempfile
from pathlib import Path

from bench.report import report
from cloudboot.cli import main as cli
from cloudboot.initramfs import trial

ARCH = "amd64"
PHASE = re.compile(r"cloud-boot: \[\s*([\d.]+)\] phase (\S+) ([\d.]+)s")
KEXEC = re.compile(r"cloud-boot: \[\s*([\d.]+)\] kexec boot$")


def _run(append: str, disks: list[Path] | None = None, nic: bool = False) -> tuple[dict[str, float], float, float]:
    """(phase -> seconds, kernel start -> kexec call, QEMU start -> target marker)."""
    q = trial.Qemu(ARCH, trial.boot_kernel(ARCH), trial.initramfs(ARCH), f"panic=-1 {append}", disks, nic=nic).start()
    try:
        m = q.expect(trial.MARKER, 600)
        phases = {}
        kexec_at = 0.0
        for line in q.transcript().splitlines():
            if p := PHASE.search(line):
                phases[p.group(2)] = float(p.group(3))
            if k := KEXEC.search(line):
                kexec_at = float(k.group(1))
        return phases, kexec_at, m.at
    finally:
        q.kill()


def _direct() -> float:
    """QEMU start -> marker, QEMU booting the target kernel and initrd itself."""
    q = trial.Qemu(ARCH, trial.boot_kernel(ARCH), trial.target_initrd(ARCH), "panic=-1").start()
    try:
        return q.expect(trial.MARKER, 600).at
    finally:
        q.kill()


def main() -> None:
    from tests.ociregistry import Registry, ensure_registry_packages

    disk, _ = trial.target_disk(ARCH)
    direct = _direct()
    phases, kexec_at, marker = _run("cloudboot.disk=LABEL=CBTARGET cloudboot.cmdline=\"console=ttyS0 panic=-1\"",
                                    [disk])
    print(f"  disk mode: kernel start -> kexec call {kexec_at:.2f}s; phases: "
          + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()), flush=True)
    report(f"init disk mode QEMU->target ({ARCH})", marker, "direct -kernel", direct)

    ensure_registry_packages()
    reg = Registry(Path(tempfile.mkdtemp(prefix="cloudboot-bench-init-")))
    try:
        port = reg.host.split(":")[1]
        plan = Path(tempfile.mkdtemp()) / "plan.hcl"
        plan.write_text(f'target "t" {{\n  index = "10.0.2.2:{port}/boot/k:{secrets.token_hex(3)}"\n'
                        '  cmdline = "console=ttyS0 panic=-1"\n}\n')
        ref = re.search(r'index = "10\.0\.2\.2:\d+/(.*)"', plan.read_text()).group(1)
        cli(["push", "artifact", f"{reg.host}/{ref}", "--platform", f"linux/{ARCH}", "--kernel",
             str(trial.boot_kernel(ARCH)), "--initrd", str(trial.target_initrd(ARCH))])
        cli(["push", "plan", f"{reg.host}/plans/bench:v1", "--file", str(plan)])
        phases, kexec_at, marker = _run(f"cloudboot.plan=10.0.2.2:{port}/plans/bench:v1 cloudboot.insecure=1 "
                                        "cloudboot.lldp=0", nic=True)
        print(f"  plan mode: kernel start -> kexec call {kexec_at:.2f}s; phases: "
              + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()), flush=True)
        report(f"init plan mode QEMU->target ({ARCH})", marker, "direct -kernel", direct)
    finally:
        reg.stop()
