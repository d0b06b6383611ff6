"""Path A end to end in QEMU: Debian's kernel boots our initramfs (CPython PID 1), init loads the virtio
modules, finds the target disk by label through the portable disk core, reads the Debian kernel and a
busybox test initrd from its ext4 partition and kexecs into them; the target prints a marker and its
/proc/cmdline. And the failures: a bad cloudboot.* value, and a disk that is not there, each end in the
FATAL line and a working Python rescue prompt (PID 1 never exits, the kernel never panics)."""

from __future__ import annotations

import re
import secrets

import pytest

from cloudboot.harness import trial
from cloudboot.harness.machine import Machine
from tests.e2e.initvm import fatal_then_rescue, target_cmdline

pytestmark = pytest.mark.e2e

#: amd64 kexecs with kexec_file_load; arm64 (CONFIG_KEXEC_FILE unset in Debian) with kexec_load and our loader.
#: Not riscv64: sid's 7.2 kernel has CONFIG_KEXEC_FILE unset too, and there is no riscv64 kexec_load loader yet.
KEXEC_ARCHES = ["amd64", "arm64"]
BOOT_TIMEOUT = 240  # TCG, 2 cores; a run takes ~20 s on x86_64


@pytest.fixture(scope="module", params=KEXEC_ARCHES)
def images(request: pytest.FixtureRequest):
    arch = request.param
    disk, release = trial.target_disk(arch)
    return arch, trial.boot_kernel(arch), trial.initramfs(arch), disk, release


def _boot(images, append: str, efi: bool = False) -> Machine:
    arch, kernel, initrd, disk, _ = images
    return trial.machine(arch, kernel, initrd, f"panic=-1 {append}", [disk], efi=efi).start()


#: How each arch is booted besides QEMU's direct kernel boot: arm64 also through EDK2 (EFI stub + ACPI, the
#: FDT the stub made), since its kexec_load path passes on the running kernel's device tree.
EFI_TOO = {"arm64"}


@pytest.mark.parametrize("firmware", ["direct", "efi"])
def test_disk_target_kexec(images, firmware: str) -> None:
    token = secrets.token_hex(4)
    arch, _, _, _, release = images
    if firmware == "efi" and arch not in EFI_TOO:
        pytest.skip(f"{arch}: the EFI boot adds nothing to the kexec path here")
    console = trial.console(arch)
    q = _boot(images, f'cloudboot.disk=LABEL=CBTARGET cloudboot.cmdline="console={console} panic=-1 cbtest={token} '
                      'quiet"', efi=firmware == "efi")
    try:
        q.expect_line(r"cloud-boot: .* init: Python 3\.\d+", BOOT_TIMEOUT)
        q.expect_line(r"modules: loaded .*virtio_blk", 60)
        q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", 120)
        q.expect_line(r"kexec: loaded with kexec_(file_)?load", 120)
        q.expect_line(r"kexec boot$", 120)
        line = target_cmdline(q, 120)
        assert f"cbtest={token}" in line and "quiet" in line, line
        assert "cloudboot.disk" not in line  # the target gets cloudboot.cmdline, not ours
        assert q.wait(60) == 0  # the target's poweroff ends QEMU
        assert "Kernel panic" not in q.text
    finally:
        q.kill()


def test_bad_value_is_fatal_with_rescue_prompt(images) -> None:
    q = _boot(images, "cloudboot.disk=LABEL=CBTARGET cloudboot.exit=bogus")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "FATAL: bad kernel command line value cloudboot.exit='bogus': want one "
                                           "of 'kexec', 'reboot'")
    finally:
        q.kill()


def test_missing_disk_lists_what_was_seen(images) -> None:
    q = _boot(images, "cloudboot.disk=LABEL=NOSUCHDISK cloudboot.disk.wait=1s")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "no device matches cloudboot.disk=LABEL=NOSUCHDISK after 1s",
                          "/dev/vda partition 1: ext4{label='CBTARGET'")
    finally:
        q.kill()


@pytest.mark.parametrize("arch", KEXEC_ARCHES)
@pytest.mark.parametrize("fstype", ["xfs", "btrfs"])
def test_xfs_and_btrfs_disk_targets(fstype: str, arch: str) -> None:
    """The same target on XFS (mkfs.xfs -p) and btrfs (mkfs.btrfs --rootdir), read in userland by diskfs."""
    disk, release = trial.target_disk(arch, fstype)
    console = trial.console(arch)
    token = secrets.token_hex(4)
    q = trial.machine(arch, trial.boot_kernel(arch), trial.initramfs(arch),
                      f'panic=-1 cloudboot.disk=PARTLABEL=cbtarget cloudboot.disk.fs={fstype} '
                      f'cloudboot.cmdline="console={console} panic=-1 cbtest={token}"', [disk]).start()
    try:
        q.expect_line(rf"disk: .* {fstype} label='CBTARGET'", BOOT_TIMEOUT)
        q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", 120)
        assert f"cbtest={token}" in target_cmdline(q)
    finally:
        q.kill()
