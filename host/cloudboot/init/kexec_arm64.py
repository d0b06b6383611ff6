"""kexec on arm64 kernels without kexec_file_load (Debian's: CONFIG_KEXEC=y, CONFIG_KEXEC_FILE unset).

The classic kexec_load(entry, nr_segments, segments, flags) only copies segments to physical addresses
and jumps to `entry` with the MMU off; everything else is ours to do (as kexec-tools does it for arm64):

* the kernel Image (Documentation/arch/arm64/booting.rst): Debian's vmlinuz is a gzip'ed Image; its
  64-byte header has text_offset (u64 LE at 8), image_size (u64 at 16, the memory it needs including
  BSS), flags (u64 at 24: bit 0 big-endian, bits 1-2 page size, bit 3 "may be placed anywhere") and the
  magic "ARM\\x64" at 56. It goes at a 2 MiB aligned base + text_offset in System RAM;
* the memory map comes from /proc/iomem: top-level "System RAM" minus everything nested in it (the running
  kernel, "reserved" memblock regions such as EFI tables, GIC LPI tables or the crash kernel window);
* the device tree: the running one (/sys/firmware/fdt: QEMU's for a direct -kernel boot, the EFI stub's
  for an EFI boot, carrying linux,uefi-* in /chosen) with /chosen rewritten: bootargs, linux,initrd-*,
  fresh kaslr-seed / rng-seed, and no crash-dump or IMA properties of the running kernel;
* a purgatory: arm64's relocate_kernel enters the new image with x0 = kimage->arch.dtb_mem, which only
  kexec_file_load sets (0 here), so the entry point is a 40-byte stub of ours that loads x0 = DTB address,
  zeroes x1..x3 (booting.rst: reserved, must be 0) and branches to the kernel.
Placement: kernel lowest fit, then initrd, DTB and purgatory above it, each page aligned, all within the
1 GiB aligned, 32 GiB window that booting.rst asks the initrd to share with the kernel.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import zlib
from dataclasses import dataclass

from cloudboot.init import fdt, linux
from cloudboot.init.errors import InitError
from cloudboot.init.log import log

IMAGE_MAGIC = b"ARM\x64"
IMAGE_HEADER = struct.Struct("<II Q Q Q Q Q Q I I")  # code0 code1 text_offset image_size flags res2-4 magic res5
SZ_2M = 2 << 20
SZ_1G = 1 << 30
WINDOW = 32 << 30
DTB_MAX = 2 << 20
KEXEC_SEGMENT_MAX = 16
#: Properties of the running kernel's /chosen that must not reach the next kernel.
CHOSEN_DROP = ("linux,elfcorehdr", "linux,usable-memory-range", "linux,ima-kexec-buffer",
               "linux,tpm-kexec-buffer")
RNG_SEED_SIZE = 128  # as the kernel's own kexec_file_load (arch/arm64/kernel/machine_kexec_file.c)
GUNZIP_LIMIT = 512 << 20


@dataclass(frozen=True)
class ImageHeader:
    """The fields of an arm64 Image header that placement needs."""

    text_offset: int
    image_size: int
    flags: int

    @property
    def page_size_kib(self) -> int | None:
        """The kernel's page size from flags bits 1-2 (None: unspecified)."""
        return {1: 4, 2: 16, 3: 64}.get((self.flags >> 1) & 3)


def parse_image_header(data: bytes) -> ImageHeader:
    """The header of the arm64 Image `data`; InitError when it is not a little-endian arm64 Image."""
    if len(data) < IMAGE_HEADER.size:
        raise InitError(f"arm64 Image: {len(data)} bytes is too short for the 64-byte header")
    _, _, text_offset, image_size, flags, _, _, _, magic, _ = IMAGE_HEADER.unpack_from(data)
    if struct.pack("<I", magic) != IMAGE_MAGIC:
        raise InitError(f"not an arm64 Image (no 'ARM\\x64' magic at 56; starts with {data[:8].hex()})")
    if flags & 1:
        raise InitError("arm64 Image is big-endian (flags bit 0); this loader only boots little-endian kernels")
    if image_size == 0:
        raise InitError("arm64 Image has image_size 0 (a kernel older than 3.17); cannot size its placement")
    if text_offset % 4096 or text_offset >= SZ_2M:
        raise InitError(f"arm64 Image text_offset {text_offset:#x} is not a page multiple below 2 MiB")
    if image_size < len(data):
        raise InitError(f"arm64 Image image_size {image_size:#x} is smaller than the file ({len(data):#x} bytes)")
    return ImageHeader(text_offset, image_size, flags)


