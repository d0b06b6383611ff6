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


def _bls_esp(tmp_path, arch: str, gzip_kernel: bool = False):
    g = guest(arch)
    console = profile(arch).linux_console
    entries = {
        "debian-6.1.0-9.conf": "title Debian old\nversion 6.1.0-9\nlinux /vmlinuz\ninitrd /initrd.cpio\n"
                               f"options console={console} panic=-1 cb.marker=bls-old\n",
        "debian-6.12.117.conf": "title Debian new\nversion 6.12.117\nlinux /vmlinuz\ninitrd /initrd.cpio\n"
                                f"options console={console} panic=-1\noptions cb.marker=bls-new\n",
        "broken.conf": "title no kernel line\n",
    }
    files = {"vmlinuz": g.kernel, "initrd.cpio": g.initrd}
    if gzip_kernel:  # as Fedora/Arch ship arm64 kernels
        import gzip

        (tmp_path / "vmlinuz.gz").write_bytes(gzip.compress(g.kernel.read_bytes(), compresslevel=1))
        files["vmlinuz"] = tmp_path / "vmlinuz.gz"
    for name, text in entries.items():
        (tmp_path / name).write_text(text)
        files[f"loader/entries/{name}"] = tmp_path / name
    return esp.make_esp(tmp_path / "bls.img", files, size_mb=96)


@pytest.mark.parametrize(("arch", "gzip_kernel"), [("x86_64", False), ("aarch64", True)])
def test_bls_menu_countdown_boots_newest(tmp_path, machine, arch: str, gzip_kernel: bool) -> None:
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.menu=2",
                disks=[_bls_esp(tmp_path, arch, gzip_kernel)], extra=["-no-reboot"])
    m.expect("skipping BLS entry broken.conf", 120)
    m.expect("2 BLS entries; the newest version is the default", 30)
    m.expect("> 1. Debian new (6.12.117)", 10)
    m.expect("booting BLS entry debian-6.12.117", 30)
    if gzip_kernel:
        m.expect("gunzipped kernel", 120)
    m.expect(MARKER, 180)
    assert "cb.marker=bls-new" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


@pytest.mark.parametrize("key", [b"2", b"\x1b[B"], ids=["digit", "arrow-down"])
def test_bls_menu_key_chooses_older_entry(tmp_path, machine, key: bytes) -> None:
    m = machine("x86_64", efi=firmware_file("x86_64"), append="cloudboot.menu=30", disks=[_bls_esp(tmp_path, "x86_64")],
                extra=["-no-reboot"])
    m.expect("default in 30 s", 120)
    m.send(key)
    m.expect("countdown stopped", 30)
    m.send(b"\r")
    m.expect("booting BLS entry debian-6.1.0-9", 30)
    m.expect(MARKER, 180)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert "cb.marker=bls-old" in line and "bls-new" not in line
    assert m.wait(120) == 0


def _ext4_disk(tmp_path, arch: str, fstype: str = "ext4", zstd: bool = False):
    """A GPT disk whose partition 2 holds a Debian-style /boot (made by mkfs.ext4 -d / mkfs.btrfs --rootdir);
    with `zstd` the kernel file is zstd-compressed (as distros that compress vmlinuz ship it)."""
    import shutil
    import subprocess

    g = guest(arch)
    tree = tmp_path / "root"
    (tree / "boot").mkdir(parents=True)
    if zstd:
        subprocess.run(["zstd", "-q", "-19", "-o", str(tree / "boot/vmlinuz-6.12.117-cloud"), str(g.kernel)],
                       check=True)
    else:
        shutil.copyfile(g.kernel, tree / "boot/vmlinuz-6.12.117-cloud")
    shutil.copyfile(g.initrd, tree / "boot/initrd.img-6.12.117-cloud")
    (tree / "boot/vmlinuz-6.1.0-9-cloud").write_bytes(b"an older kernel that must not be chosen")
    fs = tmp_path / "root.ext4"
    size = max((g.kernel.stat().st_size + g.initrd.stat().st_size) * 2 + (16 << 20), 160 << 20)
    with open(fs, "wb") as f:
        f.truncate(size)
    if fstype == "btrfs":
        subprocess.run(["mkfs.btrfs", "-q", "-f", "-L", "debroot", "--rootdir", str(tree), str(fs)], check=True)
    else:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "debroot", "-U", "6b1c3c2e-6f1d-4c53-9a2a-2f0c1a6f7e01",
                        "-d", str(tree), str(fs)], check=True)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(size + (4 << 20))
    subprocess.run(["sgdisk", "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:0:0", "-t", "2:8300", str(disk)],
                   check=True, capture_output=True)
    start = int(re.search(r"First sector: (\d+)", subprocess.run(["sgdisk", "-i", "2", str(disk)],
                                                                   capture_output=True, text=True).stdout).group(1))
    with open(disk, "r+b") as f, open(fs, "rb") as src:
        f.seek(start * 512)
        shutil.copyfileobj(src, f)
    return disk


