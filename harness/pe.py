"""Checks that a file is a PE32+ EFI image of the expected machine before QEMU is started with it."""

from __future__ import annotations

import struct
from pathlib import Path

from cloudboot.errors import CloudBootError

MACHINE_ARCH = {0x8664: "x86_64", 0xAA64: "aarch64", 0x5064: "riscv64", 0x6264: "loongarch64"}


def check_efi(path: Path, arch: str) -> None:
    """Raise CloudBootError saying why `path` cannot run as an EFI application on `arch`."""
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise CloudBootError(f"{path}: cannot read: {exc.strerror}") from None
    if head[:2] != b"MZ":
        raise CloudBootError(f"{path}: not a PE32+ image: no MZ header at offset 0")
    if len(head) < 0x40:
        raise CloudBootError(f"{path}: not a PE32+ image: truncated DOS header")
    (pe_off,) = struct.unpack_from("<I", head, 0x3C)
    if pe_off + 24 + 2 > len(head) or head[pe_off:pe_off + 4] != b"PE\0\0":
        raise CloudBootError(f"{path}: not a PE32+ image: no PE signature at offset {pe_off:#x}")
    (machine,) = struct.unpack_from("<H", head, pe_off + 4)
    (magic,) = struct.unpack_from("<H", head, pe_off + 24)
    if magic != 0x20B:
        raise CloudBootError(f"{path}: not a PE32+ image: optional header magic {magic:#x} (PE32+ is 0x20b)")
    if MACHINE_ARCH.get(machine) != arch:
        have = MACHINE_ARCH.get(machine, "unknown")
        raise CloudBootError(f"{path}: machine {machine:#06x} ({have}) does not match --arch {arch}")
    if pe_off + 24 + 70 <= len(head):
        (subsystem,) = struct.unpack_from("<H", head, pe_off + 24 + 68)
        if subsystem not in (10, 11, 12):
            raise CloudBootError(f"{path}: subsystem {subsystem} is not an EFI application or driver")