def read_image(path: str) -> bytes:
    """The raw Image at `path`: as it is, or gunzipped (Debian's vmlinuz); EFI zboot is unwrapped before."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InitError(f"{path}: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = d.decompress(data, GUNZIP_LIMIT)
        except zlib.error as exc:
            raise InitError(f"{path}: gzip'ed kernel is corrupt: {exc}") from None
        if d.unconsumed_tail:
            raise InitError(f"{path}: gzip'ed kernel unpacks to more than {GUNZIP_LIMIT >> 20} MiB")
        if not d.eof:
            raise InitError(f"{path}: gzip'ed kernel is truncated")
        log(f"kexec: gunzipped arm64 Image {len(data)} -> {len(raw)} bytes")
        data = raw
    parse_image_header(data)
    return data


def parse_iomem(text: str) -> list[tuple[int, int]]:
    """Free RAM from /proc/iomem text: [start, end) ranges of top-level "System RAM" minus anything nested
    inside it, sorted. InitError if there is none (or all addresses read 0: not root)."""
    ram: list[tuple[int, int]] = []
    holes: list[tuple[int, int]] = []
    line_rx = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$")
    for line in text.splitlines():
        m = line_rx.match(line)
        if not m:
            continue
        start, end = int(m.group(2), 16), int(m.group(3), 16) + 1
        if m.group(1):
            holes.append((start, end))
        elif m.group(4).strip() == "System RAM":
            ram.append((start, end))
    if not ram or all(e <= 1 for _, e in ram):
        raise InitError("kexec: no System RAM in /proc/iomem (or its addresses are hidden: not root?)")
    free: list[tuple[int, int]] = []
    for start, end in sorted(ram):
        pieces = [(start, end)]
        for hs, he in holes:
            nxt = []
            for ps, pe in pieces:
                if he <= ps or hs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < hs:
                    nxt.append((ps, hs))
                if he < pe:
                    nxt.append((he, pe))
            pieces = nxt
        free.extend(p for p in pieces if p[1] > p[0])
    return sorted(free)


def _up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


@dataclass(frozen=True)
class Segment:
    """One kexec segment: what to copy, where (physical) and how much memory it covers (page multiple)."""

    name: str
    data: bytes
    mem: int
    memsz: int


class Allocator:
    """First fit in the free RAM ranges, never below `floor` and never overlapping what it gave before."""

    def __init__(self, free: list[tuple[int, int]], page: int) -> None:
        self.free = sorted(free)
        self.page = page
        self.taken: list[tuple[int, int]] = []

    def take(self, what: str, size: int, align: int, floor: int = 0) -> tuple[int, int]:
        """(address, page-rounded size) of the lowest fit; InitError when nothing fits."""
        memsz = _up(max(size, 1), self.page)
        align = max(align, self.page)
        for start, end in self.free:
            addr = _up(max(start, floor), align)
            while addr + memsz <= end:
                clash = [(s, e) for s, e in self.taken if s < addr + memsz and addr < e]
                if not clash:
                    self.taken.append((addr, addr + memsz))
                    return addr, memsz
                addr = _up(max(e for _, e in clash), align)
        ranges = ", ".join(f"{s:#x}-{e - 1:#x}" for s, e in self.free) or "none"
        raise InitError(f"kexec: no room for the {what} ({memsz:#x} bytes, {align:#x} aligned, above {floor:#x}) "
                        f"in free System RAM: {ranges}")


# AArch64 encodings (Arm ARM C6.2), little-endian words:
#   LDR Xt, <label>  (literal, 64-bit): 0x58000000 | imm19 << 5 | Rt, imm19 = (label - pc) / 4
#   MOV Xd, XZR      (ORR Xd, XZR, XZR, shifted register): 0xAA1F03E0 | Rd
#   BR Xn:           0xD61F0000 | Rn << 5


def ldr_literal(rt: int, offset: int) -> int:
    """LDR Xrt, [pc + offset] (offset a multiple of 4 within +-1 MiB)."""
    if offset % 4 or not -(1 << 20) <= offset < (1 << 20) or not 0 <= rt <= 30:
        raise ValueError(f"ldr_literal: bad operands x{rt}, {offset}")
    return 0x58000000 | ((offset // 4) & 0x7FFFF) << 5 | rt


def mov_zero(rd: int) -> int:
    """MOV Xrd, XZR."""
    return 0xAA1F03E0 | rd


def br(rn: int) -> int:
    """BR Xrn."""
    return 0xD61F0000 | rn << 5


def purgatory(dtb: int, kernel_entry: int) -> bytes:
    """The entry stub: x0 = dtb, x1 = x2 = x3 = 0, jump to kernel_entry (runs with the MMU off, so the
    code is position independent and its two literals follow it, 8-byte aligned)."""
    code = [ldr_literal(0, 0x18 - 0x00), ldr_literal(4, 0x20 - 0x04), mov_zero(1), mov_zero(2), mov_zero(3), br(4)]
    return struct.pack("<6I", *code) + struct.pack("<QQ", dtb, kernel_entry)


def edit_chosen(tree: fdt.Fdt, cmdline: str, initrd: tuple[int, int] | None,
                rand: bytes | None = None) -> None:
    """Rewrite /chosen of `tree` for the next kernel: bootargs (removed when empty: the kernel's built-in
    command line applies), linux,initrd-start/end = [start, end) or removed, crash/IMA leftovers removed,
    kaslr-seed and rng-seed fresh from `rand` (8 + RNG_SEED_SIZE bytes; default os.urandom)."""
    chosen = tree.root.ensure_child("chosen")
    if cmdline:
        chosen.set_str("bootargs", cmdline)
    else:
        chosen.props.pop("bootargs", None)
    if initrd:
        chosen.set_u64("linux,initrd-start", initrd[0])
        chosen.set_u64("linux,initrd-end", initrd[1])
    else:
        chosen.props.pop("linux,initrd-start", None)
        chosen.props.pop("linux,initrd-end", None)
    for p in CHOSEN_DROP:
        chosen.props.pop(p, None)
    rand = rand if rand is not None else os.urandom(8 + RNG_SEED_SIZE)
    if len(rand) != 8 + RNG_SEED_SIZE:
        raise InitError(f"edit_chosen: need {8 + RNG_SEED_SIZE} random bytes, got {len(rand)}")
    chosen.props["kaslr-seed"] = rand[:8]
    chosen.props["rng-seed"] = rand[8:]


@dataclass
class Plan:
    """What kexec_load gets: the entry (the purgatory) and the segments, in address order."""

    entry: int
    kernel_entry: int
    dtb: int
    segments: list[Segment]


def plan(image: bytes, initrd: bytes | None, cmdline: str, dtb: bytes, iomem: str, page: int = 4096,
         rand: bytes | None = None) -> Plan:
    """Lay out kernel, initrd, DTB and purgatory in free RAM (see the module docstring) and build the DTB."""
    hdr = parse_image_header(image)
    alloc = Allocator(parse_iomem(iomem), page)
    base, _ = alloc.take("kernel", hdr.text_offset + hdr.image_size, SZ_2M)
    kernel_entry = base + hdr.text_offset
    segments = [Segment("kernel", image, kernel_entry, _up(hdr.image_size, page))]
    alloc.taken[-1] = (kernel_entry, kernel_entry + _up(hdr.image_size, page))
    floor = kernel_entry + _up(hdr.image_size, page)
    initrd_range = None
    if initrd is not None:
        addr, memsz = alloc.take("initrd", len(initrd), page, floor)
        segments.append(Segment("initrd", initrd, addr, memsz))
        initrd_range = (addr, addr + len(initrd))
        floor = addr + memsz
    tree = fdt.parse(dtb)
    edit_chosen(tree, cmdline, initrd_range, rand)
    blob = fdt.serialize(tree)
    if len(blob) > DTB_MAX:
        raise InitError(f"kexec: the device tree is {len(blob)} bytes; arm64 kernels take at most 2 MiB")
    dtb_addr, memsz = alloc.take("device tree", len(blob), page, floor)
    segments.append(Segment("dtb", blob, dtb_addr, memsz))
    stub = purgatory(dtb_addr, kernel_entry)
    entry, memsz = alloc.take("purgatory", len(stub), page, dtb_addr + memsz)
    segments.append(Segment("purgatory", stub, entry, memsz))
    window = base // SZ_1G * SZ_1G
    last = max(s.mem + s.memsz for s in segments)
    if last > window + WINDOW:
        raise InitError(f"kexec: kernel at {kernel_entry:#x} and initrd/DTB ending at {last:#x} do not fit one "
                        "32 GiB window (arm64 booting.rst)")
    return Plan(entry, kernel_entry, dtb_addr, segments)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InitError(f"kexec: cannot read {what} {path}: {exc.strerror}") from None


def load(kernel: str, initrd: str | None, cmdline: str, image: bytes | None = None) -> Plan:
    """Stage `kernel` (raw or gzip'ed arm64 Image; `image`: its raw Image, already read) with kexec_load;
    InitError with the reason when refused."""
    image = image if image is not None else read_image(kernel)
    ramdisk = _read(initrd, "initrd") if initrd else None
    dtb = _read("/sys/firmware/fdt", "the running device tree (no /sys/firmware/fdt: an ACPI-only boot?)")
    iomem = _read("/proc/iomem", "the memory map").decode(errors="replace")
    p = plan(image, ramdisk, cmdline, dtb, iomem, os.sysconf("SC_PAGE_SIZE"))
    if len(p.segments) > KEXEC_SEGMENT_MAX:
        raise InitError(f"kexec: {len(p.segments)} segments (the kernel takes {KEXEC_SEGMENT_MAX})")
    for s in p.segments:
        log(f"kexec: segment {s.name:9} {s.mem:#014x}+{s.memsz:#x} ({len(s.data)} bytes)")
    try:
        linux.kexec_load(p.entry, [(s.data, s.mem, s.memsz) for s in p.segments], linux.KEXEC_ARCH_AARCH64)
    except OSError as exc:
        raise InitError(f"kexec_load(entry={p.entry:#x}, {len(p.segments)} segments) failed: {exc.strerror}"
                        + {errno.EPERM: " (not permitted: lockdown, kexec_load_disabled or no CAP_SYS_BOOT)",
                           errno.EBUSY: " (another kexec image is loaded, or CPUs are stuck in the kernel)",
                           errno.EINVAL: " (the kernel refused the segment layout or the arch flag)",
                           errno.EADDRNOTAVAIL: " (a segment lies outside usable RAM)",
                           errno.ENOMEM: " (not enough memory)"}.get(exc.errno or 0, "")) from None
    return p
