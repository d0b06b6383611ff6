"""`cloud-boot deps`: install or check every external part (idempotent, safe to re-run)."""

from __future__ import annotations

import argparse

from cloudboot.run import which
from cloudboot.toolchain import apt, micropython, qemu, zig, zstd

#: Host tools the build and the tests call, with the Debian package of each.
HOST_PACKAGES = ["make", "gcc", "libc6-dev", "binutils", "dpkg-dev", "mtools", "dosfstools", "xorriso", "fdisk",
                 "e2fsprogs", "xfsprogs", "btrfs-progs", "cryptsetup-bin", "sbsigntool", "gdisk", "xz-utils", "zstd",
                 "cpio", "systemd-boot-efi", "genisoimage",  # image tests: Debian's systemd stub, isoinfo
                 "docker-registry", "apache2-utils", "curl",  # OCI tests: registry, htpasswd (bcrypt); bench: curl
                 "device-tree-compiler", "binutils-aarch64-linux-gnu"]  # arm64 kexec tests' oracles: dtc, objdump


def ensure_all(*, firmware_tests: bool = True) -> None:
    """Everything `make firmware` and `make test` need, installed once and then only checked."""
    apt.system_install(HOST_PACKAGES)
    print(f"zig: {zig.zig_exe()}")
    print(f"MicroPython {micropython.VERSION}: {micropython.source_dir()}")
    print(f"mpy-cross: {micropython.mpy_cross()}")
    print(f"libzstd {zstd.VERSION}: {zstd.source_dir()}")
    if firmware_tests:
        print(f"unix port: {micropython.unix_port()}")
        qemu.ensure_qemu()
        qemu.ensure_firmware()
        print(f"virt-fw-vars: {qemu.ensure_vars_tool()}")
        from cloudboot.harness.firmware import find_firmware

        for arch in qemu.ARCHES:
            fw = find_firmware(arch)
            print(f"{arch}: {which(f'qemu-system-{arch}')} QEMU {qemu.qemu_version(f'qemu-system-{arch}')}, "
                  f"firmware {fw.code}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deps", help="install/check the toolchain: MicroPython source, zig, QEMU, EDK2")
    p.add_argument("--no-qemu", action="store_true",
                   help="only what building needs: skip QEMU, EDK2 and the MicroPython unix port (tests)")
    p.set_defaults(func=lambda a: ensure_all(firmware_tests=not a.no_qemu))
