"""Our firmware's loader against references, same machine, same kernel and initrd, same run:

1. QEMU start -> the Linux test initrd's marker: our firmware loading \\EFI\\Linux\\cloud-boot.efi from an ESP
   (cascade, LoadImage, LoadFile2 initrd) against EDK2 loading the same kernel itself (-kernel/-initrd).
2. QEMU start -> the target kernel's `Linux version` line, booting one GPT disk (ext4 'debroot' holding
   Debian's kernel + initrd in /boot and a BLS entry with the command line): our firmware's disk cascade
   against GRUB (Debian's grub-efi-amd64-bin / grub-efi-arm64-bin modules, a grub-mkstandalone image whose
   memdisk grub.cfg does `search --label`, linux, initrd, boot) on an ESP as \\EFI\\BOOT\\BOOTX64.EFI /
   BOOTAA64.EFI next to the disk. Our firmware is started the way the tests start it (QEMU's -kernel, with
   `cloudboot.wait=0` so it does not wait for a REPL key); GRUB with `timeout=0` and no menu.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import arches
from bench.report import report
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness import esp
from cloudboot.harness.guests import MARKER, guest
from cloudboot.harness.machine import Machine
from cloudboot.paths import cache_dir

RUNS = 3
LINUX_VERSION = re.compile(rb"Linux version \d")
VERSION = "6.12.117-cloud"
#: arch -> grub-mkstandalone -O platform (its modules: Debian's grub-efi-<debian arch>-bin)
GRUB = {"x86_64": "x86_64-efi", "aarch64": "arm64-efi"}
GRUB_MODULES = "part_gpt part_msdos fat ext2 search search_label linux gzio normal configfile echo test boot"


def _marker_seconds(arch: str, **kw) -> float:
    with Machine(arch, extra=["-no-reboot"], **kw) as m:
        m.expect(MARKER, 300, mark="marker")
        return m.marks["marker"]


def _linux_version_seconds(arch: str, **kw) -> float:
    """Seconds from QEMU start to the kernel's `Linux version` line (then the run goes on to the test initrd's
    marker, so a boot that prints the banner but fails later does not count)."""
    with Machine(arch, extra=["-no-reboot"], **kw) as m:
        m.expect(LINUX_VERSION, 300, mark="linux")
        m.expect(MARKER, 300)
        return m.marks["linux"]


def _esp_target(work: Path) -> None:
    for arch in GRUB:
        g = guest(arch)
        cmdline = f"console={arches.get(arch).linux_console} panic=-1"
        (work / "cmdline").write_text(cmdline + " initrd=\\EFI\\Linux\\initrd.cpio\n")
        image = esp.make_esp(work / f"esp-{arch}.img", {"EFI/Linux/cloud-boot.efi": g.kernel,
                                                         "EFI/Linux/initrd.cpio": g.initrd,
                                                         "cmdline": work / "cmdline"}, size_mb=96)
        ours = firmware_dir() / arches.get(arch).efi_name
        t_ours = statistics.median(_marker_seconds(arch, efi=ours, append="cloudboot.wait=0", disks=[image])
                                   for _ in range(RUNS))
        t_ref = statistics.median(_marker_seconds(arch, extra_kernel=(g.kernel, g.initrd, cmdline))
                                  for _ in range(RUNS))
        report(f"{arch}: QEMU start -> Linux /init", t_ours, "EDK2 -kernel/-initrd", t_ref)


# ---------------------------------------------------------------- GRUB ----
def grub_modules(arch: str) -> Path:
    """/usr/lib/grub/<platform> of Debian's grub-efi-<arch>-bin for the host's release, unpacked into the cache
    (through a private apt configuration: the foreign arch's package is never installed)."""
    from cloudboot.toolchain import apt

    platform, debarch = GRUB[arch], arches.get(arch).debian
    package = f"grub-efi-{debarch}-bin"
    root = cache_dir() / "test-tools" / f"grub-{apt.host_codename()}-{debarch}"
    mods = root / "usr/lib/grub" / platform
    if not (mods / "linux.mod").exists():
        host = apt.host_arch()
        pa = apt.PrivateApt(f"grub-{apt.host_codename()}", [apt.host_codename()],
                            [host] + [d for d in (arches.get(a).debian for a in GRUB) if d != host])
        debs = root.parent / f"grub-debs-{debarch}"
        shutil.rmtree(debs, ignore_errors=True)
        for deb in pa.download([f"{package}:{debarch}"], debs):
            apt.extract_deb(deb, root)
        shutil.rmtree(debs, ignore_errors=True)
    return mods


def grub_image(arch: str, cfg: str, out: Path) -> Path:
    """A standalone GRUB EFI image (grub-mkstandalone from grub-common) whose memdisk holds `cfg` as
    /boot/grub/grub.cfg."""
    from cloudboot.toolchain import apt

    apt.system_install(["grub-common"])
    mods = grub_modules(arch)
    cfg_file = out.with_suffix(".cfg")
    cfg_file.write_text(cfg)
    subprocess.run(["grub-mkstandalone", "-O", GRUB[arch], "-d", str(mods), "-o", str(out),
                    f"--modules={GRUB_MODULES}", f"--install-modules={GRUB_MODULES}", "--locales=", "--fonts=",
                    "--themes=", f"boot/grub/grub.cfg={cfg_file}"], check=True, capture_output=True)
    return out


def debian_disk(arch: str, work: Path, cmdline: str) -> Path:
    """A GPT disk whose partition 2 is ext4 'debroot' with Debian's /boot (vmlinuz-<v>, initrd.img-<v>) and a
    BLS entry carrying `cmdline` (so our loader needs no variable)."""
    g = guest(arch)
    tree = work / f"root-{arch}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "boot/loader/entries").mkdir(parents=True)
    shutil.copyfile(g.kernel, tree / f"boot/vmlinuz-{VERSION}")
    shutil.copyfile(g.initrd, tree / f"boot/initrd.img-{VERSION}")
    (tree / "boot/loader/entries/debian.conf").write_text(
        f"title Debian\nversion {VERSION}\nlinux /boot/vmlinuz-{VERSION}\ninitrd /boot/initrd.img-{VERSION}\n"
        f"options {cmdline}\n")
    fs = work / f"root-{arch}.ext4"
    size = (g.kernel.stat().st_size + g.initrd.stat().st_size) * 2 + (32 << 20)
    with open(fs, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "debroot", "-d", str(tree), str(fs)], check=True)
    disk = work / f"disk-{arch}.img"
    with open(disk, "wb") as f:
        f.truncate(size + (4 << 20))
    subprocess.run(["sgdisk", "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:4096:0", "-t", "2:8300", str(disk)],
                   check=True, capture_output=True)
    with open(disk, "r+b") as f, open(fs, "rb") as src:
        f.seek(4096 * 512)
        shutil.copyfileobj(src, f)
    fs.unlink()
    return disk


def _grub_vs_ours(work: Path) -> None:
    for arch in GRUB:
        cmdline = f"console={arches.get(arch).linux_console} panic=-1"
        disk = debian_disk(arch, work, cmdline)
        cfg = ("set timeout=0\n"
               "search --no-floppy --label debroot --set=root\n"
               f"linux /boot/vmlinuz-{VERSION} {cmdline}\n"
               f"initrd /boot/initrd.img-{VERSION}\n"
               "boot\n")
        grub = grub_image(arch, cfg, work / f"grub-{arch}.efi")
        ours = firmware_dir() / arches.get(arch).efi_name
        t_ours = statistics.median(_linux_version_seconds(arch, efi=ours, append="cloudboot.wait=0", disks=[disk])
                                   for _ in range(RUNS))
        t_grub = statistics.median(_linux_version_seconds(arch, efi=grub, esp=True, disks=[disk])
                                   for _ in range(RUNS))
        report(f"{arch}: QEMU start -> Linux version (disk)", t_ours, "GRUB", t_grub)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-loader-"))
    try:
        _esp_target(work)
        _grub_vs_ours(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
