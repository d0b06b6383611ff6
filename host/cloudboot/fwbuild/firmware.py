"""Build BOOT<ARCH>.EFI: MicroPython's UEFI port cross-compiled by zig, modules frozen, ELF -> PE32+."""

from __future__ import annotations

import os
from pathlib import Path

import arches
from cloudboot import __version__
from cloudboot.fwbuild import elf2efi
from cloudboot.paths import PORT_DIR, build_dir
from cloudboot.run import run, which
from cloudboot.toolchain import micropython, zig, zstd

#: Initial GC heap (MiB) unless HEAP_MB is given; the heap grows on demand from AllocatePages.
DEFAULT_HEAP_MB = 64


def firmware_dir() -> Path:
    """Where the BOOT<ARCH>.EFI files land."""
    return build_dir() / "firmware"


def build(arch: arches.Arch, *, heap_mb: int = DEFAULT_HEAP_MB, jobs: int | None = None) -> Path:
    """Build one arch's EFI application and return its path."""
    which("make")
    out_dir = firmware_dir()
    obj = out_dir / f"obj-{arch.name}"
    arch_cflags = " ".join([*arch.cflags])
    run(["make", "-C", PORT_DIR, f"-j{jobs or os.cpu_count() or 2}",
         f"MICROPY_DIR={micropython.source_dir()}", f"BUILD={obj}", f"ZIG={zig.zig_exe()}",
         f"ZIG_TARGET={arch.zig_target}", f"ARCH={arch.name}", f"ARCH_CFLAGS={arch_cflags}",
         f"MPY_CROSS={micropython.mpy_cross()}", f"ZSTD_DIR={zstd.source_dir()}",
         f"CLOUDBOOT_VERSION={__version__}", f"HEAP_MB={heap_mb}",
         "V=0"], quiet=True)
    efi = out_dir / arch.efi_name
    elf2efi.convert(obj / "firmware.elf", efi)
    return efi
