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

import os
import struct
import zlib
from collections import namedtuple

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.kexec_segments import Allocator, Segment, initrd_and_dtb, parse_iomem, read, stage, up
from cloudboot.init.log import log

IMAGE_MAGIC = b"ARM\x64"
IMAGE_HEADER = struct.Struct("<II Q Q Q Q Q Q I I")  # code0 code1 text_offset image_size flags res2-4 magic res5
SZ_2M = 2 << 20
SZ_1G = 1 << 30
WINDOW = 32 << 30
GUNZIP_LIMIT = 512 << 20


class ImageHeader(namedtuple("ImageHeader", "text_offset image_size flags")):
    """The fields of an arm64 Image header that placement needs."""

    __slots__ = ()

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


class Plan(namedtuple("Plan", "entry kernel_entry dtb segments")):
    """What kexec_load gets: the entry (the purgatory), the kernel's entry, the DTB's address and the segments,
    in address order."""

    __slots__ = ()


def plan(image: bytes, initrd: bytes | None, cmdline: str, dtb: bytes, iomem: str, page: int = 4096,
         rand: bytes | None = None) -> Plan:
    """Lay out kernel, initrd, DTB and purgatory in free RAM (see the module docstring) and build the DTB."""
    hdr = parse_image_header(image)
    alloc = Allocator(parse_iomem(iomem), page)
    base, _ = alloc.take("kernel", hdr.text_offset + hdr.image_size, SZ_2M)
    kernel_entry = base + hdr.text_offset
    segments = [Segment("kernel", image, kernel_entry, up(hdr.image_size, page))]
    alloc.taken[-1] = (kernel_entry, kernel_entry + up(hdr.image_size, page))
    segments += initrd_and_dtb(alloc, initrd, cmdline, dtb, kernel_entry + up(hdr.image_size, page), rand)
    dtb_addr, memsz = segments[-1].mem, segments[-1].memsz
    stub = purgatory(dtb_addr, kernel_entry)
    entry, memsz = alloc.take("purgatory", len(stub), page, dtb_addr + memsz)
    segments.append(Segment("purgatory", stub, entry, memsz))
    window = base // SZ_1G * SZ_1G
    last = max(s.mem + s.memsz for s in segments)
    if last > window + WINDOW:
        raise InitError(f"kexec: kernel at {kernel_entry:#x} and initrd/DTB ending at {last:#x} do not fit one "
                        "32 GiB window (arm64 booting.rst)")
    return Plan(entry, kernel_entry, dtb_addr, segments)


def load(kernel: str, initrd: str | None, cmdline: str, image: bytes | None = None) -> Plan:
    """Stage `kernel` (raw or gzip'ed arm64 Image; `image`: its raw Image, already read) with kexec_load;
    InitError with the reason when refused."""
    image = image if image is not None else read_image(kernel)
    ramdisk = read(initrd, "initrd") if initrd else None
    dtb = read("/sys/firmware/fdt", "the running device tree (no /sys/firmware/fdt: an ACPI-only boot?)")
    iomem = read("/proc/iomem", "the memory map").decode(errors="replace")
    p = plan(image, ramdisk, cmdline, dtb, iomem, os.sysconf("SC_PAGE_SIZE"))
    stage(p.entry, p.segments, linux.KEXEC_ARCH_AARCH64)
    return p
