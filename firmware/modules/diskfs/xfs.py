"""XFS v4 and v5, read-only: shortform, block, leaf and node directories (data blocks read in order), extent
and B+tree data forks, local and remote symlinks, nrext64 and bigtime. Big-endian on disk.

Incompat features are an explicit allow-list, so an image using something else fails by name."""

import struct

from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import FsBase

MAGIC = b"XFSB"
INCOMPAT = {
    0x1: ("ftype", True, "directory entries carry the file type"),
    0x2: ("spinodes", True, "sparse inode chunks only change allocation"),
    0x4: ("meta_uuid", True, "metadata UUID differs from the user-visible one"),
    0x8: ("bigtime", True, "timestamps past 2038; we read no timestamps"),
    0x10: ("needsrepair", False, "xfs_repair has not finished on this filesystem"),
    0x20: ("nrext64", True, "64-bit extent counters"),
}
S_IFMT, S_IFDIR, S_IFLNK = 0o170000, 0o040000, 0o120000
FMT_LOCAL, FMT_EXTENTS, FMT_BTREE = 1, 2, 3
LEAF_OFFSET = 32 << 30  # directory data blocks live below 32 GiB of the directory's address space


def _text(raw, what):
    try:
        return bytes(raw).decode()
    except UnicodeError:
        raise Corrupt("%s is not valid UTF-8" % what) from None


class Inode:
    def __init__(self, fs, number, raw):
        if raw[:2] != b"IN":
            raise Corrupt("%s: inode %d: bad magic %r" % (fs.dev.name, number, bytes(raw[:2])))
        self.number = number
        self.mode, version, self.format = struct.unpack_from(">HBB", raw, 2)
        self.size = struct.unpack_from(">Q", raw, 56)[0]
        forkoff = raw[82]
        flags2 = struct.unpack_from(">Q", raw, 120)[0] if version >= 3 else 0
        self.nextents = struct.unpack_from(">Q" if flags2 & 0x10 else ">I", raw, 24 if flags2 & 0x10 else 76)[0]
        lit = 176 if version >= 3 else 100
        end = lit + forkoff * 8 if forkoff else fs.inode_size
        if end > len(raw) or end <= lit:
            raise Corrupt("%s: inode %d: bad fork offset %d" % (fs.dev.name, number, forkoff))
        self.fork = raw[lit:end]

    def is_dir(self):
        return self.mode & S_IFMT == S_IFDIR

    def is_symlink(self):
        return self.mode & S_IFMT == S_IFLNK


