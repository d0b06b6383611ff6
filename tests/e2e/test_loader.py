"""The firmware's loader booting a real Debian kernel: \\EFI\\Linux\\<target>.efi on a FAT ESP, the initrd
through the EFI stub's initrd= (the child's DeviceHandle is the volume) or through our LoadFile2 provider,
the command line from \\cmdline or the CloudBootCmdline variable."""

from __future__ import annotations

import re

import pytest

import arches
from cloudboot.harness import esp
from cloudboot.harness.guests import MARKER, guest
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
    console = arches.get(arch).linux_console
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
    console = arches.get(arch).linux_console
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
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.menu.timeout=2",
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
    m = machine("x86_64", efi=firmware_file("x86_64"), append="cloudboot.menu.timeout=30",
                disks=[_bls_esp(tmp_path, "x86_64")], extra=["-no-reboot"])
    m.expect("default in 30 s", 120)
    m.send(key)
    m.expect("countdown stopped", 30)
    m.send(b"\r")
    m.expect("booting BLS entry debian-6.1.0-9", 30)
    m.expect(MARKER, 180)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert "cb.marker=bls-old" in line and "bls-new" not in line
    assert m.wait(120) == 0


def _boot_tree(tmp_path, arch: str, kernels: dict[str, bytes | None], zstd: bool = False):
    """A Debian-style /boot: vmlinuz-<v> + initrd.img-<v> per version (the guest kernel when the value is None,
    else those bytes as the kernel file); with `zstd` the guest kernel is zstd-compressed (as distros that
    compress vmlinuz ship it)."""
    import shutil
    import subprocess

    g = guest(arch)
    tree = tmp_path / f"root-{len(list(tmp_path.glob('root-*')))}"
    (tree / "boot").mkdir(parents=True)
    for version, data in kernels.items():
        path = tree / f"boot/vmlinuz-{version}"
        if data is not None:
            path.write_bytes(data)
        elif zstd:
            subprocess.run(["zstd", "-q", "-19", "-o", str(path), str(g.kernel)], check=True)
        else:
            shutil.copyfile(g.kernel, path)
        shutil.copyfile(g.initrd, tree / f"boot/initrd.img-{version}")
    return tree


def _mkfs(tmp_path, arch: str, tree, fstype: str = "ext4"):
    """An ext4 (label debroot, fixed UUID) or btrfs image of `tree`, made by the real mkfs."""
    import subprocess

    g = guest(arch)
    fs = tree.with_suffix("." + fstype)
    size = max((g.kernel.stat().st_size + g.initrd.stat().st_size) * 3 + (16 << 20), 160 << 20)
    with open(fs, "wb") as f:
        f.truncate(size)
    if fstype == "btrfs":
        subprocess.run(["mkfs.btrfs", "-q", "-f", "-L", "debroot", "--rootdir", str(tree), str(fs)], check=True)
    else:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "debroot", "-U", "6b1c3c2e-6f1d-4c53-9a2a-2f0c1a6f7e01",
                        "-d", str(tree), str(fs)], check=True)
    return fs


def _gpt_disk(tmp_path, filesystems: list):
    """A GPT disk: a 1 MiB BIOS-boot partition, then one partition per filesystem image, copied in."""
    import shutil
    import subprocess

    disk = tmp_path / "disk.img"
    sizes = [fs.stat().st_size for fs in filesystems]
    with open(disk, "wb") as f:
        f.truncate(sum(sizes) + (4 << 20))
    cmd = ["sgdisk", "-n", "1:2048:+1M", "-t", "1:ef02"]
    for n, size in enumerate(sizes, start=2):
        cmd += ["-n", f"{n}:0:+{size // 1024}K", "-t", f"{n}:8300"]
    subprocess.run([*cmd, str(disk)], check=True, capture_output=True)
    with open(disk, "r+b") as f:
        for n, fs in enumerate(filesystems, start=2):
            info = subprocess.run(["sgdisk", "-i", str(n), str(disk)], capture_output=True, text=True).stdout
            f.seek(int(re.search(r"First sector: (\d+)", info).group(1)) * 512)
            with open(fs, "rb") as src:
                shutil.copyfileobj(src, f)
    return disk


