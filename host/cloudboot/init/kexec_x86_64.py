"""kexec_load for x86_64 bzImages, with no purgatory: the kernel's own kexec_file_load carries one that hashes
every segment with SHA-256 at load time and again before the jump (about 2 s for a Debian kernel and initrd
under TCG); this loader hands the next kernel what kexec_file_load would (arch/x86/kernel/kexec-bzimage64.c)
and enters it through a three-instruction stub instead.

At reboot(KEXEC), relocate_kernel copies the segments, then `ret`s to `entry` in 64-bit mode on identity-mapped
page tables, every general register zero. The stub (its own segment) loads rsi = the zero page and jumps to
the protected-mode kernel's 64-bit entry (load address + 0x200; Documentation/arch/x86/boot.rst, "64-bit Boot
Protocol"), which sets up its own GDT, stack and page tables.

The zero page (struct boot_params) is built as kexec_file_load builds it: zeroed, the image's setup header
copied in (0x1f1 .. 0x202 + byte 0x201), then from the running system:
* screen_info, hardware_subarch, secure_boot and the EDD data from the running kernel's own zero page
  (/sys/kernel/boot_params/data);
* the E820 map from /sys/firmware/memmap (the firmware's map, as kexec-tools reads it), at most 128 entries;
* EFI, when the running kernel has runtime services: efi_info from its zero page, the runtime regions
  (/sys/firmware/efi/runtime-map: type, physical and virtual address, pages, attribute) as the EFI memory map,
  and a SETUP_EFI setup_data (fw_vendor, config tables, SMBIOS) so the next kernel reuses the running one's
  virtual mappings (SetVirtualAddressMap cannot be called twice); without them the next kernel boots as on a
  BIOS machine, finding ACPI through acpi_rsdp_addr (ACPI20 or ACPI in /sys/firmware/efi/systab);
* a SETUP_RNG_SEED setup_data of 32 fresh bytes, once the kernel's RNG is seeded (linux.fresh_random);
* type_of_loader 0xff (undefined), loadflags 0, the command line and the initrd (ext_* fields above 4 GiB).

Placement (first fit in free RAM, kexec_segments.Allocator): the protected-mode kernel at or above
max(pref_address, 1 MiB) at kernel_alignment with init_size of room (the decompressor works there), then the
initrd, then one page-rounded segment holding the zero page, the command line, the EFI memory map, the
setup_data records and the stub, all above 16 MiB.
"""

from __future__ import annotations

import os
import struct
from collections import namedtuple

from cloudboot.init import linux
from cloudboot.init.errors import InitError
from cloudboot.init.kexec_segments import Allocator, Segment, parse_iomem, read, stage, up

SETUP_HDR = 0x1F1
XLF_KERNEL_64 = 1 << 0
XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1
XLF_5LEVEL = 1 << 5
LOADED_HIGH = 1 << 0
MIN_PROTOCOL = 0x020C  # 2.12: xloadflags, the 64-bit entry above 4 GiB (what kexec_file_load requires too)
ZERO_PAGE = 4096
E820_MAX = 128  # entries the zero page holds (E820_MAX_ENTRIES_ZEROPAGE)
SETUP_EFI = 4
SETUP_RNG_SEED = 9
RNG_SEED_LENGTH = 32
EFI_MEMDESC_SIZE = 40  # efi_memory_desc_t: u32 type, u32 pad, u64 phys, u64 virt, u64 pages, u64 attribute
EFI_SETUP_DATA_SIZE = 96  # struct efi_setup_data: fw_vendor, (runtime), tables, smbios, reserved[8]
FLOOR = 16 << 20  # MIN_INITRD_LOAD_ADDR; everything but the kernel goes above it
#: /sys/firmware/memmap type names (e820_type_to_string) and their E820 type; anything else is reserved (2).
E820_TYPES = {"System RAM": 1, "Reserved": 2, "ACPI Tables": 3, "ACPI Non-volatile Storage": 4,
              "Unusable memory": 5, "Persistent Memory": 7, "Persistent Memory (legacy)": 12,
              "Soft Reserved": 0xEFFFFFFF}
#: zero-page ranges (offset, size) taken from the running kernel's as they are: screen_info, secure_boot,
#: hardware_subarch, the EDD MBR signatures and entries, eddbuf_entries/edd_mbr_sig_buf_entries.
CARRIED = ((0x000, 0x40), (0x1EC, 1), (0x23C, 4), (0x290, 0x40), (0xD00, 0x1EC), (0x1E9, 2))