@pytest.mark.parametrize(("arch", "fstype"), [("x86_64", "ext4"), ("aarch64", "ext4"), ("riscv64", "ext4"),
                                            ("loongarch64", "ext4"), ("x86_64", "btrfs")])
def test_cascade_boots_newest_kernel_from_disk(tmp_path, machine, arch: str, fstype: str) -> None:
    zstd = fstype.endswith("-zstd")
    fstype = fstype.removesuffix("-zstd")
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.repl",
                disks=[_ext4_disk(tmp_path, arch, fstype, zstd)], extra=["-no-reboot"])
    repl = Repl(m)
    repl.wait_banner(120)
    cmdline = f"console={profile(arch).linux_console} panic=-1 cb.marker=ext4-{arch}"
    repl.exec(f"import uefi\nuefi.set_variable('CloudBootCmdline', b'{cmdline}')")
    m.send(b"import loader\nloader.run()\x04")
    m.expect("found /boot/vmlinuz-6.12.117-cloud", 120)
    m.expect(f"({fstype} 'debroot')", 10)
    m.expect("choosing 6.12.117-cloud", 60)
    if zstd:
        m.expect("unpacked zstd kernel", 240)
    m.expect(MARKER, 240)
    assert f"cb.marker=ext4-{arch}" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


def test_cascade_boots_bls_entry_from_xfs_boot_partition(tmp_path, machine) -> None:
    """AlmaLinux/RHEL layout: a separate XFS /boot whose BLS entries name the kernel, options included."""
    import subprocess

    from tests.diskimages import _protofile

    arch = "x86_64"
    g = guest(arch)
    boot = tmp_path / "boot"
    (boot / "loader/entries").mkdir(parents=True)
    (boot / "vmlinuz-5.14.0-503.el9.x86_64").symlink_to(g.kernel)
    (boot / "initramfs-5.14.0-503.el9.x86_64.img").symlink_to(g.initrd)
    (boot / "loader/entries/abc-5.14.0-503.el9.x86_64.conf").write_text(
        "title AlmaLinux (5.14.0-503.el9.x86_64) 9.5\nversion 5.14.0-503.el9.x86_64\n"
        "linux /vmlinuz-5.14.0-503.el9.x86_64\ninitrd /initramfs-5.14.0-503.el9.x86_64.img\n"
        "options console=ttyS0 panic=-1 cb.marker=alma-xfs\n")
    proto = _protofile(boot, tmp_path / "proto")
    text = proto.read_text()
    for link in (boot / "vmlinuz-5.14.0-503.el9.x86_64", boot / "initramfs-5.14.0-503.el9.x86_64.img"):
        text = text.replace(f"{link.name} l--777 0 0 {link.readlink()}", f"{link.name} ---644 0 0 {link.resolve()}")
    proto.write_text(text)
    disk = tmp_path / "xfs.img"
    with open(disk, "wb") as f:
        f.truncate(320 << 20)
    subprocess.run(["mkfs.xfs", "-q", "-f", "-L", "boot", "-p", str(proto), str(disk)], check=True)
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.wait=0", disks=[disk], extra=["-no-reboot"])
    m.expect("found /vmlinuz-5.14.0-503.el9.x86_64 (BLS entry /loader/entries/abc-5.14.0-503.el9.x86_64.conf)", 120)
    m.expect("(xfs 'boot')", 10)
    m.expect(MARKER, 240)
    assert "cb.marker=alma-xfs" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0
