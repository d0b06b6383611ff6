"""elf2efi: our ELF static-PIE -> PE32+ converter, checked with pefile and pyelftools as oracles."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pefile
import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arches
from cloudboot.errors import CloudBootError
from cloudboot.fwbuild import elf2efi
from cloudboot.fwbuild.hello import build_hello
from cloudboot.toolchain import zig


@pytest.fixture(scope="module")
def hellos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hello")
    return {arch: build_hello(arch, out) for arch in arches.NAMES}


def _elf_relocs(elf_path: Path) -> list[tuple[int, int]]:
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        return sorted((r["r_offset"], r["r_addend"]) for s in elf.iter_sections()
                      if isinstance(s, RelocationSection) for r in s.iter_relocations())


def _pe_relocs(pe: pefile.PE) -> list[int]:
    return sorted(e.rva for block in pe.DIRECTORY_ENTRY_BASERELOC for e in block.entries if e.type == 10)


@pytest.mark.parametrize("arch", arches.NAMES)
def test_headers_sections_and_checksum(hellos: dict[str, Path], arch: str) -> None:
    pe = pefile.PE(str(hellos[arch]))
    assert pe.OPTIONAL_HEADER.Magic == 0x20B
    assert pe.FILE_HEADER.Machine == arches.get(arch).pe_machine
    assert pe.OPTIONAL_HEADER.Subsystem == 10
    assert (pe.OPTIONAL_HEADER.SectionAlignment, pe.OPTIONAL_HEADER.FileAlignment) == (0x1000, 0x200)
    assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    assert not [w for w in pe.get_warnings() if not w.startswith("Byte 0x00 makes up")]  # tiny file heuristic
    end = pe.OPTIONAL_HEADER.SizeOfHeaders
    for s in pe.sections:
        assert s.VirtualAddress % 0x1000 == 0 and s.VirtualAddress >= end, s.Name
        assert s.PointerToRawData % 0x200 == 0
        end = s.VirtualAddress + s.Misc_VirtualSize
    assert pe.OPTIONAL_HEADER.SizeOfImage == (end + 0xFFF) & ~0xFFF
    text = [s for s in pe.sections if s.Characteristics & 0x20000000]
    assert any(s.VirtualAddress <= pe.OPTIONAL_HEADER.AddressOfEntryPoint < s.VirtualAddress + s.Misc_VirtualSize
               for s in text)
    assert all(not (s.Characteristics & 0x80000000 and s.Characteristics & 0x20000000) for s in pe.sections)


@pytest.mark.parametrize("arch", arches.NAMES)
def test_every_relative_relocation_becomes_dir64(hellos: dict[str, Path], arch: str) -> None:
    efi = hellos[arch]
    elf_relocs = _elf_relocs(efi.with_suffix(".elf"))
    assert elf_relocs, "hello.c has a pointer table: it must have relocations"
    pe = pefile.PE(str(efi))
    shift = pe.OPTIONAL_HEADER.AddressOfEntryPoint - ELFFile(open(efi.with_suffix(".elf"), "rb"))["e_entry"]
    assert _pe_relocs(pe) == [o + shift for o, _ in elf_relocs]
    image = pe.get_memory_mapped_image()
    for offset, addend in elf_relocs:  # the stored word is the address at image base 0
        assert struct.unpack_from("<Q", image, offset + shift)[0] == addend + shift


def test_bss_tail_is_not_stored(tmp_path: Path) -> None:
    src = tmp_path / "bss.c"
    src.write_text("static volatile char big[1 << 20];\n"
                   "int efi_main(void *h) { big[12345] = 1; return big[(unsigned long)h & 0xfffff]; }\n")
    elf = tmp_path / "bss.elf"
    subprocess.run([zig.zig_exe(), "cc", "-target", "x86_64-freestanding", "-fPIE", "-Os", "-nostartfiles",
                    "-static-pie", "-Wl,--entry=efi_main", "-Wl,-z,max-page-size=4096", "-o", elf, src], check=True)
    elf2efi.convert(elf, tmp_path / "bss.efi")
    assert (tmp_path / "bss.efi").stat().st_size < 64 * 1024
    pe = pefile.PE(str(tmp_path / "bss.efi"))
    assert pe.OPTIONAL_HEADER.SizeOfImage > 1 << 20


def _refused(tmp_path: Path, data: bytes, reason: str) -> None:
    src, out = tmp_path / "in.elf", tmp_path / "out.efi"
    src.write_bytes(data)
    with pytest.raises(CloudBootError) as info:
        elf2efi.convert(src, out)
    assert str(src) in str(info.value) and reason in str(info.value), str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".out.efi*")), "no (half-)written output"


def test_refuses_non_elf(tmp_path: Path) -> None:
    _refused(tmp_path, b"MZ" + bytes(200), "not an ELF file")


def test_refuses_truncated_elf(tmp_path: Path, hellos: dict[str, Path]) -> None:
    _refused(tmp_path, hellos["x86_64"].with_suffix(".elf").read_bytes()[:300], "truncated")


def test_refuses_32bit_and_non_pie(tmp_path: Path, hellos: dict[str, Path]) -> None:
    data = bytearray(hellos["x86_64"].with_suffix(".elf").read_bytes())
    _refused(tmp_path, bytes(data[:4] + b"\x01" + data[5:]), "only 64-bit little-endian")
    struct.pack_into("<H", data, 16, 2)  # ET_EXEC
    _refused(tmp_path, bytes(data), "is not ET_DYN")


def test_refuses_symbolic_relocations(tmp_path: Path) -> None:
    src = tmp_path / "ext.c"
    src.write_text("extern int missing; int *p = &missing; int efi_main(void) { return *p; }\n")
    elf = tmp_path / "ext.elf"
    subprocess.run([zig.zig_exe(), "cc", "-target", "x86_64-linux-none", "-shared", "-fPIC", "-nostdlib",
                    "-o", elf, src], check=True)
    _refused(tmp_path, elf.read_bytes(), "is not R_*_RELATIVE")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_elf_only_clean_errors(hellos: dict[str, Path], data: st.DataObject) -> None:
    raw = bytearray(hellos["aarch64"].with_suffix(".elf").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(raw), 4096) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        elf2efi.convert_bytes(bytes(raw), "fuzz.elf")
    except CloudBootError:
        pass
