"""PE32+ images: read the headers and section table, and append sections (the UKI builder's one primitive).

The layout rules are systemd ukify's (`pe_add_sections`), so a UKI built here from a given stub is laid
out exactly as ukify lays it out: a COFF symbol table left at the end of an old stub is dropped, unaligned
raw data of stripped stubs is realigned, a new section starts at the next SectionAlignment boundary after
the last section and at the next FileAlignment boundary of the file, `.linux` is marked as code. Only the
checksum differs: ukify leaves it 0, we compute it.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

import arches
from cloudboot.errors import CloudBootError

SCN_CNT_CODE = 0x00000020
SCN_CNT_INITIALIZED_DATA = 0x00000040
SCN_MEM_READ = 0x40000000
SCN_DATA_READ = SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ
SCN_CODE_READ = SCN_CNT_CODE | SCN_MEM_READ
DLL_NX_COMPAT = 0x0100
DIR_SECURITY = 4
#: The PE format's largest FileAlignment (64 KiB); a larger one would pad every appended section to it.
FILE_ALIGNMENT_MAX = 0x10000
SUBSYSTEMS = {10: "EFI application", 11: "EFI boot service driver", 12: "EFI runtime driver"}


@dataclass(frozen=True)
class SectionInfo:
    """One section header's fields (`index` is its position in the section table)."""

    name: str
    vaddr: int
    vsize: int
    raw_offset: int
    raw_size: int
    characteristics: int
    index: int = 0


def _opt_field(offset: int, fmt: str, doc: str) -> property:
    """A read-only optional-header field of a PeImage."""
    return property(lambda self: struct.unpack_from(fmt, self.data, self.opt + offset)[0], doc=doc)