def _ext4_disk(tmp_path, arch: str, fstype: str = "ext4", zstd: bool = False):
    """A GPT disk whose partition 2 holds a Debian-style /boot, the newest kernel 6.12.117-cloud, an older file
    that is no kernel at all (made by mkfs.ext4 -d / mkfs.btrfs --rootdir)."""
    tree = _boot_tree(tmp_path, arch, {"6.12.117-cloud": None}, zstd)
    (tree / "boot/vmlinuz-6.1.0-9-cloud").write_bytes(b"an older kernel that must not be chosen")
    return _gpt_disk(tmp_path, [_mkfs(tmp_path, arch, tree, fstype)])


def _run_loader(machine, arch: str, disks: list, marker: str, append: str = "cloudboot.repl"):
    """Boot the firmware to its REPL, set CloudBootCmdline (serial console, panic=-1, cb.marker=<marker>) and
    start the loader's cascade; returns the machine for the test's expectations."""
    m = machine(arch, efi=firmware_file(arch), append=append, disks=disks, extra=["-no-reboot"])
    repl = Repl(m)
    repl.wait_banner(120)
    cmdline = f"console={arches.get(arch).linux_console} panic=-1 cb.marker={marker}"
    repl.exec(f"import uefi\nuefi.set_variable('CloudBootCmdline', b'{cmdline}')")
    m.send(b"import loader\nloader.run()\x04")
    return m


def test_cascade_falls_through_corrupt_filesystem_and_truncated_kernel(tmp_path, machine) -> None:
    """Partition 2's newest kernel (7.0.0) sits in a corrupt extent tree, partition 3's next one (6.13.0) is
    truncated: the loader says why each is unusable or failed and boots the next candidate (6.12.117-cloud)."""
    import subprocess

    arch = "x86_64"
    bad_fs = _mkfs(tmp_path, arch, _boot_tree(tmp_path, arch, {"7.0.0": None}))
    subprocess.run(["debugfs", "-w", "-R", "sif /boot/vmlinuz-7.0.0 block[0] 0xdeadbeef", str(bad_fs)],
                   check=True, capture_output=True)
    head = guest(arch).kernel.read_bytes()[:2 << 20]
    good = _boot_tree(tmp_path, arch, {"6.13.0": head, "6.12.117-cloud": None})
    disk = _gpt_disk(tmp_path, [bad_fs, _mkfs(tmp_path, arch, good)])
    m = _run_loader(machine, arch, [disk], "fallthrough", append="cloudboot.repl cloudboot.menu=0")
    m.expect(re.compile(rb"skipping /boot/vmlinuz-7\.0\.0: unreadable [^\r\n]*extent"), 120)
    m.expect("choosing 6.13.0", 60)
    m.expect("/boot/vmlinuz-6.13.0 failed:", 60)
    m.expect("trying the next candidate: 6.12.117-cloud", 30)
    m.expect(MARKER, 240)
    assert "cb.marker=fallthrough" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


def test_disk_menu_without_timeout_waits_for_a_key(tmp_path, machine) -> None:
    """Two good kernels on a disk: the menu lists both, cloudboot.menu.timeout=0 waits (no countdown), "2" and
    Enter boot the older one."""
    arch = "x86_64"
    tree = _boot_tree(tmp_path, arch, {"6.13.0": None, "6.12.117-cloud": None})
    disk = _gpt_disk(tmp_path, [_mkfs(tmp_path, arch, tree)])
    m = _run_loader(machine, arch, [disk], "disk-menu", append="cloudboot.repl cloudboot.menu.timeout=0")
    m.expect("> 1. 6.13.0 (/boot/vmlinuz-6.13.0)", 120)
    m.expect("  2. 6.12.117-cloud (/boot/vmlinuz-6.12.117-cloud)", 10)
    m.expect(re.compile(rb"Enter boots, arrows or 1-2 choose\r?\n"), 10)
    m.send(b"2")
    m.expect("> 2. 6.12.117-cloud", 30)
    m.send(b"\r")
    m.expect("choosing 6.12.117-cloud: /boot/vmlinuz-6.12.117-cloud, chosen in the menu", 30)
    m.expect(MARKER, 240)
    assert "booting 1 in" not in m.text
    assert "cb.marker=disk-menu" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


@pytest.mark.parametrize(("arch", "fstype"), [("x86_64", "ext4"), ("aarch64", "ext4"), ("riscv64", "ext4"),
                                            ("loongarch64", "ext4"), ("x86_64", "btrfs"), ("x86_64", "ext4-zstd")])