class Header(namedtuple("Header", "version setup_size kernel_offset alignment pref_address init_size "
                                  "cmdline_size xloadflags")):
    """The fields of a bzImage's setup header that loading needs."""

    __slots__ = ()


def parse_header(image: bytes) -> Header:
    """The setup header of the bzImage `image`; InitError naming what is missing when it cannot be loaded."""
    if len(image) < 0x270 or image[0x202:0x206] != b"HdrS":
        raise InitError("not an x86 bzImage (no 'HdrS' at 0x202)")
    if image[0x1FE:0x200] != b"\x55\xaa":
        raise InitError("x86 bzImage has no boot sector signature 0xaa55 at 0x1fe")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < MIN_PROTOCOL:
        raise InitError(f"x86 bzImage speaks boot protocol {version >> 8}.{version & 0xff}; "
                        f"kexec needs at least 2.12")
    setup_sects = image[SETUP_HDR] or 4
    kernel_offset = (setup_sects + 1) * 512
    if len(image) <= kernel_offset:
        raise InitError(f"x86 bzImage truncated: {len(image)} bytes, its setup code alone is {kernel_offset}")
    alignment, _, _, xloadflags, cmdline_size = struct.unpack_from("<IBBHI", image, 0x230)
    pref_address, init_size = struct.unpack_from("<QI", image, 0x258)
    if not image[0x211] & LOADED_HIGH:
        raise InitError("x86 image is a zImage (loadflags lacks LOADED_HIGH), not a bzImage")
    if xloadflags & (XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G) != XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G:
        raise InitError(f"x86 bzImage has no 64-bit entry loadable anywhere (xloadflags {xloadflags:#x})")
    if not alignment or alignment & (alignment - 1) or not init_size:
        raise InitError(f"x86 bzImage header is inconsistent: kernel_alignment {alignment:#x}, "
                        f"init_size {init_size:#x}")
    return Header(version, 0x202 + image[0x201] - SETUP_HDR, kernel_offset, alignment, pref_address, init_size,
                  cmdline_size, xloadflags)


class Efi(namedtuple("Efi", "fw_vendor runtime tables smbios regions")):
    """What the next kernel needs to reuse EFI runtime services: fw_vendor, runtime, config table and SMBIOS
    addresses, and the runtime regions [(type, phys, virt, pages, attribute)]."""

    __slots__ = ()


class System(namedtuple("System", "boot_params e820 efi acpi_rsdp la57")):
    """The running system as this loader reads it: the running kernel's zero page (bytes), the firmware's
    memory map [(start, end exclusive, E820 type)], Efi or None, the ACPI RSDP address (0: unknown) and whether
    the CPU has 5-level paging."""

    __slots__ = ()


class Plan(namedtuple("Plan", "entry kernel zero_page efi segments")):
    """What kexec_load gets: the stub's address (entry), the kernel's load address, the zero page's address,
    whether EFI was passed on, and the segments in address order."""

    __slots__ = ()


def zero_page(image: bytes, hdr: Header, system: System) -> bytearray:
    """The next kernel's boot_params before addresses are known (module docstring)."""
    bp = bytearray(ZERO_PAGE)
    bp[SETUP_HDR:SETUP_HDR + hdr.setup_size] = image[SETUP_HDR:SETUP_HDR + hdr.setup_size]
    running = system.boot_params
    if len(running) >= ZERO_PAGE:
        for off, size in CARRIED:
            bp[off:off + size] = running[off:off + size]
    bp[0x210] = 0xFF  # type_of_loader: undefined
    bp[0x211] = 0  # loadflags: as kexec_file_load (no QUIET, no KEEP_SEGMENTS)
    if len(system.e820) > E820_MAX:
        raise InitError(f"kexec: the firmware's memory map has {len(system.e820)} entries; the zero page holds "
                        f"{E820_MAX}")
    for i, (start, end, kind) in enumerate(system.e820):
        struct.pack_into("<QQI", bp, 0x2D0 + 20 * i, start, end - start, kind)
        if kind == 1 and start <= 0x100000 < end:  # ext_mem_k / alt_mem_k: KiB above 1 MiB, as the kernel does
            mem_k = ((end - 1) >> 10) - (0x100000 >> 10)
            struct.pack_into("<H", bp, 0x002, min(mem_k, 0xFC00))
            struct.pack_into("<I", bp, 0x1E0, min(mem_k, 0xFFFFFFFF))
    bp[0x1E8] = len(system.e820)
    struct.pack_into("<Q", bp, 0x070, system.acpi_rsdp)
    return bp


