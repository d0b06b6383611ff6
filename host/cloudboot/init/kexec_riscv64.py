"""kexec on riscv64 kernels without kexec_file_load (sid's 7.2 kernel: CONFIG_KEXEC_FILE unset).

riscv's machine_kexec (arch/riscv/kernel/machine_kexec.c) enters the new kernel at `entry` with a0 = the
hart id and a1 = the physical address of the first segment whose bytes start with a valid FDT header; it
needs nothing else, so the loader passes (as kexec-tools does it):

* the Image (Documentation/arch/riscv/boot-image-header.rst): image_size (u64 LE at 16, the memory it needs,
  BSS included), "RISCV\\0\\0\\0" at 48 and "RSC\\x05" at 56. It goes at the lowest 2 MiB aligned fit in free
  RAM (RV64 kernels map themselves wherever they are, at PMD alignment, as the EFI stub places them) and is
  entered at its first byte, which is code in an EFI-stub Image too;
* the initrd, page aligned above the 2 MiB boundary that ends the kernel's own reservation;
* the running device tree (/sys/firmware/fdt: QEMU's on a direct boot, the EFI stub's on an EFI boot) with
  /chosen rewritten as on arm64 (kexec_segments.edit_chosen).
"""

from __future__ import annotations

import os
import struct

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.kexec_segments import Allocator, Segment, initrd_and_dtb, map_file, parse_iomem, read, stage, up

RISCV_MAGIC = b"RISCV\0\0\0"
RISCV_MAGIC2 = b"RSC\x05"
SZ_2M = 2 << 20


def image_size(head: bytes | memoryview) -> int:
    """The memory the RISC-V Image whose first 64 bytes are `head` needs; InitError when it is not one."""
    if len(head) < 64 or head[48:56] != RISCV_MAGIC or head[56:60] != RISCV_MAGIC2:
        from cloudboot.init.kexec import describe

        raise InitError(f"not a RISC-V Image (no 'RISCV' and 'RSC\\x05' magic at 48 and 56): {describe(head)}")
    size = struct.unpack_from("<Q", head, 16)[0]
    if not size:
        raise InitError("RISC-V Image has image_size 0: cannot size its placement")
    return size


def plan(image: bytes | memoryview, initrd: bytes | memoryview | None, cmdline: str, dtb: bytes, iomem: str,
         page: int = 4096, rand: bytes | None = None) -> tuple[int, list[Segment]]:
    """(entry, segments in address order): kernel, initrd and the edited device tree (module docstring)."""
    size = max(image_size(image[:64]), len(image))
    alloc = Allocator(parse_iomem(iomem), page)
    base, memsz = alloc.take("kernel", size, SZ_2M)
    segments = [Segment("kernel", image, base, memsz)]
    # the kernel reserves itself up to the next 2 MiB (STRICT_KERNEL_RWX maps it read-only by PMD): an initrd
    # starting below that boundary is refused at boot ("INITRD: ... overlaps in-use memory region")
    floor = up(base + memsz, SZ_2M)
    alloc.taken[-1] = (base, floor)
    return base, segments + initrd_and_dtb(alloc, initrd, cmdline, dtb, floor, rand)


def load(kernel: str, initrd: str | None, cmdline: str) -> int:
    """Stage the RISC-V Image at `kernel` with kexec_load; the entry; InitError with the reason when refused."""
    entry, segments = plan(map_file(kernel, "the kernel"), map_file(initrd, "initrd") if initrd else None, cmdline,
                           read("/sys/firmware/fdt", "the running device tree (no /sys/firmware/fdt?)"),
                           read("/proc/iomem", "the memory map").decode(errors="replace"),
                           os.sysconf("SC_PAGE_SIZE"))
    stage(entry, segments, linux.KEXEC_ARCH_RISCV)
    return entry

