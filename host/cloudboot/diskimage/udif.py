"""UDIF (Apple's disk image format, `.dmg`) as a block device the portable readers accept, with an in-place
writer for the raw read/write variant (UDRW).

Layout: a 512-byte `koly` trailer at the end of the file names the data fork and an XML property list whose
`resource-fork/blkx` array holds one `mish` table per partition; each table maps runs of 512-byte sectors to
chunks: zero-fill, raw, or compressed (zlib: UDZO, bzip2: UDBZ, lzfse: ULFO, lzma/xz: ULMO). UDRW and UDRO
are raw chunks. ADC (UDCO) and images whose tables live only in a resource fork are refused.

Writing (UDRW): bytes that lie in raw chunks are overwritten in place; a write into a zero-fill chunk would
need the image to grow and is refused, as is any write into a compressed image. The CRC-32 checksums (the
partition's table, the data fork, the master checksum over the tables') are updated for the changed bytes
alone (diskimage.crc32), so they stay exactly as true as they were. Order: data, fsync, the XML (same length:
the checksum is rewritten inside its base64 text), the trailer, fsync.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import bz2
import lzma
import plistlib
import struct
import zlib

from cloudboot.diskimage import crc32
from cloudboot.diskimage.imagefile import check_open_for_writing, check_span
from diskfs.blockdev import BlockDevice
from diskfs.errors import Corrupt, Unsupported, corrupt

KOLY = b"koly"
SECTOR = 512
MAX_XML = 64 << 20
MAX_CHUNK = 64 << 20  # uncompressed bytes of one chunk (hdiutil writes 1 MiB chunks)
MAX_RUNS = 1 << 22
CRC32 = 2  # UDIF checksum type
ZERO_FILL, RAW, IGNORE, COMMENT, TERMINATOR = 0, 1, 2, 0x7FFFFFFE, 0xFFFFFFFF
CODECS = {0x80000004: "ADC", 0x80000005: "zlib", 0x80000006: "bzip2", 0x80000007: "lzfse", 0x80000008: "lzma"}
VARIANTS = {"zlib": "UDZO", "bzip2": "UDBZ", "lzfse": "ULFO", "lzma": "ULMO", "ADC": "UDCO"}  # hdiutil's names


def is_udif(f) -> bool:
    """Does the file end in a koly trailer?"""
    return f.size >= SECTOR and f.read(f.size - SECTOR, 4) == KOLY


class Run:
    """One chunk: `count` sectors from disk sector `start`, of chunk type `kind`, stored at file byte `where`
    (`length` bytes); `table` is the index of its blkx table."""

    __slots__ = ("start", "count", "kind", "where", "length", "table", "crcpos")

    def __init__(self, start, count, kind, where, length, table, crcpos):
        self.start, self.count, self.kind, self.where, self.length, self.table, self.crcpos = \
            start, count, kind, where, length, table, crcpos


class Table:
    """A blkx (mish) table: its disk sectors, checksum, and where its base64 text sits in the XML. The checksum
    covers the table's chunks in order, zero-fill as zeros, "ignore" (sparse) chunks left out (as 7-Zip checks
    it); `crclen` is how many bytes that is, `Run.crcpos` where a chunk's bytes start in it."""

    def __init__(self, name, first, count, ctype, csum, raw, span):
        self.name, self.first, self.count, self.ctype, self.csum, self.raw, self.span = \
            name, first, count, ctype, csum, raw, span
        self.crclen = 0


