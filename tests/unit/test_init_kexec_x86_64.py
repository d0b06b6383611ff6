"""The x86_64 kexec_load path of init (kexec_x86_64): the bzImage setup header and its refusals, the zero page
built as kexec_file_load builds it (setup header, E820 map, EFI runtime state and setup_data, RNG seed, command
line, initrd), the layout in free RAM, the entry stub, what it reads from sysfs, and kexec.load() trying it
before kexec_file_load. The e2e tests (test_init_boot, test_init_plan) boot real targets through it."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from cloudboot.init import kexec, kexec_segments, kexec_x86_64, linux
from cloudboot.init.errors import InitError
from cloudboot.init.kexec_x86_64 import Efi, System

#: /proc/iomem shaped like a q35 guest's under OVMF (2 GiB; Debian's kernel).
IOMEM = """\
00000000-00000fff : Reserved
00001000-0009ffff : System RAM
000a0000-000fffff : Reserved
00100000-007fffff : System RAM
00800000-00807fff : ACPI Non-volatile Storage
00808000-0080ffff : System RAM
00810000-008fffff : ACPI Non-volatile Storage
00900000-7e8eefff : System RAM
  11000000-11ffffff : Kernel code
  12000000-125fffff : Kernel rodata
  12600000-12a3ffff : Kernel data
  13000000-133fffff : Kernel bss
7e8ef000-7eb6efff : Reserved
7eb6f000-7eb7efff : ACPI Tables
7eb7f000-7ebfefff : ACPI Non-volatile Storage
7ebff000-7ef6ffff : System RAM
7ef70000-7effffff : Reserved
b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]
"""
E820 = [(0, 0xA0000, 1), (0x100000, 0x800000, 1), (0x800000, 0x808000, 4), (0x808000, 0x810000, 1),
        (0x810000, 0x900000, 4), (0x900000, 0x7E8EF000, 1), (0x7E8EF000, 0x7EB6F000, 2),
        (0x7EB6F000, 0x7EB7F000, 3), (0x7EB7F000, 0x7EBFF000, 4), (0x7EBFF000, 0x7EF70000, 1),
        (0x7EF70000, 0x7F000000, 2), (0xB0000000, 0xC0000000, 2)]
EFI = Efi(0x7EBEE018, 0x7EBEDB98, 0x7EA5A018, 0x7E9A5000,
          [(5, 0, 0x7EB53000, 0xFFFFFFFEFFC00000, 0x18, 0x800000000000000F),
           (6, 0, 0x7EB6B000, 0xFFFFFFFEFFC18000, 0x4, 0x800000000000000F)])
SEED = bytes(range(32))


def _bzimage(version: int = 0x020F, setup_sects: int = 27, xloadflags: int = 0x7F, loadflags: int = 1,
             alignment: int = 0x200000, init_size: int = 0x3A00000, size: int = 0x30000) -> bytes:
    """A bzImage whose setup header says what the arguments say, padded with 0xcc (int3) code."""
    b = bytearray(b"\xcc" * size)
    b[0x1F1:0x26C] = bytes(0x26C - 0x1F1)
    b[0x1F1] = setup_sects
    b[0x1FE:0x200] = b"\x55\xaa"
    b[0x200:0x202] = b"\xeb\x6a"  # jmp: the header ends at 0x202 + 0x6a = 0x26c
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, version)
    b[0x210] = 0
    b[0x211] = loadflags
    struct.pack_into("<IBBHI", b, 0x230, alignment, 1, 21, xloadflags, 2047)
    struct.pack_into("<QI", b, 0x258, 0x1000000, init_size)
    return bytes(b)


def _boot_params(efi: bool = True) -> bytes:
    """The running kernel's zero page: screen_info, secure_boot, efi_info (EL64, systab 0x7ebee018)."""
    bp = bytearray(4096)
    bp[0:0x40] = bytes([0x11] * 0x40)
    bp[0x1EC] = 3  # secure_boot: enabled
    if efi:
        bp[0x1C0:0x1E0] = b"EL64" + struct.pack("<IIIIIII", 0x7EBEE018, 48, 1, 0x7D000000, 48 * 90, 0, 0)
    return bytes(bp)


def _system(efi: bool = True, e820: list | None = None, la57: bool = False) -> System:
    return System(_boot_params(efi), E820 if e820 is None else e820, EFI if efi else None, 0x7EB7E014, la57)


