"""Path A end to end in QEMU: Debian's kernel boots our initramfs (CPython PID 1), init loads the virtio modules, finds
the target disk by label through the portable disk core, reads the Debian kernel and a busybox test initrd from its
ext4 partition (XFS, btrfs; ext4 inside LUKS2 whose passphrase comes from the metadata URL) and kexecs into them;
the target prints a marker and its /proc/cmdline. And the failures: a bad cloudboot.* value, and a disk that is not
there, each end in the FATAL line and a working Python rescue prompt (PID 1 never exits, the kernel never panics)."""

from __future__ import annotations

import re
import secrets

import pytest

from cloudboot.harness import trial
from cloudboot.harness.machine import Machine
from tests.e2e.initvm import Metadata, fatal_then_rescue, target_cmdline
from tests.e2e.netbootvm import GUEST_HOST

pytestmark = pytest.mark.e2e

#: Every arch kexecs with kexec_load and our loaders: arm64 and loong64 kernels have no kexec_file_load (Debian's:
#: CONFIG_KEXEC_FILE unset; our LoongArch 6.12: none there), and on amd64 and riscv64 ours go first (their
#: kexec_file_load's purgatory hashes every segment twice). The fatal paths run on amd64 and arm64: the same
#: Python everywhere.
KEXEC_ARCHES = ["amd64", "arm64"]
BOOT_TIMEOUT = 240  # TCG, 2 cores; a run takes ~20 s on x86_64
#: Reading the 37 MB arm64 kernel off btrfs verifies its CRC-32C in pure Python (no crc32c module in the
#: initramfs): 170 s under aarch64 TCG at a load of 11 on the 2-core test machine.
READ_TIMEOUT = 600


#: (arch, the kernel the init runs on): Debian's, and our own cloud kernel (cloud-boot kernel, no modules in the
#: initramfs; built once and cached), on every arch.
KERNELS = [(a, k) for k in ("debian", "our") for a in ("amd64", "arm64", "riscv64", "loong64")]


@pytest.fixture(scope="module", params=KERNELS, ids=[f"{a}-{k}" for a, k in KERNELS])
def images(request: pytest.FixtureRequest):
    arch, kernel = request.param
    if kernel == "our" and (why := trial.own_kernel_missing(arch)):
        pytest.skip(why)
    disk, release = trial.target_disk(arch)
    return arch, trial.boot_kernel(arch, kernel), trial.initramfs(arch, kernel=kernel), disk, release, kernel


def _boot(images, append: str, efi: bool = False) -> Machine:
    arch, kernel, initrd, disk, *_ = images
    return trial.machine(arch, kernel, initrd, f"panic=-1 {append}", [disk], efi=efi or None).start()


#: How each arch is booted besides QEMU's direct kernel boot: arm64 also through EDK2 (EFI stub + ACPI, the
#: FDT the stub made), since its kexec_load path passes on the running kernel's device tree, and amd64, whose
#: loader hands the EFI runtime state on (the target must find EFI's variable services working).
EFI_TOO = {"arm64", "amd64"}  # and loong64 through EDK2 only (trial.needs_efi)


@pytest.mark.parametrize("firmware", ["direct", "efi"])
def test_disk_target_kexec(images, firmware: str) -> None:
    token = secrets.token_hex(4)
    arch, _, _, _, release, kernel = images
    if firmware == "efi" and arch not in EFI_TOO and not trial.needs_efi(arch):
        pytest.skip(f"{arch}: the EFI boot adds nothing to the kexec path here")
    if firmware == "direct" and trial.needs_efi(arch):
        pytest.skip(f"{arch}: booted through EDK2 only")
    console = trial.console(arch)
    q = _boot(images, f'cloudboot.disk=LABEL=CBTARGET cloudboot.cmdline="console={console} panic=-1 cbtest={token} '
                      'quiet"', efi=firmware == "efi")
    try:
        q.expect_line(r"cloud-boot: .* init: Python 3\.\d+", BOOT_TIMEOUT)
        # our kernel has every driver built in: its initramfs carries no modules
        q.expect_line(r"modules: loaded .*virtio_blk" if kernel == "debian" else r"modules: loaded none", 60)
        q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", READ_TIMEOUT)
        q.expect_line(r"kexec: loaded with kexec_(file_)?load", 120)
        q.expect_line(r"kexec boot$", 120)
        line = target_cmdline(q, 120)
        assert f"cbtest={token}" in line and "quiet" in line, line
        assert "cloudboot.disk" not in line  # the target gets cloudboot.cmdline, not ours
        efi = q.expect_line(r"target efi: ", 30).text
        if firmware == "direct":
            assert efi.endswith("none"), efi
        elif arch == "amd64":  # kexec_x86_64 passed the runtime map and SETUP_EFI on
            assert efi.endswith("runtime"), efi
        assert q.wait(60) == 0  # the target's poweroff ends QEMU
        assert "Kernel panic" not in q.text
    finally:
        q.kill()


