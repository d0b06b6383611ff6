"""Trying the init initramfs in QEMU: Debian's kernel + our initramfs (`-kernel/-initrd/-append`), and a
target disk holding the same kernel with a tiny busybox test initrd whose /init prints a marker and its
/proc/cmdline, then powers off. Used by the e2e tests and bench/bench_init.py; everything is cached under
the build directory by a hash of its inputs, so a session builds each image once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.harness.guests import marker_init
from cloudboot.harness.machine import Machine
from cloudboot.harness.xfsproto import protofile
from cloudboot.initramfs import compress, debian
from cloudboot.initramfs.build import sources_key
from cloudboot.initramfs.busybox import busybox_initrd
from cloudboot.kernel.build import Kernel
from cloudboot.paths import build_dir
from cloudboot.run import run, which

MARKER = "CLOUDBOOT-KEXEC-TARGET-OK"
#: The kexec target's /init: the marker, its command line, then what it got of EFI ("runtime": the kernel
#: registered the EFI variable services, which calls GetNextVariableName; "boot": booted by EFI, no runtime
#: services; "none"), then power off.
TARGET_INIT = marker_init(MARKER, "target cmdline", """/bin/busybox mount -t sysfs sysfs /sys
if [ -e /sys/bus/platform/devices/efivars.0 ]; then efi=runtime
elif [ -d /sys/firmware/efi ]; then efi=boot
else efi=none; fi
echo "target efi: $efi"
""")


def _workdir(arch: str) -> Path:
    d = build_dir() / "init-trial" / arch
    d.mkdir(parents=True, exist_ok=True)
    return d


#: The test images' zstd level: the product's 19 took 10-15 s per image, a run builds a dozen, and the kernel
#: unpacks either as fast (level 12 is 12% larger: 10.1 against 9.0 MB on arm64). The media tests build with
#: the product's defaults.
TRIAL_ZSTD_LEVEL = 12


def initramfs(arch: str, cosign_key: Path | None = None, kernel: str = "debian", cryptography: bool = True) -> Path:
    """Our initramfs for `arch`, with /etc/cosign.pub when `cosign_key` is given, for Debian's kernel (its modules
    go in) or, with kernel="our", for our cloud kernel (no modules), with Debian's cryptography and argon2 unless
    `cryptography` is False (the cloud medium's default: what bench_init times); built now unless the sources,
    the key and the kernel are unchanged since the last build."""
    from cloudboot.initramfs.build import build

    pem = cosign_key.read_text() if cosign_key else ""
    own = own_kernel(arch) if kernel == "our" else None
    name = "init" + ("-cosign" if cosign_key else "") + ("-our" if own else "") + ("" if cryptography else "-nocrypto")
    # our kernel's as the medium's; zstd for Debian's (the medium's xz takes longer to make)
    out = _workdir(arch) / f"{name}.cpio.{compress.OWN_KERNEL if own else 'zst'}"
    level = None if own else TRIAL_ZSTD_LEVEL
    stamp = out.with_suffix(".key")
    key = sources_key(arch, os.environ.get("SOURCE_DATE_EPOCH", ""), pem, own.info["key"] if own else "",
                      f"{out.suffix}-{level}")
    if not (out.exists() and stamp.exists() and stamp.read_text() == key):
        build(arch, out, cosign_key=cosign_key, own_kernel=own.info if own else None, level=level,
              cryptography=cryptography)
        stamp.write_text(key)
    return out


#: Our cloud kernels `make test` builds on first use (5-7 minutes each on 2 idle cores); the disk variant's tests
#: run when that kernel is cached (`make kernel ARCH=... VARIANT=disk`) or with CLOUDBOOT_OWN_KERNELS=all, and
#: are skipped otherwise.
OWN_KERNELS_BUILT_BY_TESTS = ("x86_64", "aarch64", "riscv64", "loongarch64")


def own_kernel(arch: str, variant: str = "cloud") -> Kernel:
    """Our `variant` kernel for `arch` (built on first use, then from the cache)."""
    from cloudboot.kernel.build import build

    return build(arch, variant)


def prebuild_own_kernels(log: Path) -> subprocess.Popen | None:
    """Start building the OWN_KERNELS_BUILT_BY_TESTS that are not cached, one after the other, niced, in a
    process group of their own (output to `log`); None when all are cached. The e2e tests keep one core busy
    with QEMU (TCG runs a single-vCPU guest on one thread), so the kernels that `make test` builds on first use
    take the other one instead of stopping the run when a test first asks for them; a test that needs one
    before it is done waits for it (kernel.build holds a lock per build)."""
    from cloudboot.kernel.build import is_cached

    todo = [a for a in OWN_KERNELS_BUILT_BY_TESTS if not is_cached(a, "cloud")]
    if not todo:
        return None
    code = ("import sys\nfrom cloudboot.kernel.build import build\n"
            "for a in sys.argv[1:]:\n    print(build(a, 'cloud').image, flush=True)\n")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", code, *todo], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def own_kernel_missing(arch: str, variant: str = "cloud") -> str | None:
    """Why a test of our `arch` `variant` kernel should be skipped here (None: it runs, building the kernel if
    need be)."""
    from cloudboot.kernel.build import is_cached

    name = arches.get(arch).name
    if (name in OWN_KERNELS_BUILT_BY_TESTS and variant == "cloud") \
            or os.environ.get("CLOUDBOOT_OWN_KERNELS") == "all" or is_cached(name, variant):
        return None
    return (f"our {name} {variant} kernel is not built (5-7 minutes on 2 cores): run `make kernel ARCH={name} "
            f"VARIANT={variant}`, or set "
            "CLOUDBOOT_OWN_KERNELS=all for make test")


def target_initrd(arch: str) -> Path:
    """busybox-static of the target arch + the marker /init, as a newc cpio."""
    return busybox_initrd(arch, TARGET_INIT, _workdir(arch) / "target-initrd.cpio", ("proc", "dev", "sys"))


#: The Path C target: booted by the firmware from the cache ESP, it shows what the firmware gave it and what
#: the variable store holds, then takes one command on the console.
EFI_MARKER = "CLOUDBOOT-PATHC-TARGET-OK"
RESET_SCRIPT = "usr/share/cloud-boot/reset-cloud-boot.sh"
EFI_TARGET_INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /usr/sbin /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m; done
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
echo "{EFI_MARKER}"
echo "target cmdline: $(cat /proc/cmdline)"
echo "target net: $(ls /sys/class/net | tr '\\n' ' ')"
echo "efibootmgr -v:"
efibootmgr -v
echo "efibootmgr: status $?"
echo "target efivars: $(ls /sys/firmware/efi/efivars | wc -l) variables, \\
$(stat -f -c '%a of %b' /sys/firmware/efi/efivars) blocks free"
while :; do
  echo "target: command? (off, reboot, reset, or a shell command)"
  read -r cmd || cmd=off
  case "$cmd" in
    off) poweroff -f ;;
    reboot) reboot -f ;;
    reset) sh /{RESET_SCRIPT}; echo "reset: status $?"; reboot -f ;;
    *) sh -c "$cmd"; echo "status $?" ;;
  esac
done
"""


def efi_target_initrd(arch: str) -> Path:
    """The Path C test target's initrd: busybox, Debian's efibootmgr with its libraries, the kernel's efivarfs
    module, our reset script, and EFI_TARGET_INIT (marker, /proc/cmdline, `efibootmgr -v`, then console
    commands: off, reboot, reset = the sh script + reboot, or any shell command)."""
    from cloudboot.init.efivars import reset_script
    from cloudboot.initramfs import cpio, kmods
    from cloudboot.initramfs import python as pysel
    from cloudboot.initramfs.build import add_libraries

    out = _workdir(arch) / "efi-target-initrd.cpio"
    archive = debian.Archive(arch)
    debs = archive.fetch(archive.closure(["efibootmgr", "busybox-static"]))
    kernel = debian.fetch_kernel(archive, None)
    key = hashlib.sha256("\0".join([d.path.name for d in debs] + [kernel.modules_deb.path.name, EFI_TARGET_INIT,
                                                                   reset_script()]).encode()).hexdigest()
    stamp = out.with_suffix(".key")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    trees = [archive.unpack(d) for d in debs]
    fs = pysel.Rootfs(trees)
    a = cpio.Archive()
    _, busybox = fs.resolve("usr/bin/busybox")
    a.file("usr/bin/busybox", busybox, 0o755)
    efibootmgr = next(p for p in ("usr/bin/efibootmgr", "usr/sbin/efibootmgr", "bin/efibootmgr")
                      if fs.glob(p))
    _, host = fs.resolve(efibootmgr)
    a.file("usr/bin/efibootmgr", host, 0o755)
    add_libraries(a, fs, [host], efibootmgr, arch)
    mods = kmods.select(archive.unpack(kernel.modules_deb), kernel.release, ["efivarfs"],
                        archive.unpack(kernel.base_deb) if kernel.base_deb else None)
    for rel in mods.order:
        a.file(f"usr/lib/modules/{rel.rsplit('/', 1)[-1]}", mods.files[rel], 0o644)
    a.file("usr/lib/modules/order", "".join(rel.rsplit("/", 1)[-1] + "\n" for rel in mods.order).encode(), 0o644)
    a.file(RESET_SCRIPT, reset_script().encode(), 0o755)
    a.file("init", EFI_TARGET_INIT.encode(), 0o755)
    for d in ("proc", "sys", "dev", "tmp"):
        a.dir(d)
    for link in ("bin", "sbin", "lib", "lib64"):
        if link != "lib64" or any(p.startswith("usr/lib64/") for p in a.entries):
            a.symlink(link, f"usr/{link}")
    out.write_bytes(a.to_bytes())
    stamp.write_text(key)
    return out


#: Where `cryptsetup reencrypt --encrypt` moves the filesystem of an encrypted target (room for the header).
LUKS_SHIFT_MIB = 8


def target_disk(arch: str, fstype: str = "ext4", efi: bool = False,
                luks_passphrase: str | None = None) -> tuple[Path, str]:
    """A GPT disk whose partition 1 (PARTLABEL cbtarget, LABEL CBTARGET) holds /boot/vmlinuz-<release> and
    /boot/initrd.img-<release> (the test initrd; with `efi`, the Path C one), Debian style, on ext4, xfs or
    btrfs (made by mkfs from the tree), inside LUKS2 (argon2id, small costs; its label CBTARGET too) when
    `luks_passphrase` is given; returns (image, kernel release)."""
    if fstype == "zfs":
        return zfs_target(arch)
    if fstype not in ("ext4", "xfs", "btrfs"):
        raise CloudBootError(f"target_disk: no {fstype} images (ext4, xfs, btrfs, zfs)")
    kernel, release = debian.kernel_image(arch)
    initrd = efi_target_initrd(arch) if efi else target_initrd(arch)
    name = f"target-{fstype}{'-efi' if efi else ''}" if luks_passphrase is None else f"target-luks2-{fstype}"
    img = _workdir(arch) / f"{name}.img"
    key = f"{kernel.name} {kernel.stat().st_size} {initrd.stat().st_size} {initrd.stat().st_mtime_ns} v2"
    if luks_passphrase is not None:
        key += f" luks2 {hashlib.sha256(luks_passphrase.encode()).hexdigest()}"
    stamp = img.with_suffix(".key")
    if img.exists() and stamp.exists() and stamp.read_text() == key:
        return img, release
    tree = _workdir(arch) / "target-tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "boot").mkdir(parents=True)
    shutil.copyfile(kernel, tree / "boot" / f"vmlinuz-{release}")
    shutil.copyfile(initrd, tree / "boot" / f"initrd.img-{release}")
    size_mib = (kernel.stat().st_size + initrd.stat().st_size) // (1 << 20) + 24
    if fstype == "xfs":
        size_mib = max(size_mib, 320)  # mkfs.xfs's smallest filesystem is 300 MB
    fs = img.with_suffix(".fs")
    with open(fs, "wb") as f:
        f.truncate(size_mib << 20)
    if fstype == "ext4":
        mkfs = [which("mkfs.ext4"), "-q", "-F", "-L", "CBTARGET", "-d", str(tree), str(fs)]
    elif fstype == "btrfs":
        mkfs = [which("mkfs.btrfs"), "-q", "-f", "-L", "CBTARGET", "--rootdir", str(tree), str(fs)]
    else:  # mkfs.xfs (6.1) populates only from a protofile
        proto = protofile(tree, img.with_suffix(".proto"))
        mkfs = [which("mkfs.xfs"), "-q", "-f", "-L", "CBTARGET", "-p", str(proto), str(fs)]
    run(mkfs, quiet=True)
    if luks_passphrase is not None:
        _encrypt(fs, luks_passphrase)
    size_mib = -(-fs.stat().st_size // (1 << 20))  # mkfs.btrfs --rootdir grows the file when the tree needs it
    with open(img, "wb") as f:
        f.truncate((size_mib + 2) << 20)
    run([which("sfdisk"), "-q", img], quiet=True,
        input=f"label: gpt\nstart=2048, size={size_mib * 2048}, name=cbtarget\n".encode())
    with open(img, "r+b") as out, open(fs, "rb") as src:
        out.seek(2048 * 512)
        shutil.copyfileobj(src, out, 1 << 20)
    fs.unlink()
    shutil.rmtree(tree)
    stamp.write_text(key)
    return img, release


ZFS_POOL = "cbtarget"


def zfs_target(arch: str) -> tuple[Path, str]:
    """A ZFS mirror (zfs-fuse) over target-zfs.img and target-zfs.dev1: cbtarget/ROOT/debian (mountpoint /)
    whose /boot is its child cbtarget/ROOT/debian/boot (mountpoint /boot, gzip) holding vmlinuz-<release> and
    initrd.img-<release>; returns (the first leg, kernel release). Booting with the first leg alone is a mirror
    with one device missing."""
    from cloudboot.harness.zfsfuse import make_pool

    kernel, release = debian.kernel_image(arch)
    initrd = target_initrd(arch)
    img = _workdir(arch) / "target-zfs.img"
    legs = [img, img.with_suffix(".dev1")]
    key = f"{kernel.name} {kernel.stat().st_size} {initrd.stat().st_size} {initrd.stat().st_mtime_ns} zfs v1"
    stamp = img.with_suffix(".key")
    if all(p.exists() for p in legs) and stamp.exists() and stamp.read_text() == key:
        return img, release
    stamp.unlink(missing_ok=True)
    tree = _workdir(arch) / "target-tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "boot").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "etc/hostname").write_text("cloud-boot zfs target\n")
    shutil.copyfile(kernel, tree / "boot" / f"vmlinuz-{release}")
    shutil.copyfile(initrd, tree / "boot" / f"initrd.img-{release}")
    size = max(128 << 20, 2 * (kernel.stat().st_size + initrd.stat().st_size) + (64 << 20))
    for leg in legs:
        with open(leg, "wb") as f:
            f.truncate(size)
    make_pool(ZFS_POOL, ["mirror", *legs], [("ROOT", None, {"mountpoint": "none"}, None),
                                            ("ROOT/debian", tree, {"mountpoint": "/"}, None),
                                            ("ROOT/debian/boot", None, {"mountpoint": "/boot", "compression": "gzip"},
                                             None)], _workdir(arch) / "target-zfs.work")
    shutil.rmtree(tree)
    stamp.write_text(key)
    return img, release


def _encrypt(fs: Path, passphrase: str) -> None:
    """Turn a filesystem image into LUKS2 holding it, in place: cryptsetup's offline reencryption (its own
    userspace encryption; no device-mapper, no root)."""
    with open(fs, "r+b") as f:
        f.truncate(fs.stat().st_size + (LUKS_SHIFT_MIB << 20))
    work = fs.with_suffix(".luks-work")  # reencrypt keeps a temporary header in its working directory
    work.mkdir(exist_ok=True)
    try:
        run([which("cryptsetup", "encrypted test targets"), "reencrypt", "--encrypt", "--batch-mode",
             "--type", "luks2", "--label", "CBTARGET", "--pbkdf", "argon2id",
             "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "1",
             "--key-file", "-", "--reduce-device-size", f"{LUKS_SHIFT_MIB}M", str(fs)],
            input=passphrase.encode(), quiet=True, cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: Where QEMU's own kernel loader cannot boot Debian's kernel: loongarch64 (a direct boot has no ACPI tables,
#: and the kernel oopses probing i8042), booted through EDK2 instead.
EFI_ONLY = ("loongarch64",)


def needs_efi(arch: str) -> bool:
    """Whether a Linux guest of `arch` (any spelling) must boot through EDK2 (EFI_ONLY)."""
    return arches.get(arch).name in EFI_ONLY


#: On the command line of every kernel our test machines start. Device interrupts go to CPU 0 only: under TCG on
#: a loaded host a vCPU has been seen to stop taking its timer interrupt from its first seconds on (the RCU stall
#: report of a failed CI run); had the serial port's interrupt been routed to it, the lines programs write
#: through the tty (sent by interrupt) stop while the kernel's own (written by polling) go on.
GUEST_CMDLINE = "irqaffinity=0"


def machine(arch: str, kernel: Path, initrd: Path, append: str, disks: list[Path] | None = None,
            memory_mb: int = 1024, nic: bool = False, efi: bool | None = None, writable: bool = False,
            netdev: str = "user") -> Machine:
    """A VM (not started: `.start()` or `with`) booting `kernel` + `initrd` with `console=<the arch's serial>
    <GUEST_CMDLINE> <append>`, 2 CPUs, no reboot (a panic or the target's poweroff ends QEMU).

    `efi`: boot through EDK2 in pflash (QEMU hands the kernel to it over fw_cfg; on arm64 that means EFI stub +
    ACPI) instead of QEMU's direct kernel boot (on arm64: QEMU's DTB, no EFI); None: EDK2 only where the
    direct boot does not work (needs_efi). `nic`: one virtio NIC on QEMU
    user networking (the host's 127.0.0.1 is 10.0.2.2), or on the `-netdev` backend `netdev`. Disk n is a
    virtio disk with serial `dn` (/sys/block/vdX/serial), read-only unless `writable`."""
    a = arches.get(arch)
    if efi is None:
        efi = needs_efi(arch)
    if not efi:
        kernel = direct_bootable(arch, kernel)
    # TCG everywhere, as the harness does (nested KVM is not reliable on CI machines).
    return Machine(a.name, extra_kernel=(kernel, initrd, f"console={a.linux_console} {GUEST_CMDLINE} {append}"),
                   disks=disks or [], nics=1 if nic else 0, memory_mb=memory_mb, uefi=efi,
                   readonly_disks=not writable, extra=["-smp", "2", "-no-reboot"], netdev=netdev)


def direct_bootable(arch: str, kernel: Path) -> Path:
    """What QEMU's own kernel loader (no EFI) takes: `kernel` itself, or the Image an EFI zboot image (our arm64,
    riscv64 and loongarch64 kernels) carries, unpacked once into the trial directory."""
    from cloudboot.init.kexec import zboot_header  # the init's reader of the header; the host unpacks with zstd(1)

    with open(kernel, "rb") as f:
        zboot = zboot_header(f.read(64))
    if zboot is None:
        return kernel
    offset, size, kind = zboot
    out = _workdir(arch) / f"direct-{hashlib.sha256(kernel.read_bytes()).hexdigest()[:16]}.Image"
    if not out.exists():
        with open(kernel, "rb") as f:
            f.seek(offset)
            payload = f.read(size)
        tool = {"zstd": [which("zstd", "unpacking EFI zboot kernels"), "-d", "-c"], "gzip": ["gzip", "-d", "-c"]}
        if kind not in tool:
            raise CloudBootError(f"{kernel}: EFI zboot payload compressed with {kind!r}, not zstd or gzip")
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(run(tool[kind], input=payload, capture=True).stdout)
        tmp.rename(out)
    return out


def uki_medium(arch: str, append: str, out: Path) -> Path:
    """A boot medium: a disk image whose FAT ESP holds \\EFI\\BOOT\\BOOT<ARCH>.EFI = a UKI of our built
    firmware (the stub), Debian's kernel and our init, with `console=<serial> panic=-1 <GUEST_CMDLINE> <append>`."""
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.image.esp import build_esp
    from cloudboot.image.output import read_input, write_atomic
    from cloudboot.image.uki import UkiParts, build_uki

    prof = arches.get(arch)
    stub = firmware_dir() / prof.efi_name
    kernel = boot_kernel(arch)
    parts = UkiParts(linux=kernel.read_bytes(), linux_name=str(kernel), initrds=[initramfs(arch).read_bytes()],
                     cmdline=f"console={prof.linux_console} panic=-1 {GUEST_CMDLINE} {append}".encode())
    uki, _ = build_uki(read_input(stub, "the firmware (cloud-boot firmware)"), str(stub), parts)
    write_atomic(out, build_esp({f"EFI/BOOT/{prof.efi_name}": uki}))
    return out


def console(arch: str) -> str:
    """The serial console device Linux uses on `arch`'s machine (ttyS0, ttyAMA0)."""
    return arches.get(arch).linux_console


def boot_kernel(arch: str, kernel: str = "debian") -> Path:
    """The kernel the init runs on: Debian's (the initramfs's modules belong to it) or our cloud kernel."""
    return own_kernel(arch).image if kernel == "our" else debian.kernel_image(arch)[0]