class PeImage:
    """A PE32+ file in memory (or mapped: a read-only mmap is used as it is, not copied) with its header offsets
    parsed and checked; every malformation is a CloudBootError naming the file."""

    def __init__(self, data: bytes | bytearray | mmap.mmap, name: str) -> None:
        self.data, self.name = (data if isinstance(data, mmap.mmap) else bytearray(data)), name
        if data[:2] != b"MZ":
            raise CloudBootError(f"{name}: not a PE32+ image: no MZ header at offset 0")
        if len(data) < 0x40:
            raise CloudBootError(f"{name}: not a PE32+ image: truncated DOS header")
        self.pe = struct.unpack_from("<I", data, 0x3C)[0]
        if self.pe + 26 > len(data) or data[self.pe:self.pe + 4] != b"PE\0\0":
            raise CloudBootError(f"{name}: not a PE32+ image: no PE signature at offset {self.pe:#x}")
        self.machine, self.nsections = struct.unpack_from("<HH", data, self.pe + 4)
        self.opt_size = struct.unpack_from("<H", data, self.pe + 20)[0]
        self.opt = self.pe + 24
        magic = struct.unpack_from("<H", data, self.opt)[0]
        if magic != 0x20B:
            raise CloudBootError(f"{name}: not a PE32+ image: optional header magic {magic:#x} (PE32+ is 0x20b)")
        # Up to the certificate-table directory entry (opt + 152) must be present to read or sign the image.
        if self.opt_size < 160 or self.opt + self.opt_size > len(data):
            raise CloudBootError(f"{name}: truncated PE optional header "
                                 f"({self.opt_size} bytes at {self.opt:#x})")
        self.table = self.opt + self.opt_size
        if self.table + 40 * self.nsections > len(data):
            raise CloudBootError(f"{name}: section table runs past the end of the file")

    # ---- header fields (offsets into the optional header) ----
    entry_point = _opt_field(16, "<I", "OptionalHeader.AddressOfEntryPoint (an RVA).")
    section_alignment = _opt_field(32, "<I", "OptionalHeader.SectionAlignment.")
    file_alignment = _opt_field(36, "<I", "OptionalHeader.FileAlignment.")
    size_of_image = _opt_field(56, "<I", "OptionalHeader.SizeOfImage.")
    size_of_headers = _opt_field(60, "<I", "OptionalHeader.SizeOfHeaders.")
    checksum = _opt_field(64, "<I", "OptionalHeader.CheckSum as stored.")
    subsystem = _opt_field(68, "<H", "OptionalHeader.Subsystem (10: EFI application).")
    dll_characteristics = _opt_field(70, "<H", "OptionalHeader.DllCharacteristics (NX_COMPAT is 0x100).")

    def _u32(self, off: int) -> int:
        return struct.unpack_from("<I", self.data, off)[0]

    @property
    def arch(self) -> str:
        """Our arch name for the machine field, or its hex value."""
        a = arches.by_pe_machine(self.machine)
        return a.name if a else f"{self.machine:#06x}"

    def check_efi(self, arch: str) -> None:
        """CloudBootError unless this is an EFI application or driver for `arch` (any spelling)."""
        want = arches.get(arch)
        if self.machine != want.pe_machine:
            raise CloudBootError(f"{self.name}: machine {self.machine:#06x} ({self.arch}) is not {want.name}'s "
                                 f"({want.pe_machine:#06x})")
        if self.subsystem not in SUBSYSTEMS:
            raise CloudBootError(f"{self.name}: subsystem {self.subsystem} is not an EFI application or driver")

    def directory(self, index: int) -> tuple[int, int]:
        """Data directory `index` as (address, size); (0, 0) when the header has fewer directories."""
        count = self._u32(self.opt + 108)
        if index >= count or self.opt + 112 + 8 * index + 8 > self.table:
            return 0, 0
        return struct.unpack_from("<II", self.data, self.opt + 112 + 8 * index)

    def signature_size(self) -> int:
        """Size of the Authenticode certificate table (data directory 4); 0 when unsigned."""
        return self.directory(DIR_SECURITY)[1]

    def sections(self) -> list[SectionInfo]:
        """The section table, in table order."""
        out = []
        for i in range(self.nsections):
            pos = self.table + 40 * i
            raw_name, vsize, vaddr, raw_size, raw_off = struct.unpack_from("<8sIIII", self.data, pos)
            flags = self._u32(self.table + 40 * i + 36)
            out.append(SectionInfo(raw_name.rstrip(b"\0").decode("ascii", "replace"), vaddr, vsize, raw_off,
                                   raw_size, flags, i))
        return out

    def section(self, name: str) -> SectionInfo | None:
        """The first section called `name`, or None."""
        return next((s for s in self.sections() if s.name == name), None)

    def section_data(self, s: SectionInfo) -> bytes:
        """The bytes the loader maps for `s` (VirtualSize bytes, at most SizeOfRawData of them from the
        file)."""
        return bytes(self.section_view(s))

    def section_view(self, s: SectionInfo) -> memoryview:
        """section_data without the copy (for hashing a large section of a mapped file)."""
        return memoryview(self.data)[s.raw_offset:s.raw_offset + min(s.raw_size, s.vsize)]

    def check_sections(self) -> None:
        """SizeOfHeaders covers the section table and lies inside the file, and every section's raw data lies
        inside the file (what `inspect`, `sign` and the UKI builder rely on)."""
        end = self.table + 40 * self.nsections
        if not end <= self.size_of_headers <= len(self.data):
            raise CloudBootError(f"{self.name}: SizeOfHeaders {self.size_of_headers:#x} is not between the end of "
                                 f"the section table ({end:#x}) and the end of the file ({len(self.data):#x})")
        for s in self.sections():
            if s.raw_size and s.raw_offset + s.raw_size > len(self.data):
                raise CloudBootError(f"{self.name}: section {s.name!r} raw data [{s.raw_offset:#x}, "
                                     f"{s.raw_offset + s.raw_size:#x}) runs past the end of the file "
                                     f"({len(self.data):#x} bytes)")

    # ---- building ----
    def _normalized(self) -> bytearray:
        """ukify's preparation of a stub: drop a trailing COFF symbol table, realign raw data, pad
        SizeOfHeaders."""
        out = bytearray(self.data)
        fa, sa = self.file_alignment, self.section_alignment
        if not (_power_of_two(fa) and fa <= FILE_ALIGNMENT_MAX and _power_of_two(sa)):
            raise CloudBootError(f"{self.name}: invalid alignment (file {fa:#x}, section {sa:#x}; each must be a power "
                                 f"of two, the file alignment at most {FILE_ALIGNMENT_MAX:#x})")
        symtab, nsyms = struct.unpack_from("<II", out, self.pe + 12)
        if symtab:
            size = 18 * nsyms
            if symtab + size + 4 <= len(out):
                size += struct.unpack_from("<I", out, symtab + size)[0]
            if symtab + size == len(out):
                del out[symtab:]
                # (ukify also means to set IMAGE_FILE_LOCAL_SYMS_STRIPPED, but pefile never writes that flag.)
                struct.pack_into("<II", out, self.pe + 12, 0, 0)
        for i in range(self.nsections):
            pos = self.table + 40 * i
            raw_size, raw_off = struct.unpack_from("<II", out, pos + 16)
            new_off, new_size = _align(raw_off, fa), _align(raw_size, fa)
            pad_off, pad_size = new_off - raw_off, new_size - raw_size
            if pad_off or pad_size:
                body = out[raw_off:raw_off + raw_size]
                out[raw_off:raw_off + raw_size] = bytes(pad_off) + body + bytes(pad_size)
                struct.pack_into("<II", out, pos + 16, new_size, new_off)
                for j in range(i + 1, self.nsections):
                    later = self.table + 40 * j + 20
                    moved = struct.unpack_from("<I", out, later)[0] + pad_off + pad_size
                    struct.pack_into("<I", out, later, moved)
        struct.pack_into("<I", out, self.opt + 60, _align(self.size_of_headers, fa))
        return out

    def append_sections(self, new: list[tuple[str, bytes]], *, replace: tuple[str, ...] = ()) -> bytes:
        """The image with `new` (name, data) sections added after the last one, headers and checksum updated.

        A name in `replace` that the image already has gets its data swapped in place (ukify does this
        for `.sbat`); any other name the image already has is refused, as are names over 8 bytes and
        duplicates."""
        if self.signature_size():
            raise CloudBootError(f"{self.name}: the stub is already signed; sign the UKI after building it")
        self.check_sections()
        names = [s.name for s in self.sections()]
        seen: set[str] = set()
        for sec_name, _ in new:
            raw = sec_name.encode("ascii", "replace")
            if not sec_name or len(raw) > 8 or not sec_name.isascii() or "\0" in sec_name:
                raise CloudBootError(f"section name {sec_name!r} is not 1 to 8 ASCII characters")
            if sec_name in seen or (sec_name in names and sec_name not in replace):
                raise CloudBootError(f"{self.name}: duplicate section {sec_name!r}")
            seen.add(sec_name)
        base = PeImage(self._normalized(), self.name)
        out = base.data
        appended = [(n, d) for n, d in new if base.section(n) is None]
        for sec_name, payload in new:
            old = base.section(sec_name)
            if old is None:
                continue
            if len(payload) > old.raw_size:
                raise CloudBootError(f"{self.name}: not enough room in the stub's {sec_name} section "
                                     f"({old.raw_size} bytes) for {len(payload)} bytes")
            out[old.raw_offset:old.raw_offset + old.raw_size] = payload + bytes(old.raw_size - len(payload))
            struct.pack_into("<I", out, base.table + 40 * old.index + 8, len(payload))
        room = base.size_of_headers - (base.table + 40 * base.nsections)
        if room < 40 * len(appended):
            raise CloudBootError(f"{self.name}: no room in the headers for {len(appended)} more "
                                 f"section headers")
        sa, fa = base.section_alignment, base.file_alignment
        last = base.sections()[-1] if base.nsections else None
        vaddr = _align(last.vaddr + last.vsize, sa) if last else _align(base.size_of_headers, sa)
        init_data = struct.unpack_from("<I", out, base.opt + 8)[0]
        for i, (sec_name, payload) in enumerate(appended):
            out += bytes(_align(len(out), fa) - len(out))
            raw_size = _align(len(payload), fa)
            if _align(vaddr + len(payload), sa) > 0xFFFFFFFF or len(out) + raw_size > 0xFFFFFFFF:
                raise CloudBootError(f"{self.name}: no room below 4 GiB for section {sec_name} ({len(payload)} bytes "
                                     f"at {vaddr:#x} in memory, {len(out):#x} in the file, SectionAlignment {sa:#x}): "
                                     "a PE32+ image's sizes and addresses are 32-bit")
            flags = SCN_CODE_READ if sec_name == ".linux" else SCN_DATA_READ
            header = struct.pack("<8sIIIIIIHHI", sec_name.encode(), len(payload), vaddr, raw_size, len(out),
                                 0, 0, 0, 0, flags)
            pos = base.table + 40 * (base.nsections + i)
            out[pos:pos + 40] = header
            out += payload + bytes(raw_size - len(payload))
            init_data += len(payload)
            vaddr = _align(vaddr + len(payload), sa)
        if appended:
            struct.pack_into("<H", out, base.pe + 6, base.nsections + len(appended))
            struct.pack_into("<I", out, base.opt + 8, init_data & 0xFFFFFFFF)
        final = PeImage(out, self.name)
        tail = final.sections()[-1]
        struct.pack_into("<I", out, base.opt + 56, _align(tail.vaddr + tail.vsize, sa))  # SizeOfImage
        struct.pack_into("<I", out, base.opt + 64, pe_checksum(out, base.opt + 64))
        return bytes(out)

    def with_dll_characteristics(self, clear: int) -> PeImage:
        """A copy with the DllCharacteristics bits `clear` cleared (e.g. NX_COMPAT for a kernel
        without it)."""
        out = bytearray(self.data)
        struct.pack_into("<H", out, self.opt + 70, self.dll_characteristics & ~clear & 0xFFFF)
        return PeImage(out, self.name)


def pe_checksum(data: bytes | bytearray, checksum_offset: int) -> int:
    """The PE image checksum: the end-around-carry (ones' complement) sum of the 16-bit little-endian words,
    without the checksum field, plus the file length.

    Read as one little-endian integer the file is the sum of word_i * 65536**i, and 65536 = 1 (mod 65535),
    so that integer mod 65535 is the ones' complement sum of the words: one pass in C, not a Python loop."""
    buf = bytes(data) if len(data) % 2 == 0 else bytes(data) + b"\0"
    low, high = struct.unpack_from("<HH", buf, checksum_offset)
    folded = (int.from_bytes(buf, "little") - low - high) % 0xFFFF
    if folded == 0 and any(buf):
        folded = 0xFFFF  # a nonzero sum that folds to a multiple of 0xFFFF ends as 0xFFFF, not 0
    return (folded + len(data)) & 0xFFFFFFFF


def _power_of_two(n: int) -> bool:
    return n > 0 and not n & (n - 1)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a
