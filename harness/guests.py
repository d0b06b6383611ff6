"""Linux guests for boot tests: Debian's kernel for the arch and a tiny busybox initrd whose /init prints a
marker and /proc/cmdline, then powers off. Downloaded once through the private apt config and cached."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.initramfs.debian import find_image
from cloudboot.paths import cache_dir
from cloudboot.run import run, which
from cloudboot.toolchain import apt

#: arch -> (Debian arch, suite, kernel metapackage). riscv64's trixie index is broken on this archive
#: (TOOLCHAIN-NOTES §6) and loong64 is only in sid; sid splits the image into linux-binary-<version>
#: (initramfs.debian.find_image knows both layouts).
KERNELS = {
    "x86_64": ("amd64", "trixie", "linux-image-amd64"),
    "aarch64": ("arm64", "trixie", "linux-image-arm64"),
    "riscv64": ("riscv64", "sid", "linux-image-riscv64"),
    "loongarch64": ("loong64", "sid", "linux-image-loong64"),
}
MARKER = "CLOUDBOOT-TEST-INITRD-OK"


def marker_init(marker: str, label: str = "cmdline") -> str:
    """A busybox /init that prints `marker`, then `<label>: <its /proc/cmdline>`, and powers off (the tests'
    proof that a kernel they handed over really ran, with the command line it got)."""
    return f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "{marker}"
echo "{label}: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""


INIT = marker_init(MARKER)


@dataclass(frozen=True)
class Guest:
    """A kernel (EFI stub image) and a test initrd for one arch."""

    arch: str
    kernel: Path
    initrd: Path
    version: str


def _apt(arch: str) -> apt.PrivateApt:
    debarch, suite, _ = KERNELS[arch]
    return apt.PrivateApt(f"{suite}-{debarch}", [suite], archs=[debarch])


def _resolve(pa: apt.PrivateApt, package: str) -> str:
    """The versioned package a metapackage depends on (linux-image-amd64 -> linux-image-6.12...-amd64)."""
    pa.update()
    out = subprocess.run(["apt-cache", "depends", package], env=pa.env(), capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split(": ", 1)[1]
    raise CloudBootError(f"cannot resolve {package} to a versioned kernel package (apt-cache depends: {out!r})")


def guest(arch: str) -> Guest:
    """Kernel + test initrd for arch, from the cache or downloaded now."""
    if arch not in KERNELS:
        raise CloudBootError(f"no test kernel for {arch}; have {', '.join(KERNELS)}")
    debarch, _, meta = KERNELS[arch]
    pa = _apt(arch)
    root = cache_dir() / "guests" / arch
    stamp = root / "ready"
    if not stamp.exists():
        which("dpkg-deb")
        which("cpio", "building the test initrd")
        shutil.rmtree(root, ignore_errors=True)
        image = _resolve(pa, meta)
        binary = image.replace("linux-image-", "linux-binary-", 1)
        has_binary = subprocess.run(["apt-cache", "show", binary], env=pa.env(), capture_output=True).returncode == 0
        debs = pa.download([binary if has_binary else image, "busybox-static"], root / "debs")
        for deb in debs:
            apt.extract_deb(deb, root / "tree")
        release = image.removeprefix("linux-image-")
        # the EFI stub PE (EFI zboot on loong64), in either package layout
        shutil.copyfile(find_image(root / "tree", release, binary if has_binary else image), root / "vmlinuz")
        (root / "version").write_text(release)
        initrd_tree = root / "initrd"
        (initrd_tree / "bin").mkdir(parents=True)
        (initrd_tree / "proc").mkdir()
        shutil.copyfile(root / "tree/usr/bin/busybox", initrd_tree / "bin/busybox")
        (initrd_tree / "bin/busybox").chmod(0o755)
        (initrd_tree / "init").write_text(INIT)
        (initrd_tree / "init").chmod(0o755)
        files = sorted(str(p.relative_to(initrd_tree)) for p in initrd_tree.rglob("*"))
        cpio = run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=initrd_tree, capture=True,
                   input_text="\n".join(files) + "\n")
        (root / "initrd.cpio").write_bytes(cpio.stdout)
        stamp.write_text(hashlib.sha256((root / "vmlinuz").read_bytes()).hexdigest())
    return Guest(arch, root / "vmlinuz", root / "initrd.cpio", (root / "version").read_text())
