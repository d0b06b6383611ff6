"""kexec on LoongArch kernels without kexec_file_load (Linux 6.12 has none there; Debian's 7.2 loong64 kernel
leaves CONFIG_KEXEC_FILE unset).

The classic kexec_load copies segments to physical addresses; LoongArch's machine_kexec then enters the new
kernel at `entry` with a0 = the running kernel's EFI boot flag, a1 = the command line, a2 = the EFI system
table (arch/loongarch/kernel/machine_kexec.c). What a caller must provide, as kexec-tools does it:

* the kernel: the PE image (vmlinux.efi; an EFI zboot vmlinuz is unpacked before it gets here). Its header
  (arch/loongarch/kernel/head.S): "MZ" at 0, kernel_entry (u64 LE at 8: the entry's physical address; masked
  to 48 bits, as kexec-tools does, in case a kernel stores the virtual one), image_size (u64 at 16: the
  memory it needs, BSS included), load_offset (u64 at 24: PHYS_LINK_KADDR, where it is linked) and
  LINUX_PE_MAGIC at 0x38. It goes at load_offset, which lies under the running kernel: kexec copies it there
  at reboot, so only "inside System RAM" is checked, not "free".
* the command line: the segment whose bytes start with "kexec" (machine_kexec_prepare finds it by that prefix
  and copies COMMAND_LINE_SIZE bytes of it, so the buffer is padded to the largest size a kernel uses). The
  initrd is named on it as "initrd=<phys>,<size>", the generic early parameter. Linux 6.12's LoongArch
  COMMAND_LINE_SIZE is 512: a longer line would be cut, so it is refused.
Placement: the kernel at load_offset, then initrd and command line in free RAM above it, page aligned.
"""

from __future__ import annotations

import os
import struct
from collections import namedtuple

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.kexec_segments import Allocator, Segment, map_file, parse_iomem, read, stage, system_ram, up

LINUX_PE_MAGIC = 0x818223CD
HEADER = struct.Struct("<2s6x Q Q Q 24x I")  # MZ, kernel_entry, image_size, load_offset, LINUX_PE_MAGIC at 0x38
PHYS_MASK = (1 << 48) - 1
CMDLINE_PREFIX = "kexec "
#: machine_kexec_prepare copies COMMAND_LINE_SIZE bytes from the segment: 512 in 6.12, 4096 in later kernels.
CMDLINE_BUFFER = 4096
CMDLINE_MAX = 512


class Header(namedtuple("Header", "kernel_entry image_size load_offset")):
    """The fields of a LoongArch kernel image header that placement needs."""

    __slots__ = ()


def parse_header(data: bytes) -> Header:
    """The header of the LoongArch PE kernel image `data`; InitError when it is not one."""
    if len(data) < HEADER.size:
        raise InitError(f"LoongArch kernel: {len(data)} bytes is too short for the 64-byte image header")
    mz, entry, image_size, load_offset, magic = HEADER.unpack_from(data)
    if mz != b"MZ" or magic != LINUX_PE_MAGIC:
        raise InitError("not a LoongArch EFI kernel image (no MZ and Linux PE magic at 0x38; starts with "
                        f"{data[:8].hex()})")
    entry &= PHYS_MASK
    if not image_size or load_offset % 4096:
        raise InitError(f"LoongArch kernel header is inconsistent: image_size {image_size:#x}, load offset "
                        f"{load_offset:#x} (want a size and a page-aligned offset)")
    if not load_offset <= entry < load_offset + image_size:
        raise InitError(f"LoongArch kernel entry {entry:#x} lies outside the image "
                        f"({load_offset:#x}+{image_size:#x})")
    return Header(entry, image_size, load_offset)


class Plan(namedtuple("Plan", "entry cmdline segments")):
    """What kexec_load gets: the entry (the kernel's, physical), the command line and the segments, in address
    order."""

    __slots__ = ()


def plan(image: bytes | memoryview, initrd: bytes | memoryview | None, cmdline: str, iomem: str,
         page: int = 4096) -> Plan:
    """Lay out kernel, initrd and command line (see the module docstring)."""
    hdr = parse_header(image)
    kernel_end = hdr.load_offset + up(hdr.image_size, page)
    if not any(s <= hdr.load_offset and kernel_end <= e for s, e in system_ram(iomem)):
        raise InitError(f"kexec: the kernel's place {hdr.load_offset:#x}-{kernel_end - 1:#x} (its link address) "
                        "is not inside System RAM")
    alloc = Allocator(parse_iomem(iomem), page)
    alloc.taken.append((hdr.load_offset, kernel_end))
    # what lies past image_size in the file (an appended signature) is not loaded, as kexec-tools does it
    segments = [Segment("kernel", image[:hdr.image_size], hdr.load_offset, kernel_end - hdr.load_offset)]
    line = CMDLINE_PREFIX + cmdline
    if initrd is not None:
        addr, memsz = alloc.take("initrd", len(initrd), page, kernel_end)
        segments.append(Segment("initrd", initrd, addr, memsz))
        line += f" initrd={addr:#x},{len(initrd):#x}"
    raw = line.encode()
    if len(raw) >= CMDLINE_MAX:
        raise InitError(f"kexec: the command line is {len(raw)} bytes with what LoongArch's kexec adds; Linux 6.12 "
                        f"takes at most {CMDLINE_MAX - 1}")
    addr, memsz = alloc.take("command line", CMDLINE_BUFFER, page, kernel_end)
    segments.append(Segment("cmdline", raw.ljust(CMDLINE_BUFFER, b"\0"), addr, memsz))
    return Plan(hdr.kernel_entry, line, sorted(segments, key=lambda s: s.mem))


def load(kernel: str, initrd: str | None, cmdline: str) -> Plan:
    """Stage the LoongArch PE kernel at `kernel` with kexec_load; InitError with the reason when refused."""
    p = plan(map_file(kernel, "the kernel"), map_file(initrd, "initrd") if initrd else None, cmdline,
             read("/proc/iomem", "the memory map").decode(errors="replace"), os.sysconf("SC_PAGE_SIZE"))
    stage(p.entry, p.segments, linux.KEXEC_ARCH_LOONGARCH)
    return p