def plan(image: bytes, initrd: bytes | None, cmdline: str, system: System, iomem: str, page: int = 4096,
         rand: bytes | None = None) -> Plan:
    """Lay out kernel, initrd, zero page and stub (module docstring); `rand`: the RNG seed (default
    linux.fresh_random; none while the kernel's RNG is not seeded)."""
    hdr = parse_header(image)
    if system.la57 and not hdr.xloadflags & XLF_5LEVEL:
        raise InitError("x86 bzImage cannot start with 5-level paging (xloadflags lacks XLF_5LEVEL)")
    raw_cmdline = cmdline.encode() + b"\0"
    if hdr.cmdline_size and len(raw_cmdline) - 1 > hdr.cmdline_size:
        raise InitError(f"kexec: the command line is {len(raw_cmdline) - 1} bytes; this kernel takes at most "
                        f"{hdr.cmdline_size}")
    bp = zero_page(image, hdr, system)
    alloc = Allocator(parse_iomem(iomem), page)
    kaddr, kmem = alloc.take("kernel", max(hdr.init_size, len(image) - hdr.kernel_offset), hdr.alignment,
                             max(hdr.pref_address, 0x100000))
    segments = [Segment("kernel", image[hdr.kernel_offset:], kaddr, kmem)]
    iaddr = 0
    if initrd is not None:
        iaddr, imem = alloc.take("initrd", len(initrd), page, FLOOR)
        segments.append(Segment("initrd", initrd, iaddr, imem))
    isize = len(initrd) if initrd is not None else 0
    struct.pack_into("<II", bp, 0x218, iaddr & 0xFFFFFFFF, isize & 0xFFFFFFFF)  # ramdisk_image, ramdisk_size
    struct.pack_into("<II", bp, 0x0C0, iaddr >> 32, isize >> 32)  # ext_ramdisk_image, ext_ramdisk_size
    # the boot segment: zero page | command line | EFI memory map | setup_data records | stub, 16-byte aligned
    efi = system.efi
    efi_map = b"".join(struct.pack("<IIQQQQ", *r) for r in efi.regions) if efi else b""
    cmdline_at = ZERO_PAGE
    map_at = up(cmdline_at + len(raw_cmdline), 16)
    seed = rand if rand is not None else linux.fresh_random(RNG_SEED_LENGTH)
    if seed is not None and len(seed) != RNG_SEED_LENGTH:
        raise InitError(f"kexec: need {RNG_SEED_LENGTH} random bytes, got {len(seed)}")
    efi_sd_at = up(map_at + len(efi_map), 16)
    rng_sd_at = efi_sd_at + (16 + EFI_SETUP_DATA_SIZE if efi else 0)
    stub_at = up(rng_sd_at + (16 + RNG_SEED_LENGTH if seed else 0), 16)
    size = stub_at + 32
    baddr, bmem = alloc.take("zero page", size, page, FLOOR)
    struct.pack_into("<I", bp, 0x228, (baddr + cmdline_at) & 0xFFFFFFFF)  # cmd_line_ptr
    struct.pack_into("<I", bp, 0x0C8, (baddr + cmdline_at) >> 32)  # ext_cmd_line_ptr
    blob = bytearray(size)
    blob[cmdline_at:cmdline_at + len(raw_cmdline)] = raw_cmdline
    setup_data = 0
    if efi:
        blob[map_at:map_at + len(efi_map)] = efi_map
        signature, systab = system.boot_params[0x1C0:0x1C4], system.boot_params[0x1C4:0x1C8]
        version, systab_hi = system.boot_params[0x1CC:0x1D0], system.boot_params[0x1D8:0x1DC]
        mmap = baddr + map_at
        bp[0x1C0:0x1E0] = (signature + systab + struct.pack("<I", EFI_MEMDESC_SIZE) + version
                           + struct.pack("<II", mmap & 0xFFFFFFFF, len(efi_map)) + systab_hi
                           + struct.pack("<I", mmap >> 32))
        struct.pack_into("<QIIQQQQ", blob, efi_sd_at, setup_data, SETUP_EFI, EFI_SETUP_DATA_SIZE,
                         efi.fw_vendor, efi.runtime, efi.tables, efi.smbios)
        setup_data = baddr + efi_sd_at
    if seed:
        struct.pack_into("<QII", blob, rng_sd_at, setup_data, SETUP_RNG_SEED, RNG_SEED_LENGTH)
        blob[rng_sd_at + 16:rng_sd_at + 16 + RNG_SEED_LENGTH] = seed
        setup_data = baddr + rng_sd_at
    struct.pack_into("<Q", bp, 0x250, setup_data)  # hdr.setup_data: the list's head
    # mov rsi, zero page; mov rax, the 64-bit entry; jmp rax
    blob[stub_at:stub_at + 22] = (b"\x48\xbe" + struct.pack("<Q", baddr) + b"\x48\xb8"
                                  + struct.pack("<Q", kaddr + 0x200) + b"\xff\xe0")
    blob[:ZERO_PAGE] = bp
    segments.append(Segment("zero page", bytes(blob), baddr, bmem))
    return Plan(baddr + stub_at, kaddr, baddr, efi is not None, sorted(segments, key=lambda s: s.mem))


