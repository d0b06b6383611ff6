"""Everything building and testing need, installed once and then only checked (`cloud-boot deps`)."""

from __future__ import annotations

import arches
from cloudboot.run import which
from cloudboot.toolchain import apt, lwip, mbedtls, micropython, qemu, zig, zstd

#: Host tools the build and the tests call, with the Debian package of each.
HOST_PACKAGES = ["make", "gcc", "libc6-dev", "binutils", "dpkg-dev", "mtools", "dosfstools", "xorriso", "fdisk",
                 "e2fsprogs", "xfsprogs", "btrfs-progs", "cryptsetup-bin", "sbsigntool", "gdisk", "xz-utils", "zstd",
                 "lz4", "cpio", "systemd-boot-efi", "genisoimage",  # image tests: Debian's systemd stub, isoinfo
                 "docker-registry", "apache2-utils", "curl",  # OCI tests: registry, htpasswd (bcrypt); bench: curl
                 "device-tree-compiler", "binutils-aarch64-linux-gnu",  # arm64 kexec tests' oracles: dtc, objdump
                 "dmg2img", "7zip",  # UDIF oracles (7-Zip: 7zz on Debian 12, 7z on 13)
                 "ca-certificates", "ipxe",  # the firmware's TLS roots; bench_netboot's reference (ipxe.efi)
                 "zfs-fuse",  # ZFS test pools (userspace ZFS, pool version 23; main in Debian 12 and 13)
                 "dnsmasq-base", "iproute2",  # the TAP test (Path D against Linux's own stack): DHCP, ip netns
                 "debootstrap"]  # the trixie chroot that builds OpenZFS (zfs-dkms) for the OpenZFS test pools


def ensure_all(*, firmware_tests: bool = True) -> None:
    """Everything `make firmware` and `make test` need, installed once and then only checked; prints where
    each part is."""
    apt.system_install(HOST_PACKAGES)
    print(f"zig: {zig.zig_exe()}")
    print(f"MicroPython {micropython.VERSION}: {micropython.source_dir()}")
    print(f"mpy-cross: {micropython.mpy_cross()}")
    print(f"libzstd {zstd.VERSION}: {zstd.source_dir()}")
    print(f"lwIP {lwip.VERSION}: {lwip.source_dir()}")
    print(f"Mbed TLS {mbedtls.VERSION}: {mbedtls.source_dir()}")
    if firmware_tests:
        print(f"unix port: {micropython.unix_port()}")
        qemu.ensure_qemu()
        qemu.ensure_firmware()
        print(f"virt-fw-vars: {qemu.ensure_vars_tool()}")
        from cloudboot.harness.firmware import find_firmware

        for arch in arches.ARCHES:
            fw = find_firmware(arch.name)
            print(f"{arch.name}: {which(arch.qemu)} QEMU {qemu.qemu_version(arch.qemu)}, firmware {fw.code}")