def test_header() -> None:
    h = kexec_x86_64.parse_header(_bzimage())
    assert (h.version, h.setup_size, h.kernel_offset) == (0x20F, 0x26C - 0x1F1, 28 * 512)
    assert (h.alignment, h.pref_address, h.init_size, h.cmdline_size) == (0x200000, 0x1000000, 0x3A00000, 2047)
    assert kexec_x86_64.parse_header(_bzimage(setup_sects=0)).kernel_offset == 5 * 512  # 0 means 4


@pytest.mark.parametrize(("image", "message"), [
    (b"MZ" + bytes(0x300), "no 'HdrS' at 0x202"),
    (_bzimage()[:0x1FE] + b"\0\0" + _bzimage()[0x200:], "no boot sector signature"),
    (_bzimage(version=0x020B), "boot protocol 2.11; kexec needs at least 2.12"),
    (_bzimage(loadflags=0), "zImage"),
    (_bzimage(xloadflags=0x1), "no 64-bit entry loadable anywhere"),
    (_bzimage(alignment=0x300000), "inconsistent"),
    (_bzimage(init_size=0), "inconsistent"),
    (_bzimage(size=0x1000), "truncated"),
])
def test_header_refusals(image: bytes, message: str) -> None:
    with pytest.raises(InitError, match=message):
        kexec_x86_64.parse_header(image)


def _u32(b: bytes, off: int) -> int:
    return struct.unpack_from("<I", b, off)[0]


def _u64(b: bytes, off: int) -> int:
    return struct.unpack_from("<Q", b, off)[0]


def test_plan_with_efi() -> None:
    image, initrd = _bzimage(), b"\x07" * 0x12345
    p = kexec_x86_64.plan(image, initrd, "console=ttyS0 root=/dev/vda1", _system(), IOMEM, rand=SEED)
    kernel, ird, boot = p.segments
    assert [s.name for s in p.segments] == ["kernel", "initrd", "zero page"] and p.efi
    # the protected-mode kernel: 2 MiB aligned at or above pref_address, outside the running kernel, with
    # init_size of room for the decompressor
    assert kernel.data == image[28 * 512:] and kernel.mem == p.kernel == 0x1000000
    assert kernel.memsz == 0x3A00000 and kernel.mem + kernel.memsz <= 0x11000000
    assert ird.mem >= kernel.mem + kernel.memsz and ird.mem % 4096 == 0 and ird.data == initrd
    bp, base = boot.data[:4096], boot.mem
    assert base == p.zero_page and base >= kexec_x86_64.FLOOR
    # the image's setup header, with the loader's fields
    assert bp[0x1F1:0x210] == image[0x1F1:0x210] and bp[0x212:0x218] == image[0x212:0x218]
    assert bp[0x210] == 0xFF and bp[0x211] == 0 and bp[0x1EF] == 0  # undefined loader, no sentinel
    assert (_u32(bp, 0x218), _u32(bp, 0x21C), _u32(bp, 0x0C0)) == (ird.mem, 0x12345, 0)
    cmdline = _u32(bp, 0x228) | _u32(bp, 0x0C8) << 32
    at = cmdline - base
    assert boot.data[at:boot.data.index(b"\0", at)] == b"console=ttyS0 root=/dev/vda1"
    # carried from the running kernel's zero page; ext_mem_k/alt_mem_k from the E820 RAM above 1 MiB
    mem_k = (0x7FFFFF >> 10) - 1024  # the RAM entry that holds 1 MiB ends at 8 MiB
    assert bp[0x02:0x04] == struct.pack("<H", mem_k) and bp[0x04:0x40] == bytes([0x11] * 0x3C)
    assert bp[0x1EC] == 3 and _u32(bp, 0x1E0) == mem_k
    assert _u64(bp, 0x070) == 0x7EB7E014
    assert bp[0x1E8] == len(E820)
    assert [struct.unpack_from("<QQI", bp, 0x2D0 + 20 * i) for i in range(len(E820))] == \
        [(s, e - s, t) for s, e, t in E820]
    # EFI: the running efi_info with the runtime regions as the memory map, 40-byte descriptors
    assert bp[0x1C0:0x1C4] == b"EL64" and _u32(bp, 0x1C4) == 0x7EBEE018 and _u32(bp, 0x1C8) == 40
    assert _u32(bp, 0x1CC) == 1 and _u32(bp, 0x1D4) == 80 and _u32(bp, 0x1DC) == 0
    mmap = _u32(bp, 0x1D0) - base
    assert struct.unpack_from("<IIQQQQ", boot.data, mmap) == EFI.regions[0]
    assert struct.unpack_from("<IIQQQQ", boot.data, mmap + 40) == EFI.regions[1]
    # setup_data: RNG seed first, then SETUP_EFI (fw_vendor, runtime, tables, smbios), then the end
    rng = _u64(bp, 0x250) - base
    nxt, kind, length = struct.unpack_from("<QII", boot.data, rng)
    assert (kind, length) == (9, 32) and boot.data[rng + 16:rng + 48] == SEED
    efi = nxt - base
    assert struct.unpack_from("<QIIQQQQ", boot.data, efi) == (0, 4, 96, *EFI[:4])
    # the stub: mov rsi, zero page; mov rax, kernel + 0x200; jmp rax
    stub = boot.data[p.entry - base:p.entry - base + 22]
    assert stub == b"\x48\xbe" + struct.pack("<Q", base) + b"\x48\xb8" + struct.pack("<Q", 0x1000200) + b"\xff\xe0"
    # nothing overlaps, and every segment lies in free RAM
    ends = [(s.mem, s.mem + s.memsz) for s in p.segments]
    assert all(ends[i][1] <= ends[i + 1][0] for i in range(len(ends) - 1))
    free = kexec_segments.parse_iomem(IOMEM)
    assert all(any(fs <= s and e <= fe for fs, fe in free) for s, e in ends)


