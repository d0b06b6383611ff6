"""qcow2 (QEMU's copy-on-write format, versions 2 and 3) as a block device the portable readers accept, with a
writer for labelling and for making new images.

Reading: the active L1/L2 tables (standard or extended L2 entries with 32 subclusters), zero clusters,
compressed clusters (zlib or zstd), and backing files (qcow2, raw or UDIF; chains, paths relative to the
image; a loop or a chain deeper than MAX_CHAIN is refused). Encrypted images and external data files are
refused with a message saying so.

Writing (`Qcow2(..., write=True)` on an ImageFile opened for writing): into allocated clusters in place;
anywhere else a new cluster is appended, filled with what the cluster read before (backing file, compressed
data, zeros) and the write, then referenced. Crash order, as QEMU's: refcount first, then the data, then the
L2 entry (a crash leaks a cluster, which `qemu-img check -r leaks` reclaims, but never points at garbage).
Refused: images marked dirty or corrupt, with internal snapshots (their clusters are shared), refcounts
narrower than 8 bits, and a write that would need a bigger refcount table. Unknown auto-clear feature bits
(e.g. persistent dirty bitmaps) are cleared before the first write, as the format requires.

`create` makes an empty version 3 image; `convert` copies a device into a new one (all-zero clusters stay
unallocated).
"""

from __future__ import annotations

import io
import os
import struct
import zlib

from cloudboot.diskimage.imagefile import check_open_for_writing, check_span
from diskfs.blockdev import BlockDevice
from diskfs.errors import Corrupt, Unsupported, check_incompat, corrupt

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FFFFFFFFFFFE00  # bits 9-55 of L1/L2 entries and refcount table entries
COPIED, COMPRESSED, ZERO = 1 << 63, 1 << 62, 1
L1_RESERVED = 0x7F000000000001FF
MAX_L1_BYTES = 32 << 20  # QEMU's limit
MAX_CHAIN = 16
HEAD = 65536  # the header bytes read (extensions and the backing name must lie in the first cluster)
L2_CACHE = 64  # tables kept (64 x 64 KiB at the default cluster size)
EXT_END, EXT_BACKING_FORMAT, EXT_DATA_FILE = 0, 0xE2792ACA, 0x44415441

INCOMPAT = {  # bit -> (name, readable, why)
    0x1: ("dirty", True, ""),
    0x2: ("corrupt", True, ""),
    0x4: ("external data file", False, "the guest data lives in another file; convert with qemu-img first"),
    0x8: ("compression type", True, ""),
    0x10: ("extended L2", True, ""),
}
DATA, ZEROS, BACKING, PACKED = "data", "zeros", "backing", "compressed"


def _u32(b, off):
    return struct.unpack_from(">I", b, off)[0]


def _u64(b, off):
    return struct.unpack_from(">Q", b, off)[0]