def test_disk_variant_kernel_kexecs_the_disk_target() -> None:
    """Our `disk` kernel (no networking built in at all) runs the init's disk mode to the target (amd64; runs when
    that kernel is cached: `make kernel VARIANT=disk`)."""
    arch = "amd64"
    if why := trial.own_kernel_missing(arch, "disk"):
        pytest.skip(why)
    disk, _ = trial.target_disk(arch)
    token = secrets.token_hex(4)
    q = trial.machine(arch, trial.own_kernel(arch, "disk").image, trial.initramfs(arch, kernel="our"),
                      f'panic=-1 cloudboot.disk=LABEL=CBTARGET cloudboot.cmdline="console={trial.console(arch)} '
                      f'panic=-1 cbtest={token}"', [disk]).start()
    try:
        q.expect_line(r"modules: loaded none", BOOT_TIMEOUT)
        q.expect_line(r"kexec: loaded with kexec_load", READ_TIMEOUT)
        assert f"cbtest={token}" in target_cmdline(q, 120)
        assert q.wait(60) == 0
    finally:
        q.kill()


def test_bad_value_is_fatal_with_rescue_prompt(images) -> None:
    q = _boot(images, "cloudboot.disk=LABEL=CBTARGET cloudboot.exit=bogus")
    try:
        fatal_then_rescue(q, BOOT_TIMEOUT, "FATAL: bad kernel command line value cloudboot.exit='bogus': want one "
                                           "of 'kexec', 'reboot'")
        # The interpreter reads the pycs the build made (another bug-fix release's, on the ports): the stdlib's
        # and ours carry its own magic number, so nothing is compiled at boot.
        q.send("import _frozen_importlib_external as e, json, cloudboot.init.main as m; print('PYC', [open(p, 'rb')"
               ".read(4) == e.MAGIC_NUMBER for p in (json.__cached__, m.__cached__)])\n")
        q.expect_line(r"^(>>> )?PYC \[True, True\]$", 60)
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
        q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", READ_TIMEOUT)
        assert f"cbtest={token}" in target_cmdline(q)
    finally:
        q.kill()


LUKS_PASSPHRASE = "cb-e2e-\u2713-passphrase"  # fixed: the encrypted disk is cached by its inputs


@pytest.mark.parametrize("arch", KEXEC_ARCHES)
def test_luks2_target_with_the_passphrase_from_the_metadata_url(arch: str) -> None:
    """ext4 inside LUKS2 (argon2id, made by cryptsetup): the passphrase is only in the metadata JSON, nested as
    the original's docs promised; it reaches the unlock (the original lost it) and is never printed."""
    disk, release = trial.target_disk(arch, "ext4", luks_passphrase=LUKS_PASSPHRASE)
    meta = Metadata()
    meta.document = {"cloudboot": {"disk": {"luks_passphrase": LUKS_PASSPHRASE}}}
    token = secrets.token_hex(4)
    try:
        q = trial.machine(arch, trial.boot_kernel(arch), trial.initramfs(arch),
                          f"panic=-1 cloudboot.disk=LABEL=CBTARGET cloudboot.lldp=0 "
                          f"cloudboot.metadata.url=http://{GUEST_HOST}:{meta.port}/meta.json "
                          f'cloudboot.cmdline="console={trial.console(arch)} panic=-1 cbtest={token}"', [disk],
                          nic=True).start()
        try:
            q.expect_line(r"metadata: cloudboot\.disk\.luks-passphrase=\*\*\* \(was unset\)", BOOT_TIMEOUT)
            q.expect_line(r"disk: .*luks2 label='CBTARGET' .* unlocked", 180)
            q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", 120)
            assert f"cbtest={token}" in target_cmdline(q)
            assert LUKS_PASSPHRASE not in q.text and "passphrase" not in q.text.replace("luks-passphrase=***", "")
        finally:
            q.kill()
    finally:
        meta.server.shutdown()


@pytest.mark.parametrize("arch", KEXEC_ARCHES)
def test_zfs_mirror_target_with_one_device_missing(arch: str) -> None:
    """cloudboot.disk=<pool>/<dataset> on a ZFS mirror (zfs-fuse) of which only one leg is attached: the pool is
    found by its label, /boot is read through its own child dataset, the kernel found by name."""
    disk, release = trial.target_disk(arch, "zfs")
    token = secrets.token_hex(4)
    q = trial.machine(arch, trial.boot_kernel(arch), trial.initramfs(arch),
                      f"panic=-1 cloudboot.disk={trial.ZFS_POOL}/ROOT/debian "
                      f'cloudboot.cmdline="console={trial.console(arch)} panic=-1 cbtest={token}"', [disk]).start()
    try:
        q.expect_line(rf"disk: ZFS pool {trial.ZFS_POOL} \(1 found, 1 missing, txg \d+\): dataset "
                      rf"{trial.ZFS_POOL}/ROOT/debian, mounted below: {trial.ZFS_POOL}/ROOT/debian/boot at /boot",
                      BOOT_TIMEOUT)
        q.expect_line(rf"disk: kernel /boot/vmlinuz-{re.escape(release)} ", 300)
        assert f"cbtest={token}" in target_cmdline(q)
    finally:
        q.kill()
