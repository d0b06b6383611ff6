"""ELF static-PIE -> PE32+ EFI application, written from the ELF and PE/COFF specifications.

zig links the firmware as an ET_DYN static PIE whose only dynamic relocations are R_*_RELATIVE. UEFI loads
PE32+ images: each PT_LOAD segment becomes a page-aligned section with the segment's permissions, every
RELATIVE relocation becomes an IMAGE_REL_BASED_DIR64 entry in `.reloc` (the 64-bit word in the image holds
the ELF addend, i.e. the address at image base 0), and the headers get the sizes and checksum a loader checks.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.image.pe import pe_checksum

PAGE = 0x1000
FILE_ALIGN = 0x200
MAX_IMAGE = 256 << 20  # an EFI application's loaded size; anything bigger is a corrupt header

PT_LOAD, PT_DYNAMIC = 1, 2
SHF_ALLOC = 2
#: Section types only the dynamic linker reads (notes, symbols, hashes, relocations): not loaded into the PE.
LINKER_ONLY = {3, 4, 5, 6, 7, 9, 11, 19, 0x6FFFFFF6, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF}
PF_X, PF_W = 1, 2
DT_NULL, DT_RELA, DT_RELASZ, DT_RELAENT, DT_REL, DT_RELR, DT_TEXTREL = 0, 7, 8, 9, 17, 36, 22

SCN_CODE, SCN_IDATA = 0x20, 0x40
SCN_DISCARDABLE, SCN_EXEC, SCN_READ, SCN_WRITE = 0x02000000, 0x20000000, 0x40000000, 0x80000000


class Elf2EfiError(CloudBootError):
    """The ELF cannot become a UEFI image; the message names the file and the reason."""


@dataclass
class Section:
    """One PE section: name, page-aligned RVA, loaded size, bytes stored in the file, characteristics."""

    name: bytes
    rva: int
    vsize: int
    data: bytes
    flags: int
    raw_offset: int = field(default=0)


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


class _Elf:
    """The few ELF64 little-endian structures the conversion needs, read with bounds checks."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise Elf2EfiError(f"{name}: not an ELF file (no \\x7fELF magic at offset 0)")
        if data[4] != 2 or data[5] != 1:
            raise Elf2EfiError(f"{name}: only 64-bit little-endian ELF is supported (class {data[4]}, "
                               f"data {data[5]})")
        (self.type, self.machine, _, self.entry, self.phoff, self.shoff, _, _, self.phentsize,
         self.phnum, self.shentsize, self.shnum) = struct.unpack_from("<HHIQQQIHHHHH", data, 16)
        if self.type != 3:
            raise Elf2EfiError(f"{name}: e_type {self.type} is not ET_DYN: link with -static-pie so the image "
                               "can be relocated")
        self.arch = arches.find("elf_machine", self.machine)
        if self.arch is None:
            raise Elf2EfiError(f"{name}: e_machine {self.machine} is not one of "
                               f"{', '.join(f'{a.elf_machine} ({a.name})' for a in arches.ARCHES)}")
        if self.phentsize != 56 or self.phoff + 56 * self.phnum > len(data):
            raise Elf2EfiError(f"{name}: program headers at offset {self.phoff:#x} run past the end of the file")
        self.phdrs = [struct.unpack_from("<IIQQQQQQ", data, self.phoff + 56 * i) for i in range(self.phnum)]
        for p_type, _, off, vaddr, _, filesz, memsz, _ in self.phdrs:
            if p_type in (PT_LOAD, PT_DYNAMIC) and (off + filesz > len(data) or filesz > memsz):
                raise Elf2EfiError(f"{name}: segment at vaddr {vaddr:#x} (file offset {off:#x}, {filesz} bytes) "
                                   "is truncated or malformed")

    def runtime_start(self) -> int:
        """Lowest address the program itself uses: the first allocated section that is not linker-only
        metadata (the ELF header, .dynsym, .rela.dyn... at the start of the image are left out)."""
        first = min(p[3] for p in self.phdrs if p[0] == PT_LOAD)
        if self.shentsize != 64 or not self.shnum or self.shoff + 64 * self.shnum > len(self.data):
            return first
        starts = []
        for i in range(self.shnum):
            _, sh_type, flags, addr, _, size = struct.unpack_from("<IIQQQQ", self.data, self.shoff + 64 * i)
            if flags & SHF_ALLOC and sh_type not in LINKER_ONLY and size:
                starts.append(addr)
        return max(first, min(starts)) if starts else first

    def loads(self) -> list[tuple[int, int, int, int, int]]:
        """PT_LOAD segments as (flags, offset, vaddr, filesz, memsz), sorted by address."""
        segs = sorted((p[3], p[1], p[2], p[5], p[6]) for p in self.phdrs if p[0] == PT_LOAD)
        return [(f, o, v, fs, ms) for v, f, o, fs, ms in segs]

    def vaddr_to_offset(self, vaddr: int, size: int) -> int:
        for p_type, _, off, va, _, filesz, _, _ in self.phdrs:
            if p_type == PT_LOAD and va <= vaddr and vaddr + size <= va + filesz:
                return off + vaddr - va
        raise Elf2EfiError(f"{self.name}: address {vaddr:#x} is not inside any loaded segment")

    def dynamic(self) -> dict[int, int]:
        dyn = [p for p in self.phdrs if p[0] == PT_DYNAMIC]
        if not dyn:
            return {}
        _, _, off, _, _, filesz, _, _ = dyn[0]
        tags: dict[int, int] = {}
        for i in range(0, filesz - 15, 16):
            tag, val = struct.unpack_from("<qQ", self.data, off + i)
            if tag == DT_NULL:
                break
            tags[tag] = val
        return tags

    def relative_relocs(self) -> list[tuple[int, int]]:
        """(offset, addend) of every dynamic relocation, refusing anything but R_*_RELATIVE."""
        tags = self.dynamic()
        for tag, what in ((DT_REL, "REL"), (DT_RELR, "RELR"), (DT_TEXTREL, "TEXTREL")):
            if tag in tags:
                raise Elf2EfiError(f"{self.name}: DT_{what} relocations are not supported (expected RELA only)")
        if DT_RELA not in tags:
            return []
        size, ent = tags.get(DT_RELASZ, 0), tags.get(DT_RELAENT, 24)
        if ent != 24:
            raise Elf2EfiError(f"{self.name}: DT_RELAENT is {ent}, expected 24")
        base = self.vaddr_to_offset(tags[DT_RELA], size)
        relative = self.arch.elf_relative
        out = []
        for i in range(0, size, 24):
            r_offset, r_info, r_addend = struct.unpack_from("<QQq", self.data, base + i)
            if r_info & 0xFFFFFFFF != relative or r_info >> 32:
                raise Elf2EfiError(f"{self.name}: relocation type {r_info & 0xFFFFFFFF} (symbol {r_info >> 32}) "
                                   f"at {r_offset:#x} is not R_*_RELATIVE; only position-independent, "
                                   "self-contained code can become an EFI image")
            out.append((r_offset, r_addend))
        return out


