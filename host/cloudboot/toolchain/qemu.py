"""QEMU able to run all four arches with EDK2, and the EDK2 2025.02 firmware for them.

Debian 13 (and newer) ships both. On Debian 12, QEMU 10 comes from bookworm-backports (installed through a
private apt config) and the arch-independent trixie firmware packages are unpacked into the cache, where
firmware discovery finds their QEMU descriptors.
"""

from __future__ import annotations

import re
import shutil

import arches
from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.run import run
from cloudboot.toolchain import apt

QEMU_PACKAGES = sorted({a.qemu_package for a in arches.ARCHES}) + ["qemu-utils"]
FIRMWARE_PACKAGES = [a.edk2_package for a in arches.ARCHES]
#: riscv64 and loongarch64 EDK2 in pflash need QEMU >= 9 (TOOLCHAIN-NOTES §2).
MIN_QEMU = (9, 0)


def firmware_root():
    """Where unpacked firmware packages live (each has usr/share/qemu/firmware/*.json)."""
    return cache_dir() / "firmware" / "root"


def qemu_version(binary: str) -> tuple[int, int] | None:
    """(major, minor) of an installed QEMU binary, or None when absent."""
    path = shutil.which(binary)
    if not path:
        return None
    out = run([path, "--version"], capture=True).stdout.decode()
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _qemu_ok() -> bool:
    versions = [qemu_version(a.qemu) for a in arches.ARCHES]
    return all(v is not None and v >= MIN_QEMU for v in versions) and shutil.which("qemu-img") is not None


def _firmware_ok() -> bool:
    from cloudboot.harness.firmware import find_firmware

    try:
        for arch in arches.NAMES:
            find_firmware(arch)
    except CloudBootError:
        return False
    return True


def ensure_qemu() -> None:
    """Install QEMU >= 9 for all four arches (backports on Debian 12) unless it is already there."""
    if _qemu_ok():
        return
    codename = apt.host_codename()
    if codename == "bookworm":
        bpo = apt.PrivateApt("bookworm-backports", ["bookworm", "bookworm-updates", "bookworm-backports"],
                             system_status=True)
        # opensbi: the riscv64 QEMU's default -bios is a symlink into it (TOOLCHAIN-NOTES §6).
        bpo.install([*QEMU_PACKAGES, "opensbi"], target_release="bookworm-backports")
    else:
        apt.system_install(QEMU_PACKAGES + ["opensbi"])
    if not _qemu_ok():
        have = ", ".join(f"{a.qemu} {qemu_version(a.qemu)}" for a in arches.ARCHES)
        raise CloudBootError(f"QEMU >= {MIN_QEMU[0]} for all four arches is still missing after install "
                             f"(have {have}); install {' '.join(QEMU_PACKAGES)} >= 9")


def ensure_firmware() -> None:
    """EDK2 for all four arches: the system's on Debian 13, trixie's packages unpacked into the cache on 12."""
    if _firmware_ok():
        return
    if apt.host_codename() not in ("bookworm",):
        apt.system_install(FIRMWARE_PACKAGES)
        if _firmware_ok():
            return
    trixie = apt.PrivateApt("trixie", ["trixie"])
    debs = trixie.download(FIRMWARE_PACKAGES, cache_dir() / "firmware" / "debs")
    root = firmware_root()
    for deb in debs:
        apt.extract_deb(deb, root)
    if not _firmware_ok():
        raise CloudBootError("EDK2 firmware descriptors still incomplete after unpacking "
                             f"{' '.join(FIRMWARE_PACKAGES)} into {root}")
