"""Build BOOT<ARCH>.EFI: MicroPython's UEFI port cross-compiled by zig, modules frozen, ELF -> PE32+."""

from __future__ import annotations

import os
from pathlib import Path

from cloudboot import __version__
from cloudboot.fwbuild import elf2efi
from cloudboot.fwbuild.cross import Target, arches
from cloudboot.paths import PORT_DIR, build_dir
from cloudboot.run import run, which
from cloudboot.toolchain import lwip, mbedtls, micropython, zig, zstd

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
         f"MBEDTLS_DIR={mbedtls.source_dir()}",
         f"CLOUDBOOT_VERSION={__version__}", f"HEAP_MB={heap_mb}",
         "V=0"], quiet=True)
    efi = out_dir / target.efi_name
    elf2efi.convert(obj / "firmware.elf", efi)
    return efi


def cosign_key_section(path: Path) -> bytes:
    """The `.cosign` section for a `cosign.pub`: the PEM itself, checked to be what the firmware verifies."""
    from cloudboot.errors import CloudBootError
    from cloudboot.image.output import read_input
    from oci.cosign import p256_point_from_pem

    pem = read_input(path, "--cosign-key")
    try:
        p256_point_from_pem(pem)
    except ValueError as exc:
        raise CloudBootError(f"--cosign-key {path}: {exc}") from None
    return pem


def add_cosign_key(efi: Path, pem: bytes) -> None:
    """Append the `.cosign` section (the netboot verifier's key) to a built firmware image."""
    from cloudboot.image.output import write_atomic
    from cloudboot.image.pe import PeImage

    write_atomic(efi, PeImage(efi.read_bytes(), str(efi)).append_sections([(".cosign", pem)]))


def build_all(spec: str, **kw) -> list[Path]:
    """Build every arch in spec ('all' or a comma list); returns the EFI paths."""
    targets = arches(spec)  # validates the names before any work starts
    return [build(t, **kw) for t in targets]