class Xfs(FsBase):
    """An XFS filesystem on a block device."""

    TYPE = "xfs"

    def __init__(self, dev):
        self.dev = dev
        sb = dev.read(0, 512)
        if sb[:4] != MAGIC:
            raise Corrupt("%s: no XFS superblock" % dev.name)
        (self.block_size, self.dblocks) = struct.unpack_from(">IQ", sb, 4)
        self.uuid = sb[32:48]
        self.root_ino = struct.unpack_from(">Q", sb, 56)[0]
        self.agblocks, self.agcount = struct.unpack_from(">II", sb, 84)
        self.version = struct.unpack_from(">H", sb, 100)[0] & 0xF
        self.inode_size, self.inopblock = struct.unpack_from(">HH", sb, 104)
        self.label = _text(sb[108:120].split(b"\0")[0], "%s: XFS label" % dev.name)
        self.blocklog, _, self.inodelog, self.inopblog, self.agblklog = sb[120], sb[121], sb[122], sb[123], sb[124]
        self.dirblklog = sb[192]
        if (1 << self.blocklog) != self.block_size or not 512 <= self.block_size <= 65536 or self.inode_size < 256 \
                or self.dirblklog > 8 or self.agblklog > 40:
            raise Corrupt("%s: implausible XFS superblock" % dev.name)
        if self.version == 5:
            incompat = struct.unpack_from(">I", sb, 216)[0]
            for bit in sorted(INCOMPAT):
                if incompat & bit and not INCOMPAT[bit][1]:
                    raise Unsupported("%s: XFS incompat 0x%x (%s) unsupported: %s"
                                      % (dev.name, bit, INCOMPAT[bit][0], INCOMPAT[bit][2]))
            unknown = incompat & ~sum(INCOMPAT)
            if unknown:
                raise Unsupported("%s: XFS incompat 0x%x unknown to this reader" % (dev.name, unknown))
            self.ftype = True
        elif self.version == 4:
            self.ftype = bool(struct.unpack_from(">I", sb, 200)[0] & 0x200)
        else:
            raise Unsupported("%s: XFS version %d" % (dev.name, self.version))
        self.dir_block = self.block_size << self.dirblklog
        self.hdr = 64 if self.version == 5 else 16  # directory data block header

    def _fsb_offset(self, fsb):
        agno, agbno = fsb >> self.agblklog, fsb & ((1 << self.agblklog) - 1)
        if agno >= self.agcount or agbno >= self.agblocks:
            raise Corrupt("%s: block %d outside the filesystem" % (self.dev.name, fsb))
        return (agno * self.agblocks + agbno) * self.block_size

    def inode(self, number):
        shift = self.agblklog + self.inopblog
        agno, agbno = number >> shift, (number >> self.inopblog) & ((1 << self.agblklog) - 1)
        off = number & ((1 << self.inopblog) - 1)
        if agno >= self.agcount or agbno >= self.agblocks:
            raise Corrupt("%s: inode %d outside the filesystem" % (self.dev.name, number))
        addr = (agno * self.agblocks + agbno) * self.block_size + off * self.inode_size
        return Inode(self, number, self.dev.read(addr, self.inode_size))

    # ---- block maps ----
    def extents(self, inode):
        """[(logical block, byte offset on the device, block count)] of the data fork, unwritten ones left out."""
        if inode.format == FMT_EXTENTS:
            if inode.nextents * 16 > len(inode.fork):
                raise Corrupt("%s: inode %d: %d extents do not fit" % (self.dev.name, inode.number, inode.nextents))
            recs = [inode.fork[i * 16:(i + 1) * 16] for i in range(inode.nextents)]
        elif inode.format == FMT_BTREE:
            recs = []
            level, numrecs = struct.unpack_from(">HH", inode.fork, 0)
            maxrecs = (len(inode.fork) - 4) // 16
            ptrs = [struct.unpack_from(">Q", inode.fork, 4 + maxrecs * 8 + 8 * i)[0] for i in range(numrecs)]
            self._btree(ptrs, level, recs, inode.number)
        else:
            raise Corrupt("%s: inode %d: data fork format %d has no extents" % (self.dev.name, inode.number,
                                                                                inode.format))
        out = []
        for r in recs:
            hi, lo = struct.unpack(">QQ", r)
            if hi >> 63:
                continue  # unwritten (preallocated): reads as zeros
            startoff = (hi >> 9) & ((1 << 54) - 1)
            startblock = ((hi & 0x1FF) << 43) | (lo >> 21)
            out.append((startoff, self._fsb_offset(startblock), lo & 0x1FFFFF))
        out.sort()
        return out

    def _btree(self, ptrs, level, recs, ino):
        if level > 8:
            raise Corrupt("%s: inode %d: B+tree deeper than 8 levels" % (self.dev.name, ino))
        hdr = 72 if self.version == 5 else 24
        for p in ptrs:
            block = self.dev.read(self._fsb_offset(p), self.block_size)
            if block[:4] not in (b"BMA3", b"BMAP"):
                raise Corrupt("%s: inode %d: bad bmap block magic %r" % (self.dev.name, ino, bytes(block[:4])))
            blevel, numrecs = struct.unpack_from(">HH", block, 4)
            if blevel != level - 1 or hdr + numrecs * 16 > self.block_size:
                raise Corrupt("%s: inode %d: inconsistent bmap block" % (self.dev.name, ino))
            if blevel == 0:
                recs.extend(block[hdr + 16 * i:hdr + 16 * (i + 1)] for i in range(numrecs))
            else:
                maxrecs = (self.block_size - hdr) // 16
                self._btree([struct.unpack_from(">Q", block, hdr + maxrecs * 8 + 8 * i)[0] for i in range(numrecs)],
                            blevel, recs, ino)

    def readinto_file(self, inode, offset, buf):
        bs = self.block_size
        end = min(offset + len(buf), inode.size)
        for lblock, dev_off, count in self.extents(inode):
            lo, hi = max(offset, lblock * bs), min(end, (lblock + count) * bs)
            if lo < hi:
                self.dev.readinto(dev_off + (lo - lblock * bs), memoryview(buf)[lo - offset:hi - offset])
        return max(0, end - offset)

    def read_inode_data(self, inode):
        if inode.format == FMT_LOCAL:
            return bytes(inode.fork[:inode.size])
        if inode.size > self.dblocks * self.block_size:
            raise Corrupt("%s: inode %d claims %d bytes" % (self.dev.name, inode.number, inode.size))
        buf = bytearray(inode.size)
        self.readinto_file(inode, 0, buf)
        return bytes(buf)

    # ---- directories ----
    def entries(self, inode):
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        if inode.format == FMT_LOCAL:
            return self._shortform(inode)
        out = []
        bs = self.block_size
        for lblock, dev_off, count in self.extents(inode):
            if lblock * bs >= LEAF_OFFSET:
                continue
            data = self.dev.read(dev_off, count * bs)
            for pos in range(0, len(data) - self.dir_block + 1, self.dir_block):
                self._data_block(data[pos:pos + self.dir_block], inode.number, out)
        return out

    def _shortform(self, inode):
        f = inode.fork
        count, i8 = f[0], f[1]
        width = 8 if i8 else 4
        pos = 2 + width
        out = []
        for _ in range(count or i8):
            if pos + 3 > len(f):
                raise Corrupt("%s: directory inode %d: shortform entries overrun" % (self.dev.name, inode.number))
            namelen = f[pos]
            name = _text(f[pos + 3:pos + 3 + namelen], "a name in directory inode %d" % inode.number)
            pos += 3 + namelen + (1 if self.ftype else 0)
            ino = int.from_bytes(f[pos:pos + width], "big")
            pos += width
            out.append((name, ino))
        return out

    def _data_block(self, blk, ino, out):
        magic = blk[:4]
        if magic in (b"XDB3", b"XD2B"):
            count = struct.unpack_from(">I", blk, len(blk) - 8)[0]
            end = len(blk) - 8 - count * 8
        elif magic in (b"XDD3", b"XD2D"):
            end = len(blk)
        else:
            raise Corrupt("%s: directory inode %d: bad data block magic %r" % (self.dev.name, ino, bytes(magic)))
        pos = self.hdr
        while pos < end:
            if blk[pos:pos + 2] == b"\xff\xff":
                length = struct.unpack_from(">H", blk, pos + 2)[0]
                if length < 8 or length % 8:
                    raise Corrupt("%s: directory inode %d: bad free entry" % (self.dev.name, ino))
                pos += length
                continue
            child, namelen = struct.unpack_from(">QB", blk, pos)
            name = _text(blk[pos + 9:pos + 9 + namelen], "a name in directory inode %d" % ino)
            size = (9 + namelen + (1 if self.ftype else 0) + 2 + 7) & ~7
            if not namelen or pos + size > end:
                raise Corrupt("%s: directory inode %d: bad entry at %d" % (self.dev.name, ino, pos))
            if name not in (".", ".."):
                out.append((name, child))
            pos += size

    def readlink_inode(self, inode):
        what = "%s: symlink inode %d" % (self.dev.name, inode.number)
        if inode.size > 1024:
            raise Corrupt("%s is %d bytes long" % (what, inode.size))
        if inode.format == FMT_LOCAL:
            return _text(inode.fork[:inode.size], what)
        data = bytearray()
        for _, dev_off, count in self.extents(inode):
            blk = self.dev.read(dev_off, count * self.block_size)
            data += blk[56:] if self.version == 5 and blk[:4] == b"XSLM" else blk
        return _text(data[:inode.size], what)

    def root(self):
        return self.inode(self.root_ino)

    def node(self, ref):
        return self.inode(ref)