def test_plan_without_efi() -> None:
    """Not booted by EFI (or no runtime map): no efi_info, only the RNG seed in setup_data, ACPI by address."""
    p = kexec_x86_64.plan(_bzimage(), None, "", _system(efi=False), IOMEM, rand=SEED)
    boot = p.segments[-1]
    bp = boot.data[:4096]
    assert not p.efi and bp[0x1C0:0x1E0] == bytes(32) and _u32(bp, 0x218) == 0
    assert _u64(boot.data, _u64(bp, 0x250) - boot.mem) == 0  # the RNG record ends the list
    assert _u64(bp, 0x070) == 0x7EB7E014


def test_no_rng_seed_before_the_rng_is_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed is left out rather than waited for (os.urandom blocked 2.5 s at this point under TCG)."""
    monkeypatch.setattr(linux, "fresh_random", lambda n: None)
    p = kexec_x86_64.plan(_bzimage(), None, "", _system(), IOMEM)
    boot = p.segments[-1]
    efi = _u64(boot.data, 0x250) - boot.mem  # the list starts at SETUP_EFI and ends there
    assert struct.unpack_from("<QII", boot.data, efi) == (0, 4, 96)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cmdline": "x" * 2048}, "command line is 2048 bytes; this kernel takes at most 2047"),
    ({"system": _system(e820=[(i << 20, (i + 1) << 20, 1) for i in range(129)])}, "129 entries; the zero page"),
    ({"system": _system(la57=True), "image": _bzimage(xloadflags=0x1F)}, "5-level paging"),
    ({"iomem": "00001000-0009ffff : System RAM\n"}, "no room for the kernel"),
    ({"rand": b"short"}, "need 32 random bytes"),
])
def test_plan_refusals(kwargs: dict, message: str) -> None:
    args = {"image": _bzimage(), "initrd": None, "cmdline": "", "system": _system(), "iomem": IOMEM, "rand": SEED}
    with pytest.raises(InitError, match=message):
        kexec_x86_64.plan(**{**args, **kwargs})


def _sysfs(root: Path) -> Path:
    """/sys/firmware as a q35 guest's under OVMF shows it: memmap, efi/systab, efi/runtime-map."""
    for i, (s, e, t) in enumerate(E820):
        d = root / "memmap" / str(i)
        d.mkdir(parents=True)
        name = {1: "System RAM", 2: "Reserved", 3: "ACPI Tables", 4: "ACPI Non-volatile Storage"}[t]
        (d / "start").write_text(f"{s:#x}\n")
        (d / "end").write_text(f"{e - 1:#x}\n")
        (d / "type").write_text(name + "\n")
    efi = root / "efi"
    for n, v in zip(("fw_vendor", "runtime", "config_table"), EFI[:3], strict=True):
        (efi / n).parent.mkdir(parents=True, exist_ok=True)
        (efi / n).write_text(f"{v:#x}\n")
    (efi / "systab").write_text("ACPI20=0x7eb7e014\nACPI=0x7eb7e000\nSMBIOS=0x7e9a5000\nSMBIOS3=0x7e9a4000\n")
    for i, (t, _, phys, virt, pages, attr) in enumerate(EFI.regions):
        d = efi / "runtime-map" / str(i)
        d.mkdir(parents=True)
        for n, v in zip(("type", "phys_addr", "virt_addr", "num_pages", "attribute"), (t, phys, virt, pages, attr),
                        strict=True):
            (d / n).write_text(f"{v:#x}\n")
    return root