def _sections(elf: _Elf) -> tuple[list[Section], list[tuple[int, int]], int]:
    """Page-aligned sections from the PT_LOAD segments with the relocation addends applied; also the
    relocations and entry point in PE terms.

    RVA = ELF address + shift: when the program's first bytes sit in the first page, which the PE headers
    occupy, the whole image moves up one page (it is position-independent; the addends move with it)."""
    loads = elf.loads()
    if not loads:
        raise Elf2EfiError(f"{elf.name}: no PT_LOAD segments")
    start = elf.runtime_start() & ~(PAGE - 1)
    shift = PAGE if start < PAGE else 0
    relocs = [(o + shift, a + shift) for o, a in elf.relative_relocs()]
    end = max(v + ms for _, _, v, _, ms in loads) + shift
    if end > MAX_IMAGE:
        raise Elf2EfiError(f"{elf.name}: segments span {end:#x} bytes, more than an EFI image can be "
                           f"({MAX_IMAGE >> 20} MiB)")
    image = bytearray(_align(end, PAGE))
    for _, off, v, fs, _ in loads:
        image[v + shift:v + shift + fs] = elf.data[off:off + fs]
    for r_offset, addend in relocs:
        if r_offset + 8 > len(image) or r_offset < start + shift:
            raise Elf2EfiError(f"{elf.name}: relocation at {r_offset - shift:#x} is outside the loaded image")
        struct.pack_into("<q", image, r_offset, addend)

    # Merge neighbouring segments with the same permissions.
    groups: list[list] = []
    for flags, _, v, fs, ms in loads:
        perm, lo = flags & (PF_X | PF_W), max(v & ~(PAGE - 1), start) + shift
        if groups and groups[-1][0] == perm:
            groups[-1][2], groups[-1][3] = v + ms + shift, v + fs + shift
            continue
        if groups and lo < groups[-1][2]:
            raise Elf2EfiError(f"{elf.name}: segment at {v:#x} shares a page with the previous one; "
                               "link with -z max-page-size=4096")
        groups.append([perm, lo, v + ms + shift, v + fs + shift])

    sections = []
    names = {PF_X: b".text", PF_W: b".data", 0: b".rdata", PF_X | PF_W: b".text"}
    for perm, lo, mem_end, file_end in groups:
        if lo >= mem_end:
            continue
        flags = SCN_READ | (SCN_CODE | SCN_EXEC if perm & PF_X else SCN_IDATA) | (SCN_WRITE if perm & PF_W else 0)
        # Relocated words past the file-backed end (in .bss) must be stored too.
        stored_end = max([file_end] + [o + 8 for o, _ in relocs if lo <= o < mem_end])
        data = bytes(image[lo:max(lo, stored_end)]).rstrip(b"\0")
        sections.append(Section(names[perm], lo, mem_end - lo, data, flags))
    return sections, relocs, elf.entry + shift


