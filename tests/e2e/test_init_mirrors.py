"""Registry failover in the init, end to end in QEMU (x86_64): the plan names its kernel on mirror A and lists
mirror B (`mirrors = [...]`); A (a real registry behind a proxy, seen by the guest as 10.0.2.2) dies halfway
through the kernel's download. The boot completes from B: the download resumes there with Range, the kernel's
digest is the one pushed, the console log names the switch, and the target kernel runs."""

from __future__ import annotations

import hashlib
import re
import secrets

import pytest

from cloudboot.cli import main as cli
from cloudboot.harness import trial
from cloudboot.registry.local import serving
from tests.e2e.initvm import target_cmdline
from tests.ociregistry import CuttingProxy

pytestmark = pytest.mark.e2e

ARCH = "amd64"
GUEST_HOST = "10.0.2.2"
BOOT_TIMEOUT = 240


def test_mirror_dies_mid_kernel_download(registry, tmp_path) -> None:
    kernel = trial.boot_kernel(ARCH)
    digest = "sha256:" + hashlib.sha256(kernel.read_bytes()).hexdigest()
    token = secrets.token_hex(4)
    with serving(tmp_path / "mirror-a") as a:
        proxy = CuttingProxy(a.host, cut_after=kernel.stat().st_size // 2, on_cut=a.kill)
        try:
            mirror_a, mirror_b = f"{GUEST_HOST}:{proxy.port}", f"{GUEST_HOST}:{registry.port}"
            plan = tmp_path / "plan.hcl"
            plan.write_text(f'default_target = "debian"\nmirrors = ["{mirror_b}"]\n'
                            f'target "debian" {{\n  index = "{mirror_a}/boot/mirrored:1"\n'
                            f'  cmdline = "console=ttyS0 panic=-1 cbtest={token}"\n}}\n')
            for host in (a.host, registry.host):  # the same artifact (same digests) on both
                assert cli(["push", "artifact", f"{host}/boot/mirrored:1", "--platform", f"linux/{ARCH}", "--kernel",
                            str(kernel), "--initrd", str(trial.target_initrd(ARCH))]) == 0
                assert cli(["push", "plan", f"{host}/plans/mirrored:v1", str(plan)]) == 0
            q = trial.machine(ARCH, kernel, trial.initramfs(ARCH),
                              f"panic=-1 cloudboot.plan={mirror_a}/plans/mirrored:v1 cloudboot.insecure=1 "
                              "cloudboot.lldp=0", nic=True).start()
            try:
                q.expect_line(rf"plan: registry mirrors {re.escape(mirror_b)}", BOOT_TIMEOUT)
                q.expect_line(r"kernel: pulling \d+ bytes", 120)
                q.expect_line(rf"registry: {re.escape(mirror_a)} failed \(.*\), trying {re.escape(mirror_b)}$", 120)
                q.expect_line(rf"resuming {digest} at byte \d+ from {re.escape(mirror_b)}$", 120)
                q.expect_line(r"kexec boot$", 240)
                line = target_cmdline(q, 120)
                assert f"cbtest={token}" in line, line
                assert q.wait(60) == 0
            finally:
                q.kill()
            assert proxy.cut.is_set()
        finally:
            proxy.stop()