class Qcow2(BlockDevice):
    """A qcow2 image's virtual disk. `f` is an ImageFile; `open_backing(path, format, chain)` opens a backing
    file (diskimage.open_backing); `chain` holds the real paths above this image (for loop detection)."""

    def __init__(self, f, open_backing=None, chain=(), write: bool = False) -> None:
        self.f, self.name = f, f.name
        self.writable = write
        self.backing = None
        head = f.read(0, HEAD)
        if head[:4] != MAGIC:
            raise corrupt(self.name, "qcow2 header", 0, "no qcow2 magic")
        self.version = _u32(head, 4)
        if self.version not in (2, 3):
            raise Unsupported(f"{self.name}: qcow2 version {self.version} (2 and 3 exist)", "qcow2 version")
        backing_off, backing_len, self.cluster_bits = _u64(head, 8), _u32(head, 16), _u32(head, 20)
        self.size, crypt, self.l1_size, self.l1_offset = _u64(head, 24), _u32(head, 32), _u32(head, 36), _u64(head, 40)
        self.rt_offset, self.rt_clusters, self.snapshots = _u64(head, 48), _u32(head, 56), _u32(head, 60)
        if not 9 <= self.cluster_bits <= 21:
            raise corrupt(self.name, "qcow2 header", 20, f"cluster_bits {self.cluster_bits} (9..21)")
        cs = self.cluster_size = 1 << self.cluster_bits
        if crypt:
            method = {1: "AES", 2: "LUKS"}.get(crypt, f"method {crypt}")
            raise Unsupported(f"{self.name}: encrypted qcow2 ({method}): cloud-boot does not decrypt images; decrypt "
                              "it with `qemu-img convert --object secret,... --image-opts`", "encryption")
        if self.version == 3:
            self.incompat, self.compat, self.autoclear = _u64(head, 72), _u64(head, 80), _u64(head, 88)
            self.refcount_order, self.header_length = _u32(head, 96), _u32(head, 100)
            if not 104 <= self.header_length <= min(cs, HEAD) or self.header_length % 8:
                raise corrupt(self.name, "qcow2 header", 100, f"header length {self.header_length}")
        else:
            self.incompat = self.compat = self.autoclear = 0
            self.refcount_order, self.header_length = 4, 72
        check_incompat(self.name, "qcow2", self.incompat, INCOMPAT)
        self.compression = "zlib"
        if self.incompat & 0x8:
            ctype = head[104] if self.header_length > 104 else 0
            if ctype not in (0, 1):
                raise Unsupported(f"{self.name}: qcow2 compression type {ctype} (0 zlib, 1 zstd)",
                                  "compression type")
            self.compression = ("zlib", "zstd")[ctype]
        if self.refcount_order > 6:
            raise corrupt(self.name, "qcow2 header", 96, f"refcount order {self.refcount_order} (0..6)")
        self.extended = bool(self.incompat & 0x10)
        self.entry_size = 16 if self.extended else 8
        self.l2_entries = cs // self.entry_size
        if self.extended and self.cluster_bits < 14:
            raise corrupt(self.name, "qcow2 header", 20, "extended L2 entries need clusters of 16 KiB or more")
        per_l1 = cs * self.l2_entries
        need = (self.size + per_l1 - 1) // per_l1
        if self.size >= 1 << 62 or self.l1_size * 8 > MAX_L1_BYTES or self.l1_size < need:
            raise corrupt(self.name, "qcow2 header", 36,
                          f"L1 table of {self.l1_size} entries for a {self.size}-byte disk")
        for what, off in (("L1 table", self.l1_offset), ("refcount table", self.rt_offset)):
            if off % cs or off >= 1 << 56:
                raise corrupt(self.name, "qcow2 header", 40 if what[0] == "L" else 48,
                              f"{what} at byte {off} is not cluster-aligned")
        self.l1 = bytearray(f.read(self.l1_offset, self.l1_size * 8))
        self.backing_format, self.data_file = "", None
        self._extensions(head)
        self._l2_cache = {}
        self._packed = (None, b"")  # (host entry, cluster) decompressed last
        self._next_free = 0
        if backing_off:
            if backing_len > 1023 or backing_off + backing_len > min(cs, HEAD):
                raise corrupt(self.name, "qcow2 backing file name", backing_off, f"{backing_len} bytes")
            raw = head[backing_off:backing_off + backing_len]
            self.backing_name = os.fsdecode(raw)
            if open_backing is None:
                raise Unsupported(f"{self.name}: has a backing file ({self.backing_name})", "backing file")
            self.backing = open_backing(self._backing_path(self.backing_name), self.backing_format, chain)
        else:
            self.backing_name = ""

    # ---- header ----
    def _extensions(self, head) -> None:
        pos, end = self.header_length, min(self.cluster_size, HEAD)
        for _ in range(64):
            if pos + 8 > end:
                return
            kind, length = _u32(head, pos), _u32(head, pos + 4)
            if kind == EXT_END:
                return
            if pos + 8 + length > end:
                raise corrupt(self.name, "qcow2 header extension", pos, f"length {length} runs past the header")
            data = head[pos + 8:pos + 8 + length]
            if kind == EXT_BACKING_FORMAT:
                self.backing_format = data.decode("ascii", "replace")
            pos += 8 + (length + 7) // 8 * 8

    def _backing_path(self, name: str) -> str:
        if ":" in name.split("/")[0] or name.startswith("json:"):
            raise Unsupported(f"{self.name}: backing file {name!r} is not a local file (protocol or json: names are "
                              "not supported)", "backing protocol")
        if os.path.isabs(name):
            return name
        return os.path.join(os.path.dirname(os.path.abspath(self.f.path)), name)

    def info(self) -> dict:
        """What `cloud-boot fs info` shows about the image itself."""
        out = {"format": "qcow2", "version": self.version, "virtual_size": self.size,
               "cluster_size": self.cluster_size, "compression": self.compression, "extended_l2": self.extended}
        if self.backing is not None:
            out["backing_file"] = self.backing_name
            out["backing"] = self.backing.info() if hasattr(self.backing, "info") else {"format": "raw"}
        return out

    # ---- mapping ----
    def _l2(self, l1i: int):
        """(L2 table bytes, its offset) for L1 index l1i, or (None, 0) when unallocated."""
        entry = _u64(self.l1, l1i * 8)
        if entry & L1_RESERVED:
            raise corrupt(self.name, f"qcow2 L1 entry {l1i}", self.l1_offset + l1i * 8,
                          f"reserved bits set (0x{entry:x})")
        off = entry & OFFSET_MASK
        if not off:
            return None, 0
        if off % self.cluster_size:
            raise corrupt(self.name, f"qcow2 L1 entry {l1i}", self.l1_offset + l1i * 8,
                          f"L2 table at byte {off} is not cluster-aligned")
        table = self._l2_cache.get(off)
        if table is None:
            if off >= self.f.size:
                raise corrupt(self.name, f"qcow2 L1 entry {l1i}", self.l1_offset + l1i * 8,
                              f"L2 table at byte {off} is past the end of the file")
            if len(self._l2_cache) >= L2_CACHE:
                self._l2_cache.pop(next(iter(self._l2_cache)))
            table = self._l2_cache[off] = bytearray(self.f.read(off, self.cluster_size))
        return table, off

    def _entry(self, ci: int):
        """(L2 entry, subcluster bitmap, L2 table offset, index) of virtual cluster ci."""
        l1i, l2i = divmod(ci, self.l2_entries)
        table, off = self._l2(l1i)
        if table is None:
            return 0, 0, 0, l2i
        at = l2i * self.entry_size
        return _u64(table, at), (_u64(table, at + 8) if self.extended else 0), off, l2i

    def _extent(self, pos: int, length: int):
        """(kind, host offset or L2 entry, bytes) of the run at virtual byte pos, within one cluster and one
        kind of (sub)cluster."""
        cs = self.cluster_size
        ci, co = divmod(pos, cs)
        run = min(cs - co, length)
        entry, bitmap, l2off, l2i = self._entry(ci)
        if entry & COMPRESSED:
            return PACKED, entry, run
        host = entry & OFFSET_MASK
        where = l2off + l2i * self.entry_size
        if host and (host % cs or host >= 1 << 56):
            raise corrupt(self.name, "qcow2 L2 entry", where, f"cluster at byte {host} is not cluster-aligned")
        if entry & 0x3F000000000001FE:
            raise corrupt(self.name, "qcow2 L2 entry", where, f"reserved bits set (0x{entry:x})")
        if not self.extended:
            if entry & ZERO:
                return ZEROS, 0, run
            return (DATA, host + co, run) if host else (BACKING, 0, run)
        sub = cs >> 5
        first = co // sub
        state = self._sub_state(bitmap, first, where)
        last = first
        while last + 1 < 32 and (last + 1) * sub < co + run and self._sub_state(bitmap, last + 1, where) == state:
            last += 1
        run = min(run, (last + 1) * sub - co)
        if state == DATA:
            if not host:
                raise corrupt(self.name, "qcow2 L2 entry", where, "allocated subcluster without a cluster")
            return DATA, host + co, run
        return state, 0, run

    def _sub_state(self, bitmap: int, i: int, where: int) -> str:
        alloc, zero = bitmap >> i & 1, bitmap >> (32 + i) & 1
        if alloc and zero:
            raise corrupt(self.name, "qcow2 L2 bitmap", where + 8, f"subcluster {i} both allocated and zero")
        return DATA if alloc else ZEROS if zero else BACKING

    # ---- reading ----
    def readinto(self, offset, buf):
        n = len(buf)
        self.check(offset, n)
        mv = memoryview(buf).cast("B")
        pos = 0
        ahead = None
        while pos < n:
            kind, where, run = ahead or self._extent(offset + pos, n - pos)
            ahead = None
            if kind == DATA:  # coalesce clusters that are contiguous in the file into one read
                while pos + run < n:
                    ahead = self._extent(offset + pos + run, n - pos - run)
                    if ahead[0] != DATA or ahead[1] != where + run:
                        break
                    run += ahead[2]
                    ahead = None
                self.f.readinto(where, mv[pos:pos + run])
            elif kind == ZEROS:
                mv[pos:pos + run] = bytes(run)
            elif kind == BACKING:
                self._read_backing(offset + pos, mv[pos:pos + run])
            else:
                co = (offset + pos) % self.cluster_size
                mv[pos:pos + run] = self._decompress(where)[co:co + run]
            pos += run

    def _read_backing(self, offset: int, mv) -> None:
        b = self.backing
        have = 0 if b is None else max(0, min(len(mv), b.size - offset))
        if have:
            b.readinto(offset, mv[:have])
        if have < len(mv):
            mv[have:] = bytes(len(mv) - have)

    def _packed_span(self, entry: int):
        """(host offset, compressed bytes) of a compressed cluster's L2 entry."""
        shift = 62 - (self.cluster_bits - 8)
        host = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (self.cluster_bits - 8)) - 1)) + 1
        return host, sectors * 512 - (host & 511)

    def _decompress(self, entry: int) -> bytes:
        if self._packed[0] == entry:
            return self._packed[1]
        host, length = self._packed_span(entry)
        if host >= self.f.size:
            raise corrupt(self.name, "qcow2 compressed cluster", host, "past the end of the file")
        data = self.f.read(host, min(length, self.f.size - host))
        cs = self.cluster_size
        try:
            if self.compression == "zlib":
                out = zlib.decompressobj(-12).decompress(data, cs)
            else:
                import zstandard

                with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
                    out = r.read(cs)
        except Exception as exc:  # zlib.error, zstandard.ZstdError: the bytes are not what the entry claims
            raise corrupt(self.name, f"qcow2 {self.compression} cluster", host, str(exc)) from None
        if len(out) != cs:
            raise corrupt(self.name, f"qcow2 {self.compression} cluster", host,
                          f"inflates to {len(out)} bytes, not {cs}")
        self._packed = (entry, out)
        return out

    # ---- writing ----
    def check_writes(self, spans) -> None:
        """Unsupported unless every (offset, length) can be written: inside the disk, an image in a state we
        write, and room in the refcount table for every cluster the writes would allocate (checked before the
        first byte is written, so a refused write leaves the image as it was)."""
        self._check_state()
        cs = self.cluster_size
        new, tables = set(), set()
        for offset, length in spans:
            check_span(self, offset, length)
            for ci in range(offset // cs, (offset + length + cs - 1) // cs):
                entry, _, l2off, _ = self._entry(ci)
                if not entry & OFFSET_MASK or entry & COMPRESSED:
                    new.add(ci)
                if not l2off:
                    tables.add(ci // self.l2_entries)
        need = len(new) + len(tables)
        if need:
            per = self._rc_geometry()[1]
            last = max(self._next_free, (self.f.size + cs - 1) // cs) + need + need // per + 2
            if last // per >= self.rt_clusters * cs // 8:
                raise Unsupported(f"{self.name}: the write needs {need} new clusters, beyond what the refcount table "
                                  "covers; growing the refcount table is not supported (qemu-img convert makes a "
                                  "roomier image)", "refcount table growth")

    def write(self, offset: int, data) -> None:
        """Write `data` at virtual byte `offset` (allocating clusters as needed); fsync'd in crash order."""
        data = memoryview(data).cast("B")
        check_open_for_writing(self)
        self.check_writes([(offset, len(data))])
        if self.autoclear:  # features we do not maintain must be invalidated before the first write (the spec)
            self.f.write(88, bytes(8))
            self.f.sync()
            self.autoclear = 0
        pos = 0
        while pos < len(data):
            ci, co = divmod(offset + pos, self.cluster_size)
            n = min(self.cluster_size - co, len(data) - pos)
            self._write_cluster(ci, co, data[pos:pos + n])
            pos += n

    def _check_state(self) -> None:
        if self.incompat & 0x3:
            state = "marked corrupt" if self.incompat & 0x2 else "marked dirty (refcounts not flushed)"
            raise Unsupported(f"{self.name}: qcow2 image {state}: repair it with `qemu-img check -r all` first",
                              "dirty image")
        if self.snapshots:
            raise Unsupported(f"{self.name}: qcow2 image has {self.snapshots} internal snapshot(s) sharing its "
                              "clusters; writing is not supported (delete them with `qemu-img snapshot -d`)",
                              "snapshots")
        if self.refcount_order < 3:
            raise Unsupported(f"{self.name}: qcow2 refcounts of {1 << self.refcount_order} bits: writing needs 8 or "
                              "more", "refcount width")
        if self.autoclear & 0x1:
            raise Unsupported(f"{self.name}: qcow2 image has persistent dirty bitmaps, which cloud-boot cannot keep "
                              "up to date; remove them first (qemu-img bitmap --remove)", "bitmaps")

    def _sync(self) -> None:
        if self.ordered:
            self.f.sync()

    ordered = True  #: fsync between the steps of an allocation (off while filling a new image)

    def _write_cluster(self, ci: int, co: int, chunk) -> None:
        cs = self.cluster_size
        entry, bitmap, l2off, l2i = self._entry(ci)
        host = entry & OFFSET_MASK
        if l2off and not _u64(self.l1, (ci // self.l2_entries) * 8) & COPIED:
            raise Unsupported(f"{self.name}: L2 table at byte {l2off} is shared (refcount > 1)", "shared")
        if host and not entry & COMPRESSED:
            if not entry & COPIED:
                raise Unsupported(f"{self.name}: cluster at byte {host} is shared (refcount > 1)", "shared")
            if not self.extended and not entry & ZERO:
                self.f.write(host + co, chunk)
                return
            if self.extended:
                self._write_subclusters(ci, co, chunk, entry, bitmap, l2off, l2i)
                return
        # a new cluster: what the cluster reads now, with the write laid over it
        start = ci * cs
        if len(chunk) == cs:
            content = chunk
        else:
            content = bytearray(cs)
            self.readinto(start, memoryview(content)[:min(cs, self.size - start)])
            content[co:co + len(chunk)] = chunk
        if host and not entry & COMPRESSED:  # a preallocated zero cluster: fill it, then drop the zero flag
            self.f.write(host, content)
            self._sync()
            self._set_entry(ci, host | COPIED, bitmap)
            return
        new = self._allocate()
        self.f.write(new, content)
        self._sync()
        self._set_entry(ci, new | COPIED, 0xFFFFFFFF if self.extended else 0)
        if entry & COMPRESSED:  # the compressed bytes lose one reference
            chost, length = self._packed_span(entry)
            for c in range(chost // cs, (chost + length - 1) // cs + 1):
                self._set_refcount(c, max(0, self._refcount(c) - 1))

    def _write_subclusters(self, ci, co, chunk, entry, bitmap, l2off, l2i) -> None:
        cs, sub = self.cluster_size, self.cluster_size >> 5
        host = entry & OFFSET_MASK
        first, last = co // sub, (co + len(chunk) - 1) // sub
        if all(bitmap >> i & 1 for i in range(first, last + 1)):
            self.f.write(host + co, chunk)
            return
        lo, hi = first * sub, (last + 1) * sub  # whole subclusters: what they read now, then the write
        content = bytearray(hi - lo)
        start = ci * cs + lo
        self.readinto(start, memoryview(content)[:max(0, min(hi - lo, self.size - start))])
        content[co - lo:co - lo + len(chunk)] = chunk
        self.f.write(host + lo, content)
        self._sync()
        bits = ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)
        self._set_entry(ci, entry, (bitmap | bits) & ~(bits << 32))

    def _set_entry(self, ci: int, entry: int, bitmap: int) -> None:
        l1i, l2i = divmod(ci, self.l2_entries)
        table, off = self._l2(l1i)
        if table is None:  # a new L2 table: zeroed and counted before the L1 entry points at it
            off = self._allocate()
            self.f.write(off, bytes(self.cluster_size))
            self._sync()
            struct.pack_into(">Q", self.l1, l1i * 8, off | COPIED)
            self.f.write(self.l1_offset + l1i * 8, self.l1[l1i * 8:l1i * 8 + 8])
            self._sync()
            table, off = self._l2(l1i)
        at = l2i * self.entry_size
        struct.pack_into(">Q", table, at, entry)
        if self.extended:
            struct.pack_into(">Q", table, at + 8, bitmap)
        self.f.write(off + at, table[at:at + self.entry_size])
        self._sync()

    # ---- refcounts ----
    def _rc_geometry(self):
        bits = 1 << self.refcount_order
        return bits // 8, self.cluster_size * 8 // bits  # bytes per refcount, refcounts per block

    def _rt_entry(self, ti: int) -> int:
        if ti >= self.rt_clusters * self.cluster_size // 8:
            return -1
        return _u64(self.f.read(self.rt_offset + ti * 8, 8), 0) & OFFSET_MASK

    def _refcount(self, c: int) -> int:
        width, per = self._rc_geometry()
        block = self._rt_entry(c // per)
        if block <= 0:
            return 0
        return int.from_bytes(self.f.read(block + (c % per) * width, width), "big")

    def _set_refcount(self, c: int, value: int) -> None:
        width, per = self._rc_geometry()
        ti = c // per
        block = self._rt_entry(ti)
        if block < 0:
            raise Unsupported(f"{self.name}: cluster {c} lies beyond what the refcount table covers; growing the "
                              "refcount table is not supported (qemu-img convert makes a roomier image)",
                              "refcount table growth")
        if block == 0:  # a new refcount block, at the next free cluster, counting itself when it covers itself
            block = self._free_cluster() * self.cluster_size
            raw = bytearray(self.cluster_size)
            own = block // self.cluster_size
            if own // per != ti:
                raise Unsupported(f"{self.name}: a new refcount block at byte {block} would not cover itself; not "
                                  "supported", "refcount table growth")
            raw[(own % per) * width:(own % per + 1) * width] = (1).to_bytes(width, "big")
            self.f.write(block, raw)
            self._sync()
            self.f.write(self.rt_offset + ti * 8, struct.pack(">Q", block))
            self._sync()
        if value >= 1 << (8 * width):
            raise Unsupported(f"{self.name}: refcount of cluster {c} would overflow", "refcount overflow")
        self.f.write(block + (c % per) * width, value.to_bytes(width, "big"))

    def _free_cluster(self) -> int:
        """The first cluster past everything in use (the file's end, and what was allocated already)."""
        cs = self.cluster_size
        c = max(self._next_free, (self.f.size + cs - 1) // cs)
        for _ in range(1 << 16):
            if self._refcount(c) == 0:
                self._next_free = c + 1
                return c
            c += 1
        raise Corrupt(f"{self.name}: no free cluster after the end of the file (refcounts claim clusters past "
                      "it)", "qcow2 refcounts", None)

    def _allocate(self) -> int:
        """A new cluster with refcount 1 (counted, and fsync'd, before anything points at it): its byte offset."""
        c = self._free_cluster()
        self._set_refcount(c, 1)
        self._sync()
        return c * self.cluster_size

    def flush(self) -> None:
        if self.writable:
            self.f.sync()

    def close(self) -> None:
        if self.backing is not None:
            self.backing.close()
        self.f.close()


def create(f, size: int, cluster_bits: int = 16) -> None:
    """Lay out an empty qcow2 version 3 image of `size` virtual bytes in the (empty) ImageFile `f`: header,
    refcount table and first block, L1 table; every metadata cluster counted once."""
    cs = 1 << cluster_bits
    l2_entries = cs // 8
    l1_size = max(1, (size + cs * l2_entries - 1) // (cs * l2_entries))
    l1_clusters = (l1_size * 8 + cs - 1) // cs
    rt_at, rb_at, l1_at = cs, 2 * cs, 3 * cs
    used = 3 + l1_clusters
    if used > cs * 8 // 16:
        raise Unsupported(f"{f.name}: a {size}-byte disk needs more metadata than one refcount block covers",
                          "image size")
    header = struct.pack(">4sIQIIQIIQQIIQQQQII", MAGIC, 3, 0, 0, cluster_bits, size, 0, l1_size, l1_at, rt_at, 1,
                         0, 0, 0, 0, 0, 4, 112)
    header += bytes(112 - len(header))
    f.write(0, header + struct.pack(">II", EXT_END, 0))
    f.write(rt_at, struct.pack(">Q", rb_at) + bytes(cs - 8))
    f.write(rb_at, b"".join(struct.pack(">H", 1) for _ in range(used)) + bytes(cs - 2 * used))
    f.write(l1_at, bytes(l1_clusters * cs))


def convert(src, f, cluster_bits: int = 16) -> Qcow2:
    """Copy the block device `src` into a new qcow2 image in the empty ImageFile `f` (opened for writing);
    clusters that are all zeros stay unallocated. Returns the image (flushed)."""
    create(f, src.size, cluster_bits)
    img = Qcow2(f, write=True)
    img.ordered = False  # a new file: nothing points into it until it is complete
    cs = img.cluster_size
    buf = bytearray(cs)
    zero = bytes(cs)
    for start in range(0, src.size, cs):
        n = min(cs, src.size - start)
        mv = memoryview(buf)[:n]
        src.readinto(start, mv)
        if mv != zero[:n]:
            img.write(start, mv)
    img.ordered = True
    img.flush()
    return img


def is_qcow2(head: bytes) -> bool:
    return head[:4] == MAGIC