def test_cascade_boots_newest_kernel_from_disk(tmp_path, machine, arch: str, fstype: str) -> None:
    zstd = fstype.endswith("-zstd")
    fstype = fstype.removesuffix("-zstd")
    m = _run_loader(machine, arch, [_ext4_disk(tmp_path, arch, fstype, zstd)], f"ext4-{arch}")
    m.expect("found /boot/vmlinuz-6.12.117-cloud", 120)
    m.expect(f"({fstype} 'debroot')", 10)
    m.expect("choosing 6.12.117-cloud", 60)
    if zstd:
        m.expect("unpacked zstd kernel", 60)
    m.expect(MARKER, 240)
    assert f"cb.marker=ext4-{arch}" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


def test_cascade_boots_from_a_relabelled_qcow2_disk(tmp_path, machine) -> None:
    """The disk as a compressed qcow2 image, relabelled by `cloud-boot label` (the superblock's clusters are new
    ones): QEMU takes it as qcow2, and the firmware's reader sees the new label and boots the kernel."""
    import subprocess
    import sys

    arch = "x86_64"
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-c", str(_ext4_disk(tmp_path, arch)), str(qcow)],
                   check=True)
    proc = subprocess.run([sys.executable, "-m", "cloudboot", "label", f"{qcow}@2", "relabelled"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = _run_loader(machine, arch, [qcow], "qcow2-disk")
    m.expect("found /boot/vmlinuz-6.12.117-cloud", 120)
    m.expect("(ext4 'relabelled')", 10)
    m.expect(MARKER, 240)
    assert m.wait(120) == 0
    assert subprocess.run(["qemu-img", "check", str(qcow)], capture_output=True).returncode == 0


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cascade_boots_bls_entry_from_xfs_boot_partition(tmp_path, machine, arch: str) -> None:
    """AlmaLinux/RHEL layout: a separate XFS /boot whose BLS entries name the kernel, options included; the
    EFI stub takes the initrd from our LoadFile2 provider."""
    import subprocess

    from cloudboot.harness.xfsproto import protofile

    g = guest(arch)
    boot = tmp_path / "boot"
    (boot / "loader/entries").mkdir(parents=True)
    (boot / "vmlinuz-5.14.0-503.el9.x86_64").symlink_to(g.kernel)
    (boot / "initramfs-5.14.0-503.el9.x86_64.img").symlink_to(g.initrd)
    (boot / "loader/entries/abc-5.14.0-503.el9.x86_64.conf").write_text(
        "title AlmaLinux (5.14.0-503.el9.x86_64) 9.5\nversion 5.14.0-503.el9.x86_64\n"
        "linux /vmlinuz-5.14.0-503.el9.x86_64\ninitrd /initramfs-5.14.0-503.el9.x86_64.img\n"
        f"options console={arches.get(arch).linux_console} panic=-1 cb.marker=alma-xfs\n")
    proto = protofile(boot, tmp_path / "proto")
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
    m.expect("Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path", 240)  # the EFI stub, from our provider
    m.expect(MARKER, 240)
    assert "cb.marker=alma-xfs" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


def _gpt(tmp_path, name: str, parts: list[tuple[object, str, str]]):
    """A GPT disk holding the given filesystem images [(image, sgdisk type code, partition name)] in order."""
    import shutil
    import subprocess

    sizes = [((p.stat().st_size + (1 << 20) - 1) >> 20) for p, _, _ in parts]
    disk = tmp_path / name
    with open(disk, "wb") as f:
        f.truncate((sum(sizes) + 3) << 20)
    cmd = ["sgdisk"]
    for i, ((_, code, pname), size) in enumerate(zip(parts, sizes, strict=True), 1):
        cmd += ["-n", f"{i}:0:+{size}M", "-t", f"{i}:{code}", "-c", f"{i}:{pname}"]
    subprocess.run([*cmd, str(disk)], check=True, capture_output=True)
    with open(disk, "r+b") as f:
        for i, (image, _, _) in enumerate(parts, 1):
            info = subprocess.run(["sgdisk", "-i", str(i), str(disk)], capture_output=True, text=True).stdout
            f.seek(int(re.search(r"First sector: (\d+)", info).group(1)) * 512)
            with open(image, "rb") as src:
                shutil.copyfileobj(src, f)
    return disk


SUSE_VERSION = "6.4.0-150600.23.25-default"


def _suse_disk(tmp_path, arch: str):
    """openSUSE's layout: btrfs with @, @/home, @/.snapshots and the default subvolume @/.snapshots/1/snapshot
    (made by mkfs.btrfs --subvol, no mount), whose /boot/<kernel>-<v> (vmlinuz, or Image on arm64) is a relative
    symlink into /usr/lib/modules/<v>/ and /boot/initrd-<v> an absolute one. Subvolume 5 holds a decoy /boot
    with a newer (garbage) kernel that only a reader ignoring the default subvolume would pick."""
    import shutil
    import subprocess

    from tests.portable.images import btrfs_env, btrfs_tool

    g = guest(arch)
    v, image = SUSE_VERSION, "Image" if arch == "aarch64" else "vmlinuz"
    work = tmp_path / "suse"
    snap = work / "@/.snapshots/1/snapshot"
    mods = snap / "usr/lib/modules" / v
    mods.mkdir(parents=True)
    shutil.copyfile(g.kernel, mods / image)
    shutil.copyfile(g.initrd, mods / "initrd")
    (snap / "boot").mkdir()
    (snap / f"boot/{image}-{v}").symlink_to(f"../usr/lib/modules/{v}/{image}")
    (snap / f"boot/initrd-{v}").symlink_to(f"/usr/lib/modules/{v}/initrd")
    (snap / f"boot/{image}").symlink_to(f"{image}-{v}")
    (snap / "boot/initrd").symlink_to(f"initrd-{v}")
    (snap / "etc").mkdir()
    (snap / "etc/os-release").write_text('NAME="openSUSE Leap"\nVERSION="15.6"\n')
    (work / "@/home/user").mkdir(parents=True)
    (work / "@/.snapshots/1/info.xml").write_text("<snapshot><num>1</num></snapshot>\n")
    (work / "boot").mkdir()
    (work / "boot/vmlinuz-9.9.9-decoy").write_bytes(b"not a kernel: subvolume 5 is not the default")
    fs = tmp_path / "suse.btrfs"
    with open(fs, "wb") as f:
        f.truncate(max((g.kernel.stat().st_size + g.initrd.stat().st_size) * 2 + (64 << 20), 256 << 20))
    subprocess.run([*btrfs_tool("mkfs.btrfs"), "-q", "-f", "-L", "SUSE", "--rootdir", str(work), "--subvol", "@",
                    "--subvol", "@/home", "--subvol", "@/.snapshots", "--subvol", "default:@/.snapshots/1/snapshot",
                    str(fs)], check=True, env=btrfs_env())
    return _gpt(tmp_path, "suse.img", [(fs, "8300", "p.lxroot")])


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cascade_boots_opensuse_btrfs_snapshot_with_symlinked_kernel(tmp_path, machine, arch: str) -> None:
    image = "Image" if arch == "aarch64" else "vmlinuz"
    m = _run_loader(machine, arch, [_suse_disk(tmp_path, arch)], f"suse-{arch}")
    m.expect(f"found /boot/{image}-{SUSE_VERSION}", 120)
    m.expect("(btrfs 'SUSE')", 10)
    m.expect(f"{image}-{SUSE_VERSION} -> ../usr/lib/modules/{SUSE_VERSION}/{image}", 10)
    m.expect(f"initrd-{SUSE_VERSION} -> /usr/lib/modules/{SUSE_VERSION}/initrd", 10)
    choosing = m.expect(re.compile(rb"choosing [^\r\n]*\r?\n"), 60).group(0).decode()
    assert f"choosing {SUSE_VERSION}" in choosing
    assert "9.9.9-decoy" not in m.text
    m.expect(MARKER, 240)
    assert f"cb.marker=suse-{arch}" in m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert m.wait(120) == 0


FEDORA_MACHINE_ID = "3f1e0c9a7b2d4e5f8a6b9c0d1e2f3a4b"


def _fedora_disk(tmp_path, arch: str):
    """Fedora's layout: an ext4 /boot partition (label 'boot') with BLS entries <machine-id>-<version>.conf
    (the newest, an older one whose kernel is garbage, a rescue entry) and a btrfs root partition (label
    'fedora', subvolumes root and home, made by mkfs.btrfs --subvol)."""
    import shutil
    import subprocess

    from tests.portable.images import btrfs_env, btrfs_tool

    g = guest(arch)
    farch = "aarch64" if arch == "aarch64" else "x86_64"
    new, old = f"6.8.5-301.fc40.{farch}", f"6.7.9-200.fc39.{farch}"
    console = arches.get(arch).linux_console
    root_uuid = "5c0f3e1a-9d2b-4c7e-8f6a-1b2c3d4e5f60"
    boot = tmp_path / "fboot"
    (boot / "loader/entries").mkdir(parents=True)
    shutil.copyfile(g.kernel, boot / f"vmlinuz-{new}")
    shutil.copyfile(g.initrd, boot / f"initramfs-{new}.img")
    (boot / f"vmlinuz-{old}").write_bytes(b"an older kernel that must not be chosen")
    (boot / f"initramfs-{old}.img").write_bytes(b"07070")
    (boot / f"vmlinuz-0-rescue-{FEDORA_MACHINE_ID}").write_bytes(b"a rescue kernel that must not be chosen")

    def entry(title: str, version: str, options: str) -> str:
        return (f"title {title}\nversion {version}\nlinux /vmlinuz-{version}\ninitrd /initramfs-{version}.img\n"
                f"options root=UUID={root_uuid} ro rootflags=subvol=root {options}\ngrub_users $grub_users\n"
                "grub_arg --unrestricted\ngrub_class fedora\n")

    entries = {new: entry(f"Fedora Linux ({new}) 40 (Cloud Edition)", new,
                          f"console={console} panic=-1 cb.marker=fedora-{arch}"),
               old: entry(f"Fedora Linux ({old}) 39 (Cloud Edition)", old, "cb.marker=fedora-old"),
               "0-rescue": entry("Fedora Linux (0-rescue) 40", f"0-rescue-{FEDORA_MACHINE_ID}", "cb.marker=rescue")}
    for version, text in entries.items():
        (boot / f"loader/entries/{FEDORA_MACHINE_ID}-{version}.conf").write_text(text)
    bootfs = tmp_path / "fboot.ext4"
    with open(bootfs, "wb") as f:
        f.truncate((g.kernel.stat().st_size + g.initrd.stat().st_size) * 2 + (32 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "boot", "-d", str(boot), str(bootfs)], check=True)
    root = tmp_path / "froot"
    for d in ("root/boot", "root/etc", "root/usr/lib/modules", "home/fedora"):
        (root / d).mkdir(parents=True)
    (root / "root/etc/fstab").write_text(f"UUID={root_uuid} / btrfs subvol=root 0 0\n"
                                         f"UUID={root_uuid} /home btrfs subvol=home 0 0\n")
    (root / "root/etc/machine-id").write_text(FEDORA_MACHINE_ID + "\n")
    rootfs = tmp_path / "froot.btrfs"
    with open(rootfs, "wb") as f:
        f.truncate(128 << 20)
    subprocess.run([*btrfs_tool("mkfs.btrfs"), "-q", "-f", "-L", "fedora", "-U", root_uuid, "--rootdir", str(root),
                    "--subvol", "root", "--subvol", "home", str(rootfs)], check=True, env=btrfs_env())
    return _gpt(tmp_path, "fedora.img", [(bootfs, "8300", "boot"), (rootfs, "8304", "root")])


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cascade_boots_fedora_bls_entry_with_its_options(tmp_path, machine, arch: str) -> None:
    """No CloudBootCmdline: the BLS entry's `options` are the kernel's command line."""
    farch = "aarch64" if arch == "aarch64" else "x86_64"
    new = f"6.8.5-301.fc40.{farch}"
    m = machine(arch, efi=firmware_file(arch), append="cloudboot.wait=0", disks=[_fedora_disk(tmp_path, arch)],
                extra=["-no-reboot"])
    m.expect(f"found /vmlinuz-{new} (BLS entry /loader/entries/{FEDORA_MACHINE_ID}-{new}.conf)", 120)
    m.expect("(ext4 'boot')", 10)
    m.expect(f"choosing {new}", 60)
    line = m.expect(re.compile(rb"command line: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert f"cb.marker=fedora-{arch}" in line and "rootflags=subvol=root" in line
    m.expect(MARKER, 240)
    line = m.expect(re.compile(rb"cmdline: [^\r\n]*\r?\n"), 30).group(0).decode()
    assert f"cb.marker=fedora-{arch}" in line and "rootflags=subvol=root" in line and "fedora-old" not in line
    assert m.wait(120) == 0