def _hex(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip(), 16)


def firmware_memmap(root: str = "/sys/firmware/memmap") -> list[tuple[int, int, int]]:
    """[(start, end exclusive, E820 type)] from /sys/firmware/memmap, in address order; InitError when absent."""
    try:
        names = os.listdir(root)
    except OSError as exc:
        raise InitError(f"kexec: cannot read the firmware's memory map {root}: {exc.strerror}") from None
    out = []
    for n in names:
        try:
            with open(f"{root}/{n}/type") as f:
                kind = E820_TYPES.get(f.read().strip(), 2)
            out.append((_hex(f"{root}/{n}/start"), _hex(f"{root}/{n}/end") + 1, kind))
        except (OSError, ValueError) as exc:
            raise InitError(f"kexec: the firmware's memory map entry {root}/{n} is unreadable: {exc}") from None
    if not out:
        raise InitError(f"kexec: the firmware's memory map {root} is empty")
    return sorted(out)


def systab(root: str = "/sys/firmware/efi") -> dict[str, int]:
    """NAME=address lines of /sys/firmware/efi/systab (ACPI20, ACPI, SMBIOS, SMBIOS3); {} without EFI."""
    try:
        with open(f"{root}/systab") as f:
            lines = f.read().split()
    except OSError:
        return {}
    return {k: int(v, 16) for k, _, v in (line.partition("=") for line in lines) if v}


def efi_runtime(boot_params: bytes, root: str = "/sys/firmware/efi") -> Efi | None:
    """The running kernel's EFI runtime state to hand on, or None (not booted by 64-bit EFI, runtime services
    off, or CONFIG_EFI_RUNTIME_MAP unset: then the next kernel boots without EFI)."""
    if boot_params[0x1C0:0x1C4] != b"EL64":
        return None
    try:
        names = sorted(os.listdir(f"{root}/runtime-map"), key=int)
        if not names:
            return None
        regions = [(_hex(f"{root}/runtime-map/{n}/type"), 0, _hex(f"{root}/runtime-map/{n}/phys_addr"),
                    _hex(f"{root}/runtime-map/{n}/virt_addr"), _hex(f"{root}/runtime-map/{n}/num_pages"),
                    _hex(f"{root}/runtime-map/{n}/attribute")) for n in names]
        vendor, runtime, tables = (_hex(f"{root}/{n}") for n in ("fw_vendor", "runtime", "config_table"))
    except (OSError, ValueError):
        return None
    return Efi(vendor, runtime, tables, systab(root).get("SMBIOS", 0), regions)


def running_system() -> System:
    """The running system as plan() needs it, read from sysfs and /proc."""
    boot_params = read("/sys/kernel/boot_params/data", "the running kernel's zero page")
    tables = systab()
    cpuinfo = read("/proc/cpuinfo", "the CPU's flags").decode(errors="replace")
    la57 = any(line.startswith("flags") and " la57" in line for line in cpuinfo.splitlines())
    return System(boot_params, firmware_memmap(), efi_runtime(boot_params),
                  tables.get("ACPI20") or tables.get("ACPI") or struct.unpack_from("<Q", boot_params, 0x070)[0],
                  la57)


def load(kernel: str, initrd: str | None, cmdline: str) -> Plan:
    """Stage the bzImage at `kernel` with kexec_load; InitError with the reason when refused."""
    # read, not map_file: under x86_64 TCG, kexec_load copying from a mapped file took 0.75 s against 0.34 s
    p = plan(read(kernel, "the kernel"), read(initrd, "initrd") if initrd else None, cmdline, running_system(),
             read("/proc/iomem", "the memory map").decode(errors="replace"), os.sysconf("SC_PAGE_SIZE"))
    stage(p.entry, p.segments, linux.KEXEC_ARCH_X86_64)
    return p
