"""Build BOOT<ARCH>.EFI: MicroPython's UEFI port cross-compiled by zig, modules frozen, ELF -> PE32+."""

from __future__ import annotations

import os
from pathlib import Path

from cloudboot import __version__
from cloudboot.fwbuild import elf2efi
from cloudboot.fwbuild.cross import Target, arches
from cloudboot.paths import PORT_DIR, build_dir
from cloudboot.run import run, which
from cloudboot.toolchain import lwip, micropython, zig, zstd

#: Initial GC heap (MiB) unless HEAP_MB is given; the heap grows on demand from AllocatePages.
DEFAULT_HEAP_MB = 64


def firmware_dir() -> Path:
    """Where the BOOT<ARCH>.EFI files land."""
    return build_dir() / "firmware"


def build(target: Target, *, heap_mb: int = DEFAULT_HEAP_MB, jobs: int | None = None) -> Path:
    """Build one arch's EFI application and return its path."""
    which("make")
    out_dir = firmware_dir()
    obj = out_dir / f"obj-{target.arch}"
    arch_cflags = " ".join([*target.cflags])
    run(["make", "-C", PORT_DIR, f"-j{jobs or os.cpu_count() or 2}",
         f"MICROPY_DIR={micropython.source_dir()}", f"BUILD={obj}", f"ZIG={zig.zig_exe()}",
         f"ZIG_TARGET={target.zig_target}", f"ARCH={target.arch}", f"ARCH_CFLAGS={arch_cflags}",
         f"MPY_CROSS={micropython.mpy_cross()}", f"ZSTD_DIR={zstd.source_dir()}", f"LWIP_DIR={lwip.source_dir()}",
         f"CLOUDBOOT_VERSION={__version__}", f"HEAP_MB={heap_mb}",
         "V=0"], quiet=True)
    efi = out_dir / target.efi_name
    elf2efi.convert(obj / "firmware.elf", efi)
    return efi


def build_all(spec: str, **kw) -> list[Path]:
    """Build every arch in spec ('all' or a comma list); returns the EFI paths."""
    targets = arches(spec)  # validates the names before any work starts
    return [build(t, **kw) for t in targets]