def _reloc_section(relocs: list[tuple[int, int]], rva: int) -> Section:
    """IMAGE_BASE_RELOCATION blocks, one per 4 KiB page, of DIR64 (type 10) entries."""
    pages: dict[int, list[int]] = {}
    for offset, _ in sorted(relocs):
        pages.setdefault(offset & ~(PAGE - 1), []).append(offset & (PAGE - 1))
    out = bytearray()
    for page, offsets in sorted(pages.items()):
        entries = [(10 << 12) | o for o in offsets]
        if len(entries) % 2:
            entries.append(0)  # IMAGE_REL_BASED_ABSOLUTE pads the block to 4 bytes
        out += struct.pack("<II", page, 8 + 2 * len(entries)) + struct.pack(f"<{len(entries)}H", *entries)
    return Section(b".reloc", rva, len(out), bytes(out), SCN_IDATA | SCN_READ | SCN_DISCARDABLE)


def convert_bytes(data: bytes, name: str = "<elf>", *, subsystem: int = 10) -> bytes:
    """The PE32+ image for an ELF static PIE given as bytes."""
    try:
        elf = _Elf(data, name)
        sections, relocs, entry = _sections(elf)
    except struct.error as exc:
        raise Elf2EfiError(f"{name}: truncated ELF structure ({exc})") from None
    last = sections[-1]
    sections.append(_reloc_section(relocs, _align(last.rva + last.vsize, PAGE)))

    pe_off = 0x80
    opt_size = 240
    headers_size = _align(pe_off + 24 + opt_size + 40 * len(sections), FILE_ALIGN)
    offset = headers_size
    for s in sections:
        s.raw_offset = offset if s.data else 0
        offset += _align(len(s.data), FILE_ALIGN)
    size_of_image = _align(sections[-1].rva + sections[-1].vsize, PAGE)
    code = [s for s in sections if s.flags & SCN_CODE]
    if not code:
        raise Elf2EfiError(f"{name}: no executable segment")
    if not any(s.rva <= entry < s.rva + s.vsize for s in code):
        raise Elf2EfiError(f"{name}: entry point {elf.entry:#x} is not inside an executable section")

    out = bytearray(offset)
    out[0:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, pe_off)
    out[pe_off:pe_off + 4] = b"PE\0\0"
    # Characteristics: EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE | DEBUG_STRIPPED
    struct.pack_into("<HHIIIHH", out, pe_off + 4, elf.arch.pe_machine, len(sections), 0, 0, 0, opt_size, 0x0222)
    opt = pe_off + 24
    size_code = sum(_align(len(s.data), FILE_ALIGN) for s in code)
    size_idata = sum(_align(len(s.data), FILE_ALIGN) for s in sections if not s.flags & SCN_CODE)
    struct.pack_into("<HBBIIIII", out, opt, 0x20B, 0, 0, size_code, size_idata, 0, entry, code[0].rva)
    struct.pack_into(
        "<QIIHHHHHHIIIIHHQQQQII", out, opt + 24,
        0,                      # ImageBase: the ELF was linked at 0
        PAGE, FILE_ALIGN,
        0, 0, 0, 0, 0, 0,       # OS, image and subsystem versions
        0,                      # Win32VersionValue
        size_of_image, headers_size,
        0,                      # CheckSum, filled below
        subsystem,
        0x0160,                 # DllCharacteristics: HIGH_ENTROPY_VA | DYNAMIC_BASE | NX_COMPAT
        0x100000, 0x10000, 0x100000, 0x1000,
        0, 16,
    )
    reloc = sections[-1]
    struct.pack_into("<II", out, opt + 112 + 5 * 8, reloc.rva, reloc.vsize)
    sh = opt + opt_size
    for i, s in enumerate(sections):
        struct.pack_into("<8sIIIIIIHHI", out, sh + 40 * i, s.name, s.vsize, s.rva,
                         _align(len(s.data), FILE_ALIGN), s.raw_offset, 0, 0, 0, 0, s.flags)
        out[s.raw_offset:s.raw_offset + len(s.data)] = s.data
    struct.pack_into("<I", out, opt + 64, pe_checksum(out, opt + 64))
    return bytes(out)


def convert(elf_path: str | Path, efi_path: str | Path, *, subsystem: int = 10) -> None:
    """Convert elf_path to a PE32+ image at efi_path (written atomically: never a half-written file)."""
    elf_path, efi_path = Path(elf_path), Path(efi_path)
    try:
        data = elf_path.read_bytes()
    except OSError as exc:
        raise Elf2EfiError(f"{elf_path}: cannot read: {exc.strerror}") from None
    image = convert_bytes(data, str(elf_path), subsystem=subsystem)
    efi_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=efi_path.parent, prefix=f".{efi_path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(image)
        os.chmod(tmp, 0o644)
        os.replace(tmp, efi_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
