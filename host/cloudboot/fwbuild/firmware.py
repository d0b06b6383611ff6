"""Build BOOT<ARCH>.EFI: MicroPython's UEFI port cross-compiled by zig, modules frozen, ELF -> PE32+."""

from __future__ import annotations

import os
import re
from pathlib import Path

import arches
from cloudboot import __version__
from cloudboot.errors import CloudBootError
from cloudboot.fwbuild import elf2efi
from cloudboot.image.output import read_input, write_atomic
from cloudboot.image.pe import PeImage
from cloudboot.paths import PORT_DIR, ROOT, build_dir
from cloudboot.run import run, which
from cloudboot.toolchain import lwip, mbedtls, micropython, zig, zstd

#: Initial GC heap (MiB) unless HEAP_MB is given; the heap grows on demand from AllocatePages.
DEFAULT_HEAP_MB = 64


def firmware_dir() -> Path:
    """Where the BOOT<ARCH>.EFI files land."""
    return build_dir() / "firmware"


def build_epoch() -> int:
    """The TLS clock's floor: the builds' one SOURCE_DATE_EPOCH (image.clock.default_epoch: the environment's,
    else the last commit's time, so a rebuild on another day is bit-identical), else the start of today (UTC)."""
    from cloudboot.image.clock import default_epoch

    epoch, _ = default_epoch(ROOT)
    if epoch is not None:
        return epoch
    import time

    return int(time.time()) // 86400 * 86400


def build(arch: arches.Arch, *, heap_mb: int = DEFAULT_HEAP_MB, jobs: int | None = None) -> Path:
    """Build one arch's EFI application and return its path."""
    which("make")
    out_dir = firmware_dir()
    obj = out_dir / f"obj-{arch.name}"
    arch_cflags = " ".join([*arch.cflags])
    run(["make", "-C", PORT_DIR, f"-j{jobs or os.cpu_count() or 2}",
         f"MICROPY_DIR={micropython.source_dir()}", f"BUILD={obj}", f"ZIG={zig.zig_exe()}",
         f"ZIG_TARGET={arch.zig_target}", f"ARCH={arch.name}", f"ARCH_CFLAGS={arch_cflags}",
         f"MPY_CROSS={micropython.mpy_cross()}", f"ZSTD_DIR={zstd.source_dir()}", f"LWIP_DIR={lwip.source_dir()}",
         f"MBEDTLS_DIR={mbedtls.source_dir()}",
         f"CLOUDBOOT_VERSION={__version__}", f"HEAP_MB={heap_mb}", f"BUILD_EPOCH={build_epoch()}",
         "V=0"], quiet=True)
    efi = out_dir / arch.efi_name
    elf2efi.convert(obj / "firmware.elf", efi)
    return efi


#: Debian's `ca-certificates` bundle: the roots the firmware's TLS trusts unless --ca-file adds more.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def cosign_key_section(path: Path) -> bytes:
    """The `.cosign` section for a `cosign.pub`: the PEM itself, checked to be what the firmware verifies."""
    from oci.cosign import p256_point_from_pem

    pem = read_input(path, "--cosign-key")
    try:
        p256_point_from_pem(pem)
    except ValueError as exc:
        raise CloudBootError(f"--cosign-key {path}: {exc}") from None
    return pem


def ca_section(ca_files: list[Path], debian: bool = True) -> bytes:
    """The `.cacerts` section: every certificate of Debian's bundle (unless `debian` is False) and of
    `ca_files`, as concatenated DER (smaller than PEM and parsed without base64 in the firmware)."""
    import ssl

    sources = ([(CA_BUNDLE, "the ca-certificates bundle")] if debian else []) + [(f, "--ca-file") for f in ca_files]
    if debian and not CA_BUNDLE.is_file():
        raise CloudBootError(f"{CA_BUNDLE} is missing: apt-get install ca-certificates")
    out = bytearray()
    for path, what in sources:
        text = read_input(path, what).decode("ascii", "replace")
        blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
        if not blocks:
            raise CloudBootError(f"{what} {path}: no PEM CERTIFICATE block")
        for block in blocks:
            try:
                out += ssl.PEM_cert_to_DER_cert(block)
            except ValueError as exc:
                raise CloudBootError(f"{what} {path}: {exc}") from None
    return bytes(out)


def add_sections(efi: Path, cacerts: bytes, cosign_pem: bytes | None = None, out: Path | None = None) -> Path:
    """Append the netboot sections to a built image (`out`, default in place): `.cacerts` (TLS roots) and, with
    a key, `.cosign` (the verifier's key). An image that already has `.cacerts` gets it replaced."""
    new = [(".cacerts", cacerts)] + ([(".cosign", cosign_pem)] if cosign_pem else [])
    image = PeImage(read_input(efi, "firmware image"), str(efi)).append_sections(new, replace=(".cacerts",))
    write_atomic(out or efi, image)
    return out or efi