def test_reading_sysfs(tmp_path: Path) -> None:
    root = _sysfs(tmp_path)
    assert kexec_x86_64.firmware_memmap(str(root / "memmap")) == E820
    assert kexec_x86_64.systab(str(root / "efi"))["ACPI20"] == 0x7EB7E014
    assert kexec_x86_64.efi_runtime(_boot_params(), str(root / "efi")) == EFI
    # not an EFI boot, or no runtime map (runtime services off, CONFIG_EFI_RUNTIME_MAP unset): no EFI
    assert kexec_x86_64.efi_runtime(_boot_params(efi=False), str(root / "efi")) is None
    assert kexec_x86_64.efi_runtime(_boot_params(), str(tmp_path / "none")) is None
    with pytest.raises(InitError, match="cannot read the firmware's memory map"):
        kexec_x86_64.firmware_memmap(str(tmp_path / "none"))
    (root / "memmap" / "3" / "end").write_text("garbage\n")
    with pytest.raises(InitError, match=r"memory map entry .*/memmap/3 is unreadable: invalid literal"):
        kexec_x86_64.firmware_memmap(str(root / "memmap"))


@pytest.fixture
def bzimage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bzImage in tmp_path (kexec's work directory); the running system is the q35 guest above."""
    monkeypatch.setattr(kexec, "WORKDIR", str(tmp_path))
    monkeypatch.setattr(kexec_x86_64, "running_system", lambda: _system())
    real_read = kexec_x86_64.read
    monkeypatch.setattr(kexec_x86_64, "read",
                        lambda path, what: IOMEM.encode() if path == "/proc/iomem" else real_read(path, what))
    out = tmp_path / "vmlinuz"
    out.write_bytes(_bzimage())
    return out


def test_load_uses_kexec_load_first(bzimage: Path, kexec_without_file_load: list) -> None:
    """Through kexec.load as the init calls it: on x86_64 our loader goes first (kexec_file_load's purgatory
    would hash every segment twice)."""
    kexec.load(str(bzimage), None, "console=ttyS0", "x86_64")
    [(_, entry, segs, flags)] = kexec_without_file_load
    assert flags == linux.KEXEC_ARCH_X86_64 == 62 << 16
    assert [s[1] for s in segs][0] == 0x1000000 and segs[-1][1] < entry < segs[-1][1] + segs[-1][2]


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_refused_kexec_load_falls_back_to_kexec_file_load(bzimage: Path, kexec_calls, err: int) -> None:
    """Lockdown (EPERM: kexec_file_load checks the signature) or no CONFIG_KEXEC: kexec_file_load does it."""
    calls = kexec_calls(load=err)
    kexec.load(str(bzimage), None, "console=ttyS0", "x86_64")
    assert [c[0] for c in calls] == ["load", "file"] and calls[1][1] == b"\xcc" * 4


def test_a_memory_map_too_big_falls_back_and_both_reasons_are_told(bzimage: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   kexec_without_file_load: list) -> None:
    many = [(i << 20, (i + 1) << 20, 1) for i in range(200)]
    monkeypatch.setattr(kexec_x86_64, "running_system", lambda: _system(e820=many))
    with pytest.raises(InitError, match=r"200 entries; the zero page holds 128; then kexec_file_load\(.*\) failed: "
                                        r"Function not implemented"):
        kexec.load(str(bzimage), None, "", "x86_64")
    assert kexec_without_file_load == [("file", b"\xcc" * 4)]
