"""Unified Kernel Images: a stub (our firmware, or systemd-stub) plus .osrel/.cmdline/.uname/.linux/.initrd
(and .dtb, .sbat, any other named section), laid out as systemd's ukify lays them out."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudboot.errors import CloudBootError
from cloudboot.image.pe import DLL_NX_COMPAT, PeImage

DEFAULT_OSREL = b"ID=cloud-boot\nNAME=cloud-boot\nVERSION_ID=1\n"
SBAT_HEADER = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md"
#: ukify's default UKI SBAT entry, used when no SBAT data is given.
STUB_SBAT = SBAT_HEADER + "\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n"


@dataclass
class UkiParts:
    """What goes into a UKI besides the stub. Text sections are stored verbatim (as ukify does)."""

    linux: bytes
    linux_name: str = "--linux"
    initrds: list[bytes] = field(default_factory=list)
    cmdline: bytes | None = None
    osrel: bytes | None = None
    uname: bytes | None = None
    devicetree: bytes | None = None
    sbat: bytes | None = None
    sbat_name: str = "--sbat"
    extra: list[tuple[str, bytes]] = field(default_factory=list)


def _sbat_lines(text: str) -> list[str] | None:
    lines = text.rstrip("\0").splitlines()
    if not lines or not lines[0].startswith("sbat,"):
        return None
    return lines[1:]


def merge_sbat(pes: list[PeImage], user: bytes | None, user_name: str) -> bytes:
    """ukify's SBAT merge: one `sbat,1` header, then the entries of the stub's and the kernel's .sbat and
    of the given SBAT data (ukify's `uki,1` line when none is given), NUL-terminated."""
    entries: list[str] = []
    for pe in pes:
        s = pe.section(".sbat")
        if s is not None:
            raw = bytes(pe.data[s.raw_offset:s.raw_offset + s.raw_size])
            lines = _sbat_lines(raw.decode("utf-8", "replace"))
            entries += lines or []
    if user is None:
        entries += _sbat_lines(STUB_SBAT) or []
    else:
        lines = _sbat_lines(user.decode("utf-8", "replace"))
        if lines is None:
            raise CloudBootError(f"{user_name}: not SBAT data (the first line must start with 'sbat,')")
        entries += lines
    return (SBAT_HEADER + "\n" + "\n".join(entries) + "\n\0").encode()


def join_initrds(initrds: list[bytes]) -> bytes:
    """Several initrds as one: each padded to 4 bytes, as the kernel's cpio unpacker needs between archives
    (ukify's rule; a single initrd is kept as it is)."""
    if len(initrds) == 1:
        return initrds[0]
    return b"".join(d + bytes(-len(d) % 4) for d in initrds)


def check_stub_code(stub: PeImage) -> None:
    """A CloudBootError naming the stub unless it has sections and its entry point lies in one of them: a UKI
    whose stub has no code for the firmware to run would be built, and signed, and never start."""
    sections = stub.sections()
    if not sections:
        raise CloudBootError(f"{stub.name}: the stub has no sections (no code for the firmware to run); give an EFI "
                             "stub, e.g. build/firmware/BOOTX64.EFI")
    if not any(s.vaddr <= stub.entry_point < s.vaddr + max(s.vsize, s.raw_size) for s in sections):
        raise CloudBootError(f"{stub.name}: the stub's entry point {stub.entry_point:#x} lies in none of its "
                             f"sections ({', '.join(s.name for s in sections)}): no code for the firmware to run")


def build_uki(stub_data: bytes, stub_name: str, parts: UkiParts) -> tuple[bytes, list[str]]:
    """The UKI image and the names of the sections it gained, in order (ukify's order: .osrel .cmdline .dtb
    .uname .linux .initrd, the extra sections, then .sbat)."""
    stub = PeImage(stub_data, stub_name)
    if stub.subsystem not in (10, 11, 12):
        raise CloudBootError(f"{stub_name}: subsystem {stub.subsystem} is not an EFI application")
    check_stub_code(stub)
    pes = [stub]
    clear = 0
    kernel = None
    if parts.linux[:2] == b"MZ":
        try:
            kernel = PeImage(parts.linux, parts.linux_name)
        except CloudBootError:
            pass  # not a PE32+ after all (ukify too goes on with such a kernel, without its PE checks)
    if kernel is not None:
        if kernel.machine != stub.machine:
            raise CloudBootError(f"{parts.linux_name}: kernel machine {kernel.machine:#06x} ({kernel.arch}) "
                                 f"does not match the stub's {stub.machine:#06x} ({stub.arch})")
        pes.append(kernel)
        if not kernel.dll_characteristics & DLL_NX_COMPAT:
            clear = DLL_NX_COMPAT  # ukify: the UKI may not claim NX compatibility its kernel lacks
    osrel = parts.osrel if parts.osrel is not None else DEFAULT_OSREL
    sections: list[tuple[str, bytes]] = [(".osrel", osrel)]
    for name, data in ((".cmdline", parts.cmdline), (".dtb", parts.devicetree), (".uname", parts.uname)):
        if data:
            sections.append((name, data))
    sections.append((".linux", parts.linux))
    if parts.initrds:
        sections.append((".initrd", join_initrds(parts.initrds)))
    sections += parts.extra
    sections.append((".sbat", merge_sbat(pes, parts.sbat, parts.sbat_name)))  # always, as ukify does
    if clear:
        stub = stub.with_dll_characteristics(clear)
    return stub.append_sections(sections, replace=(".sbat",)), [n for n, _ in sections]