class Udif(BlockDevice):
    """A UDIF image's disk. `f` is an ImageFile."""

    def __init__(self, f, write: bool = False) -> None:
        self.f, self.name, self.writable = f, f.name, write
        end = f.size - SECTOR
        if end < 0:
            raise corrupt(self.name, "UDIF trailer", 0, "file shorter than the 512-byte koly trailer")
        self.koly_at = end
        k = self.koly = bytearray(f.read(end, SECTOR))
        if k[:4] != KOLY:
            raise corrupt(self.name, "UDIF trailer", end, "no koly signature")
        version, size = struct.unpack_from(">II", k, 4)
        if size != SECTOR:
            raise corrupt(self.name, "UDIF trailer", end, f"header size {size}")
        self.data_offset, self.data_length = struct.unpack_from(">QQ", k, 24)
        self.xml_offset, self.xml_length = struct.unpack_from(">QQ", k, 216)
        self.sectors = struct.unpack_from(">Q", k, 492)[0]
        if self.data_offset + self.data_length > end:
            raise corrupt(self.name, "UDIF trailer", end, f"data fork ({self.data_length} bytes at "
                                                          f"{self.data_offset}) runs past the trailer")
        if not self.xml_length:
            raise Unsupported(f"{self.name}: UDIF image without an XML property list (blkx in a resource fork only: "
                              "images older than Mac OS X 10.2) is not supported", "UDIF resource fork")
        if self.xml_length > MAX_XML or self.xml_offset + self.xml_length > end:
            raise corrupt(self.name, "UDIF property list", self.xml_offset, f"{self.xml_length} bytes")
        self.xml = f.read(self.xml_offset, self.xml_length)
        self.tables = []
        self.runs = []
        self._parse_plist()
        if self.sectors > (1 << 54) or any(r.start + r.count > self.sectors for r in self.runs):
            raise corrupt(self.name, "UDIF trailer", end + 492,
                          f"sector count {self.sectors} does not cover the chunks")
        self.size = self.sectors * SECTOR
        self._starts = [r.start for r in self.runs]
        self._chunk = (None, b"")
        self.codecs = sorted({CODECS.get(r.kind, "raw") for r in self.runs if r.kind not in (ZERO_FILL, IGNORE)})

    # ---- property list and tables ----
    def _parse_plist(self) -> None:
        try:
            plist = plistlib.loads(self.xml, fmt=plistlib.FMT_XML)
            entries = plist["resource-fork"]["blkx"]
            blobs = [(e.get("Name") or e.get("CFName") or "", e["Data"]) for e in entries]
        except Exception as exc:  # plistlib's errors, a missing key, a wrong type: not a blkx list
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise corrupt(self.name, "UDIF property list", self.xml_offset,
                          f"no resource-fork/blkx array ({why})") from None
        spans = _blkx_spans(self.xml, [bytes(b) if isinstance(b, bytes | bytearray) else b"" for _, b in blobs])
        if spans is None:
            raise corrupt(self.name, "UDIF property list", self.xml_offset, "cannot locate the blkx data")
        for i, (name, blob) in enumerate(blobs):
            if not isinstance(blob, bytes | bytearray):
                raise corrupt(self.name, f"UDIF blkx {i}", self.xml_offset, "Data is not a data element")
            self._parse_mish(i, str(name), bytes(blob), spans[i])
        self.runs.sort(key=lambda r: r.start)
        for a, b in zip(self.runs, self.runs[1:], strict=False):
            if a.start + a.count > b.start:
                raise corrupt(self.name, f"UDIF blkx {b.table}", self.xml_offset,
                              f"chunks overlap at sector {b.start}")

    def _parse_mish(self, i: int, name: str, m: bytes, span) -> None:
        where = self.xml_offset
        if len(m) < 204 or m[:4] != b"mish":
            raise corrupt(self.name, f"UDIF blkx {i} ({name})", where, "no mish signature")
        first, count, data_off = struct.unpack_from(">QQQ", m, 8)
        ctype = struct.unpack_from(">I", m, 64)[0]
        nchunks = struct.unpack_from(">I", m, 200)[0]
        if 204 + nchunks * 40 > len(m) or len(self.runs) + nchunks > MAX_RUNS:
            raise corrupt(self.name, f"UDIF blkx {i} ({name})", where, f"{nchunks} chunks in {len(m)} bytes")
        table = Table(name, first, count, ctype, struct.unpack_from(">I", m, 72)[0], bytearray(m), span)
        self.tables.append(table)
        chunks = [struct.unpack_from(">IIQQQQ", m, 204 + c * 40) + (c,) for c in range(nchunks)]
        for kind, _, sec, n, off, length, c in sorted(chunks, key=lambda ch: ch[2]):
            if kind in (COMMENT, TERMINATOR) or n == 0:
                continue
            if kind not in (ZERO_FILL, RAW, IGNORE) and kind not in CODECS:
                raise Unsupported(f"{self.name}: UDIF chunk type 0x{kind:08x} in blkx {i}", "UDIF chunk type")
            if sec + n > count or n * SECTOR > MAX_CHUNK and kind != ZERO_FILL and kind != IGNORE:
                raise corrupt(self.name, f"UDIF blkx {i} chunk {c}", where, f"{n} sectors at {sec}")
            at = self.data_offset + data_off + off
            if kind not in (ZERO_FILL, IGNORE) and (at + length > self.data_offset + self.data_length
                                                    or (kind == RAW and length != n * SECTOR)):
                raise corrupt(self.name, f"UDIF blkx {i} chunk {c}", at, f"{length} bytes outside the data fork")
            self.runs.append(Run(first + sec, n, kind, at, length, i, table.crclen))
            if kind != IGNORE:
                table.crclen += n * SECTOR

    def info(self) -> dict:
        variant = next((VARIANTS[c] for c in self.codecs if c in VARIANTS), "UDRW")
        return {"format": "udif", "variant": variant, "virtual_size": self.size, "partitions": len(self.tables),
                "chunks": len(self.runs), "codecs": self.codecs}

    # ---- reading ----
    def _run_at(self, sector: int):
        i = bisect.bisect_right(self._starts, sector) - 1
        if i >= 0 and self.runs[i].start + self.runs[i].count > sector:
            return self.runs[i], i
        return None, i

    def readinto(self, offset, buf):
        n = len(buf)
        self.check(offset, n)
        mv = memoryview(buf).cast("B")
        pos = 0
        while pos < n:
            at = offset + pos
            run, i = self._run_at(at // SECTOR)
            if run is None:  # a gap between tables reads as zeros, up to the next chunk
                nxt = self.runs[i + 1].start * SECTOR if i + 1 < len(self.runs) else self.size
                k = min(n - pos, nxt - at)
                mv[pos:pos + k] = bytes(k)
            else:
                inner = at - run.start * SECTOR
                k = min(n - pos, run.count * SECTOR - inner)
                if run.kind == RAW:
                    self.f.readinto(run.where + inner, mv[pos:pos + k])
                elif run.kind in (ZERO_FILL, IGNORE):
                    mv[pos:pos + k] = bytes(k)
                else:
                    mv[pos:pos + k] = self._inflate(run)[inner:inner + k]
            pos += k

    def _inflate(self, run: Run) -> bytes:
        if self._chunk[0] is run:
            return self._chunk[1]
        codec = CODECS[run.kind]
        want = run.count * SECTOR
        data = self.f.read(run.where, run.length)
        lz = _lzfse(self.name) if codec == "lzfse" else None
        errors = (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError) + ((lz.error,) if lz else ())
        try:
            if codec == "zlib":
                out = zlib.decompressobj().decompress(data, want)
            elif codec == "bzip2":
                out = bz2.BZ2Decompressor().decompress(data, want)
            elif codec == "lzma":
                out = lzma.LZMADecompressor().decompress(data, want)
            elif lz is not None:
                out = lz.decompress(data)
            else:
                raise Unsupported(f"{self.name}: UDIF ADC chunks (UDCO images) are not supported; convert with "
                                  "hdiutil convert -format UDZO", "UDIF ADC")
        except errors as exc:
            raise corrupt(self.name, f"UDIF {codec} chunk", run.where, str(exc)) from None
        if len(out) != want:
            raise corrupt(self.name, f"UDIF {codec} chunk", run.where, f"inflates to {len(out)} bytes, not {want}")
        self._chunk = (run, out)
        return out

    # ---- writing (UDRW) ----
    def check_writes(self, spans) -> None:
        """Unsupported unless every (offset, length) lies in raw chunks whose checksums we can update."""
        for offset, length in spans:
            self._pieces(offset, bytes(length))

    def _pieces(self, offset: int, data: bytes):
        """[(run, offset in the run, bytes)] for a write; Unsupported when any of it cannot be written."""
        check_span(self, offset, len(data))
        for at, what in ((80, "data fork"), (352, "master")):
            if self._checksum_type(at) not in (0, CRC32):
                raise Unsupported(f"{self.name}: UDIF {what} checksum type {self._checksum_type(at)} cannot be "
                                  "updated", "UDIF checksum")
        pieces = []
        pos = 0
        while pos < len(data):
            at = offset + pos
            run, _ = self._run_at(at // SECTOR)
            if run is None or run.kind != RAW:
                what = "no chunk" if run is None else f"a {CODECS.get(run.kind, 'zero-fill')} chunk"
                raise Unsupported(f"{self.name}: byte {at} of the disk lies in {what}: only raw (UDRW) chunks are "
                                  "written in place (convert the image with hdiutil convert -format UDRW)",
                                  "UDIF write")
            if self.tables[run.table].ctype not in (0, CRC32):
                raise Unsupported(f"{self.name}: UDIF blkx checksum type {self.tables[run.table].ctype} cannot be "
                                  "updated", "UDIF checksum")
            inner = at - run.start * SECTOR
            k = min(len(data) - pos, run.count * SECTOR - inner)
            pieces.append((run, inner, data[pos:pos + k]))
            pos += k
        return pieces

    def write(self, offset: int, data) -> None:
        """Overwrite bytes that sit in raw chunks; update the CRC-32 checksums for them; fsync."""
        check_open_for_writing(self)
        pieces = self._pieces(offset, bytes(data))
        olds = [self.f.read(run.where + inner, len(chunk)) for run, inner, chunk in pieces]
        for run, inner, chunk in pieces:
            self.f.write(run.where + inner, chunk)
        self.f.sync()
        self._chunk = (None, b"")
        self._update_checksums(pieces, olds)

    def _checksum_type(self, at: int) -> int:
        return struct.unpack_from(">I", self.koly, at)[0]

    def _update_checksums(self, pieces, olds) -> None:
        changed = set()
        for (run, inner, new), old in zip(pieces, olds, strict=True):
            t = self.tables[run.table]
            if t.ctype == CRC32:
                t.csum = crc32.update(t.csum, t.crclen, run.crcpos + inner, old, new)
                struct.pack_into(">I", t.raw, 72, t.csum)
                changed.add(run.table)
            if self._checksum_type(80) == CRC32:
                fork = struct.unpack_from(">I", self.koly, 88)[0]
                fork = crc32.update(fork, self.data_length, run.where + inner - self.data_offset, old, new)
                struct.pack_into(">I", self.koly, 88, fork)
        xml = bytearray(self.xml)
        for i in sorted(changed):
            start, end = self.tables[i].span
            xml[start:end] = _rewrite_base64(xml[start:end], bytes(self.tables[i].raw))
        if changed:
            if self._checksum_type(352) == CRC32:
                # the master checksum: CRC-32 over every table's checksum, in order
                master = zlib.crc32(b"".join(struct.pack(">I", t.csum) for t in self.tables if t.ctype == CRC32))
                struct.pack_into(">I", self.koly, 360, master)
            self.f.write(self.xml_offset, xml)
            self.xml = bytes(xml)
        self.f.write(self.koly_at, self.koly)
        self.f.sync()

    def flush(self) -> None:
        if self.writable:
            self.f.sync()

    def close(self) -> None:
        self.f.close()


def _lzfse(name: str):
    """The lzfse module (its decompress takes no output bound: chunk sizes are bounded by MAX_CHUNK, and the
    result's length is checked)."""
    try:
        import lzfse
    except ImportError:
        raise Unsupported(f"{name}: lzfse-compressed UDIF (ULFO) needs the Python package lzfse",
                          "UDIF lzfse") from None
    return lzfse


def _data_spans(xml: bytes):
    """(start, end) of the text of every <data> element, in document order."""
    spans = []
    pos = 0
    while True:
        start = xml.find(b"<data>", pos)
        if start < 0:
            return spans
        end = xml.find(b"</data>", start)
        if end < 0:
            return spans
        spans.append((start + 6, end))
        pos = end + 7


def _blkx_spans(xml: bytes, blobs):
    """The span of each blob's base64 text, matched in document order; None when one is missing."""
    spans = _data_spans(xml)
    out = []
    j = 0
    for blob in blobs:
        while j < len(spans):
            s, e = spans[j]
            j += 1
            try:
                if base64.b64decode(b"".join(xml[s:e].split())) == blob:
                    out.append((s, e))
                    break
            except (binascii.Error, ValueError):
                continue
        else:
            return None
    return out


def _rewrite_base64(text: bytes, data: bytes) -> bytes:
    """`data` in base64, laid into `text` (the old base64 of data of the same length) keeping its whitespace."""
    new = base64.b64encode(data)
    out = bytearray(text)
    j = 0
    for i, c in enumerate(text):
        if c not in b" \t\r\n":
            if j >= len(new):
                raise Corrupt("UDIF blkx data changed length", "UDIF property list", None)
            out[i] = new[j]
            j += 1
    if j != len(new):
        raise Corrupt("UDIF blkx data changed length", "UDIF property list", None)
    return bytes(out)
