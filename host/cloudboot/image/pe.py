"""PE32+ images: read the section table and append sections (the UKI builder's one primitive)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cloudboot.errors import CloudBootError
from cloudboot.fwbuild.elf2efi import pe_checksum

SCN_DATA_READ = 0x40000040  # IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ


@dataclass(frozen=True)
class SectionInfo:
    """One section header's fields."""

    name: str
    vaddr: int
    vsize: int
    raw_offset: int
    raw_size: int
    characteristics: int


class PeImage:
    """A PE32+ file in memory with its header offsets parsed and checked."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = bytearray(data), name
        if len(data) < 0x40 or data[:2] != b"MZ":
            raise CloudBootError(f"{name}: not a PE image (no MZ header)")
        self.pe = struct.unpack_from("<I", data, 0x3C)[0]
        if self.pe + 24 > len(data) or data[self.pe:self.pe + 4] != b"PE\0\0":
            raise CloudBootError(f"{name}: not a PE image (no PE signature at {self.pe:#x})")
        self.machine, self.nsections = struct.unpack_from("<HH", data, self.pe + 4)
        self.opt_size = struct.unpack_from("<H", data, self.pe + 20)[0]
        self.opt = self.pe + 24
        # Up to the certificate-table directory entry (opt + 152) must be present to read or sign the image.
        if self.opt_size < 160 or self.opt + self.opt_size > len(data):
            raise CloudBootError(f"{name}: truncated PE optional header ({self.opt_size} bytes at {self.opt:#x})")
        if struct.unpack_from("<H", data, self.opt)[0] != 0x20B:
            raise CloudBootError(f"{name}: not PE32+ (optional header magic is not 0x20b)")
        self.table = self.opt + self.opt_size
        if self.table + 40 * self.nsections > len(data):
            raise CloudBootError(f"{name}: section table runs past the end of the file")

    @property
    def section_alignment(self) -> int:
        return struct.unpack_from("<I", self.data, self.opt + 32)[0]

    @property
    def file_alignment(self) -> int:
        return struct.unpack_from("<I", self.data, self.opt + 36)[0]

    @property
    def subsystem(self) -> int:
        return struct.unpack_from("<H", self.data, self.opt + 68)[0]

    @property
    def size_of_headers(self) -> int:
        return struct.unpack_from("<I", self.data, self.opt + 60)[0]

    def signature_size(self) -> int:
        """Size of the Authenticode certificate table (data directory 4); 0 when unsigned."""
        return struct.unpack_from("<I", self.data, self.opt + 112 + 4 * 8 + 4)[0]

    def sections(self) -> list[SectionInfo]:
        out = []
        for i in range(self.nsections):
            raw_name, vsize, vaddr, raw_size, raw_off = struct.unpack_from("<8sIIII", self.data, self.table + 40 * i)
            flags = struct.unpack_from("<I", self.data, self.table + 40 * i + 36)[0]
            out.append(SectionInfo(raw_name.rstrip(b"\0").decode("ascii", "replace"), vaddr, vsize, raw_off,
                                   raw_size, flags))
        return out

    def section_data(self, s: SectionInfo) -> bytes:
        return bytes(self.data[s.raw_offset:s.raw_offset + min(s.raw_size, s.vsize)])

    def append_sections(self, new: list[tuple[str, bytes]]) -> bytes:
        """The image with `new` (name, data) sections added after the last one, headers and checksum updated."""
        if self.signature_size():
            raise CloudBootError(f"{self.name}: the stub is already signed; sign the UKI after building it")
        names = [s.name for s in self.sections()]
        for sec_name, _ in new:
            if len(sec_name.encode()) > 8:
                raise CloudBootError(f"section name {sec_name!r} is longer than 8 characters")
            if sec_name in names:
                raise CloudBootError(f"{self.name}: duplicate section {sec_name!r}")
            names.append(sec_name)
        room = self.size_of_headers - (self.table + 40 * self.nsections)
        if room < 40 * len(new):
            raise CloudBootError(f"{self.name}: no room in the headers for {len(new)} more section headers")
        sa, fa = self.section_alignment, self.file_alignment
        last = max(self.sections(), key=lambda s: s.vaddr)
        vaddr = _align(last.vaddr + max(last.vsize, last.raw_size), sa)
        out = bytearray(self.data)
        out += bytes(_align(len(out), fa) - len(out))
        init_data = struct.unpack_from("<I", out, self.opt + 8)[0]
        for i, (sec_name, payload) in enumerate(new):
            raw_size = _align(len(payload), fa)
            header = struct.pack("<8sIIIIIIHHI", sec_name.encode(), len(payload), vaddr, raw_size, len(out),
                                 0, 0, 0, 0, SCN_DATA_READ)
            pos = self.table + 40 * (self.nsections + i)
            out[pos:pos + 40] = header
            out += payload + bytes(raw_size - len(payload))
            init_data += raw_size
            vaddr = _align(vaddr + len(payload), sa)
        struct.pack_into("<H", out, self.pe + 6, self.nsections + len(new))
        struct.pack_into("<I", out, self.opt + 8, init_data)
        struct.pack_into("<I", out, self.opt + 56, vaddr)  # SizeOfImage
        struct.pack_into("<I", out, self.opt + 64, pe_checksum(out, self.opt + 64))
        return bytes(out)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a
