"""XFS v4 and v5, read-only. Big-endian on disk (CRCs little-endian).

Short-form, block, leaf and node directories (entries read from the data blocks, which hold every name);
extent and B+tree data forks (walked once per inode with level, owner and count checks, then binary-searched);
local and remote symlinks; unwritten extents and holes read as zeros; v5 CRCs on the superblock, inodes,
B+tree blocks, directory blocks and remote symlink blocks (a mismatch is Corrupt), with the owner, block
number and UUID those blocks carry also checked. bigtime, nrext64 and inobtcount are understood.

Incompat features are an explicit allow-list with the reason for each entry (GRUB's way): an image using
anything else fails with e.g. "XFS incompat 0x10 (needsrepair) unsupported".
"""

import struct

from diskfs.checksum import crc32c
from diskfs.errors import NotFound, Unsupported, check_incompat, corrupt
from diskfs.fsbase import FsBase, InodeBase, name_text

MAGIC = b"XFSB"
INCOMPAT = {
    0x1: ("ftype", True, "directory entries carry the file type after the name"),
    0x2: ("spinodes", True, "sparse inode chunks change only how inodes are allocated"),
    0x4: ("meta_uuid", True, "metadata blocks carry sb_meta_uuid, not the user-visible UUID"),
    0x8: ("bigtime", True, "timestamps are 64-bit nanoseconds since 1901"),
    0x10: ("needsrepair", False, "xfs_repair has not finished on this filesystem"),
    0x20: ("nrext64", True, "64-bit data fork extent counters"),
    0x40: ("exchrange", True, "file range exchange is a log-intent feature; the blocks read as usual"),
    0x80: ("parent", True, "parent pointers are extended attributes, which we do not read"),
}
RO_COMPAT_NAMES = {0x1: "finobt", 0x2: "rmapbt", 0x4: "reflink", 0x8: "inobtcount"}
FMT_DEV, FMT_LOCAL, FMT_EXTENTS, FMT_BTREE = 0, 1, 2, 3
DIFLAG_REALTIME = 0x1
DIFLAG2_BIGTIME, DIFLAG2_NREXT64 = 0x8, 0x10
LEAF_OFFSET = 32 << 30  # directory data blocks live below 32 GiB of the directory's address space
MAX_BTREE_LEVEL = 9
MAX_SYMLINK = 1024  # XFS_SYMLINK_MAXLEN


def crc_ok(block, off):
    """XFS CRC: CRC-32C of the block with its CRC field zeroed, stored little-endian."""
    data = bytes(block[:off]) + b"\0\0\0\0" + bytes(block[off + 4:])
    return crc32c(data) == struct.unpack_from("<I", block, off)[0]


class Inode(InodeBase):
    """An inode's core fields and its data fork."""

    def __init__(self, fs, number, raw, where):
        name = fs.dev.name
        if raw[:2] != b"IN":
            raise corrupt(name, "XFS inode %d" % number, where, "bad magic %r" % bytes(raw[:2]))
        self.number = number
        self.mode, self.version, self.format = struct.unpack_from(">HBB", raw, 2)
        if self.version not in (1, 2, 3) or (self.version == 3) != (fs.version == 5):
            raise corrupt(name, "XFS inode %d" % number, where, "inode version %d on a v%d filesystem"
                          % (self.version, fs.version))
        self.uid, self.gid, self.nlink = struct.unpack_from(">III", raw, 8)
        if self.version == 1:
            self.nlink = struct.unpack_from(">H", raw, 6)[0]
        self.size = struct.unpack_from(">Q", raw, 56)[0]
        self.flags = struct.unpack_from(">H", raw, 90)[0]
        self.flags2 = struct.unpack_from(">Q", raw, 120)[0] if self.version == 3 else 0
        if self.flags2 & DIFLAG2_NREXT64:
            self.nextents = struct.unpack_from(">Q", raw, 24)[0]
        else:
            self.nextents = struct.unpack_from(">I", raw, 76)[0]
        secs, nsec = struct.unpack_from(">iI", raw, 40)
        if self.flags2 & DIFLAG2_BIGTIME:
            self.mtime = struct.unpack_from(">Q", raw, 40)[0] // 1000000000 - (1 << 31)
        else:
            self.mtime = secs
        forkoff = raw[82]
        lit = 176 if self.version == 3 else 100
        end = lit + forkoff * 8 if forkoff else len(raw)
        if end > len(raw) or end <= lit:
            raise corrupt(name, "XFS inode %d" % number, where, "fork offset %d" % forkoff)
        self.fork = raw[lit:end]
        self.extents = None  # filled on first use: [(file block, fs block, count, unwritten)] sorted

    def key(self):
        return self.number


class Xfs(FsBase):
    """An XFS filesystem on a block device (`verify`: check v5 CRCs and block owners)."""

    TYPE = "xfs"

    def __init__(self, dev, verify: bool = True):
        self.dev = dev
        self.verify = verify
        self._cache_clear()
        name = dev.name
        sb = self._raw(0, 512, "XFS superblock")
        if sb[:4] != MAGIC:
            raise corrupt(name, "XFS superblock", 0, "no XFS magic")
        self.block_size, self.dblocks = struct.unpack_from(">IQ", sb, 4)
        self.uuid = bytes(sb[32:48])
        self.root_ino = struct.unpack_from(">Q", sb, 56)[0]
        self.agblocks, self.agcount = struct.unpack_from(">II", sb, 84)
        versionnum, self.sectsize, self.inode_size, self.inopblock = struct.unpack_from(">HHHH", sb, 100)
        self.version = versionnum & 0xF
        self.label = name_text(bytes(sb[108:120]).split(b"\0")[0])
        self.blocklog, self.inodelog, self.inopblog, self.agblklog = sb[120], sb[122], sb[123], sb[124]
        self.dirblklog = sb[192]
        self.features2 = struct.unpack_from(">I", sb, 200)[0]
        if (self.block_size != 1 << min(self.blocklog, 31) or not 512 <= self.block_size <= 65536
                or self.inode_size != 1 << min(self.inodelog, 31) or not 256 <= self.inode_size <= 2048
                or self.inode_size > self.block_size or self.inopblock != self.block_size // self.inode_size
                or self.inopblog != self.blocklog - self.inodelog or self.dirblklog > 8
                or not self.agblocks or self.agblocks > 1 << self.agblklog or self.agblklog > 31
                or not self.agcount or self.sectsize not in (512, 1024, 2048, 4096, 8192, 16384, 32768)
                or self.dblocks > self.agcount * self.agblocks or self.dblocks * self.block_size > dev.size
                + self.block_size * 8):
            raise corrupt(name, "XFS superblock", 0, "implausible geometry (%d-byte blocks, %d AGs of %d blocks, "
                          "%d-byte inodes, %d blocks on a %d-byte device)" % (self.block_size, self.agcount,
                                                                             self.agblocks, self.inode_size,
                                                                             self.dblocks, dev.size))
        self.incompat = self.ro_compat = 0
        self.meta_uuid = self.uuid
        if self.version == 5:
            sbfull = self._raw(0, self.sectsize, "XFS superblock")
            if self.verify and not crc_ok(sbfull, 224):
                raise corrupt(name, "XFS superblock", 0, "CRC mismatch")
            self.ro_compat, self.incompat = struct.unpack_from(">II", sb, 212)
            check_incompat(name, "XFS", self.incompat, INCOMPAT)
            self.ftype = True
            if self.incompat & 0x4:
                self.meta_uuid = bytes(sb[248:264])
        elif self.version == 4:
            if not versionnum & 0x2000:
                raise Unsupported("%s: XFS v4 without version 2 directories" % name, "dirv1")
            self.ftype = bool(versionnum & 0x8000 and self.features2 & 0x200)
        else:
            raise Unsupported("%s: XFS version %d" % (name, self.version), "version %d" % self.version)
        self.crc = self.version == 5
        self.dir_block = self.block_size << self.dirblklog
        self.hdr = 64 if self.crc else 16  # directory data block header
        self.btree_hdr = 72 if self.crc else 24  # long-format B+tree block header

    # ---- raw access ----
    def fsb_offset(self, fsb, count=1, what="XFS block"):
        """Device byte offset of filesystem block `fsb` (AG number and AG block packed as XFS does)."""
        agno, agbno = fsb >> self.agblklog, fsb & ((1 << self.agblklog) - 1)
        if agno >= self.agcount or agbno + count > self.agblocks:
            raise corrupt(self.dev.name, what, None, "block %d+%d (AG %d block %d) is outside the filesystem"
                          % (fsb, count, agno, agbno))
        return (agno * self.agblocks + agbno) * self.block_size

    def _block(self, fsb, what):
        data = self._cache.get(fsb)
        if data is None:
            data = self._raw(self.fsb_offset(fsb, 1, what), self.block_size, what)
            self._cache_put(fsb, data)
        return data

    def _check_v5_block(self, blk, what, where, crc_off, uuid_off, owner_off, blkno_off, owner):
        """A v5 metadata block's CRC, UUID, owner and self-address."""
        if not (self.crc and self.verify):
            return
        if not crc_ok(blk, crc_off):
            raise corrupt(self.dev.name, what, where, "CRC mismatch")
        if bytes(blk[uuid_off:uuid_off + 16]) != self.meta_uuid:
            raise corrupt(self.dev.name, what, where, "belongs to another filesystem (UUID)")
        if owner is not None and struct.unpack_from(">Q", blk, owner_off)[0] != owner:
            raise corrupt(self.dev.name, what, where, "owner is inode %d, not %d"
                          % (struct.unpack_from(">Q", blk, owner_off)[0], owner))
        if struct.unpack_from(">Q", blk, blkno_off)[0] != where // 512:
            raise corrupt(self.dev.name, what, where, "says it lives at sector %d"
                          % struct.unpack_from(">Q", blk, blkno_off)[0])

    # ---- inodes ----
    def inode(self, number):
        agno = number >> (self.agblklog + self.inopblog)
        agbno = (number >> self.inopblog) & ((1 << self.agblklog) - 1)
        idx = number & ((1 << self.inopblog) - 1)
        if agno >= self.agcount or agbno >= self.agblocks or number >> 56:
            raise corrupt(self.dev.name, "XFS inode", None, "inode number %d is outside the filesystem" % number)
        where = (agno * self.agblocks + agbno) * self.block_size + idx * self.inode_size
        blk = self._block((agno << self.agblklog) | agbno, "XFS inode cluster")
        raw = blk[idx * self.inode_size:(idx + 1) * self.inode_size]
        if self.crc and self.verify:
            if not crc_ok(raw, 100):
                raise corrupt(self.dev.name, "XFS inode %d" % number, where, "CRC mismatch")
            if struct.unpack_from(">Q", raw, 152)[0] != number or bytes(raw[160:176]) != self.meta_uuid:
                raise corrupt(self.dev.name, "XFS inode %d" % number, where, "inode number or UUID mismatch")
        node = Inode(self, number, raw, where)
        if node.flags & DIFLAG_REALTIME:
            raise Unsupported("%s: inode %d lives on the realtime device" % (self.dev.name, number), "realtime")
        return node

    # ---- data fork block maps ----
    def _extent_list(self, inode):
        """[(file block, fs block, count, unwritten)] of the data fork, sorted and checked, cached."""
        if inode.extents is not None:
            return inode.extents
        what = "XFS data fork of inode %d" % inode.number
        if inode.nextents > self.dblocks:
            raise corrupt(self.dev.name, what, None, "%d extents on a %d-block filesystem" % (inode.nextents,
                                                                                            self.dblocks))
        if inode.format == FMT_EXTENTS:
            if inode.nextents * 16 > len(inode.fork):
                raise corrupt(self.dev.name, what, None, "%d extents do not fit in the fork" % inode.nextents)
            recs = [inode.fork[i * 16:(i + 1) * 16] for i in range(inode.nextents)]
        elif inode.format == FMT_BTREE:
            recs = self._btree_records(inode, what)
        else:
            raise corrupt(self.dev.name, what, None, "format %d has no extents" % inode.format)
        out = []
        last_end = 0
        for r in recs:
            hi, lo = struct.unpack(">QQ", r)
            startoff = (hi >> 9) & ((1 << 54) - 1)
            startblock = ((hi & 0x1FF) << 43) | (lo >> 21)
            count = lo & 0x1FFFFF
            if not count or startoff < last_end:
                raise corrupt(self.dev.name, what, None, "extent at file block %d (%d blocks) overlaps or is empty"
                              % (startoff, count))
            self.fsb_offset(startblock, count, what)
            out.append((startoff, startblock, count, bool(hi >> 63)))
            last_end = startoff + count
        inode.extents = out
        return out

    def _btree_records(self, inode, what):
        fork = inode.fork
        if len(fork) < 4:
            raise corrupt(self.dev.name, what, None, "B+tree root does not fit")
        level, numrecs = struct.unpack_from(">HH", fork, 0)
        maxrecs = (len(fork) - 4) // 16
        if not 1 <= level <= MAX_BTREE_LEVEL or numrecs > maxrecs or not numrecs:
            raise corrupt(self.dev.name, what, None, "B+tree root level %d with %d of %d records" % (level, numrecs,
                                                                                                    maxrecs))
        recs = []
        seen = set()
        # depth-first, in key order: (pointers, expected level)
        stack = [([struct.unpack_from(">Q", fork, 4 + maxrecs * 8 + 8 * i)[0] for i in range(numrecs - 1, -1, -1)],
                  level - 1)]
        while stack:
            ptrs, lvl = stack[-1]
            if not ptrs:
                stack.pop()
                continue
            fsb = ptrs.pop()
            if fsb in seen:
                raise corrupt(self.dev.name, what, None, "B+tree block %d is reached twice" % fsb)
            seen.add(fsb)
            where = self.fsb_offset(fsb, 1, what)
            blk = self._raw(where, self.block_size, what)
            magic = bytes(blk[:4])
            if magic != (b"BMA3" if self.crc else b"BMAP"):
                raise corrupt(self.dev.name, "XFS B+tree block of inode %d" % inode.number, where,
                              "bad magic %r" % magic)
            self._check_v5_block(blk, "XFS B+tree block of inode %d" % inode.number, where, 64, 40, 56, 24,
                                 inode.number)
            blevel, n = struct.unpack_from(">HH", blk, 4)
            bmax = (self.block_size - self.btree_hdr) // 16
            if blevel != lvl or n > bmax:
                raise corrupt(self.dev.name, "XFS B+tree block of inode %d" % inode.number, where,
                              "level %d (expected %d) with %d records" % (blevel, lvl, n))
            if blevel == 0:
                h = self.btree_hdr
                recs.extend(blk[h + 16 * i:h + 16 * (i + 1)] for i in range(n))
                if len(recs) > inode.nextents:
                    raise corrupt(self.dev.name, what, None, "B+tree holds more than the inode's %d extents"
                                  % inode.nextents)
            else:
                base = self.btree_hdr + bmax * 8
                stack.append(([struct.unpack_from(">Q", blk, base + 8 * i)[0] for i in range(n - 1, -1, -1)],
                              blevel - 1))
        return recs

    def _map(self, inode, fblock):
        """(first file block, count, fs block or None) of the extent or hole holding file block `fblock`."""
        ext = self._extent_list(inode)
        lo, hi = 0, len(ext)
        while lo < hi:
            mid = (lo + hi) // 2
            if ext[mid][0] <= fblock:
                lo = mid + 1
            else:
                hi = mid
        i = lo - 1
        if i >= 0:
            start, fsb, count, unwritten = ext[i]
            if fblock < start + count:
                return start, count, (None if unwritten else fsb)
            hole = start + count
        else:
            hole = 0
        nxt = ext[i + 1][0] if i + 1 < len(ext) else (1 << 62)
        return hole, nxt - hole, None

    def runs(self, inode, offset, length):
        if inode.format == FMT_LOCAL:
            data = inode.fork[:inode.size]
            have = max(0, min(length, len(data) - offset))
            if have:
                yield have, data[offset:offset + have]
            if length > have:
                yield length - have, None
            return
        bs = self.block_size
        pos, end = offset, offset + length
        while pos < end:
            fblock = pos // bs
            start, count, fsb = self._map(inode, fblock)
            n = min(end, (start + count) * bs) - pos
            if fsb is None:
                yield n, None
            else:
                # device offset of the run's first byte; extents never cross an AG, so it is contiguous
                yield n, self.fsb_offset(fsb, count) + (pos - start * bs)
            pos += n

    # ---- directories ----
    def entries(self, inode):
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        if inode.format == FMT_LOCAL:
            yield from self._shortform(inode)
            return
        if inode.format not in (FMT_EXTENTS, FMT_BTREE):
            raise corrupt(self.dev.name, "XFS directory inode %d" % inode.number, None, "format %d" % inode.format)
        per = 1 << self.dirblklog  # fs blocks per directory block
        for start, _fsb, count, unwritten in self._extent_list(inode):
            if start * self.block_size >= LEAF_OFFSET:
                break
            if unwritten:
                continue
            first = start - start % per
            for dblock in range(first, min(start + count, LEAF_OFFSET // self.block_size), per):
                if dblock < start:
                    continue  # began in the previous extent: already read there
                blk, where = self._dir_block(inode, dblock)
                yield from self._data_block(inode, blk, where)

    def _dir_block(self, inode, dblock):
        """A whole directory block starting at file block `dblock` (its blocks may be in several extents)."""
        if self.dirblklog == 0:
            start, _, fsb = self._map(inode, dblock)
            if fsb is None:
                raise corrupt(self.dev.name, "XFS directory inode %d" % inode.number, None,
                              "directory block at file block %d has a hole" % dblock)
            where = self.fsb_offset(fsb + (dblock - start))  # the block's place inside its extent
            return self._raw(where, self.block_size, "XFS directory block"), where
        out = bytearray()
        where = None
        for i in range(1 << self.dirblklog):
            start, count, fsb = self._map(inode, dblock + i)
            if fsb is None:
                raise corrupt(self.dev.name, "XFS directory inode %d" % inode.number, None,
                              "directory block at file block %d has a hole" % dblock)
            off = self.fsb_offset(fsb + (dblock + i - start))
            if where is None:
                where = off
            out += self._raw(off, self.block_size, "XFS directory block")
        return out, where

    def _shortform(self, inode):
        f = inode.fork
        what = "XFS short-form directory inode %d" % inode.number
        if len(f) < 6 or inode.size > len(f):
            raise corrupt(self.dev.name, what, None, "size %d in a %d-byte fork" % (inode.size, len(f)))
        count, i8 = f[0], f[1]
        width = 8 if i8 else 4
        pos = 2 + width
        end = inode.size
        for _ in range(count):
            if pos + 3 > end:
                raise corrupt(self.dev.name, what, None, "entries overrun %d bytes" % end)
            namelen = f[pos]
            name = f[pos + 3:pos + 3 + namelen]
            pos += 3 + namelen + (1 if self.ftype else 0)
            if not namelen or pos + width > end:
                raise corrupt(self.dev.name, what, None, "entry of name length %d overruns" % namelen)
            ino = struct.unpack_from(">Q", f, pos)[0] if width == 8 else struct.unpack_from(">I", f, pos)[0]
            pos += width
            yield name_text(name), ino

    def _data_block(self, inode, blk, where):
        magic = bytes(blk[:4])
        what = "XFS directory block of inode %d" % inode.number
        if magic in (b"XDB3", b"XD2B"):
            count = struct.unpack_from(">I", blk, len(blk) - 8)[0]
            end = len(blk) - 8 - count * 8
        elif magic in (b"XDD3", b"XD2D"):
            end = len(blk)
        else:
            raise corrupt(self.dev.name, what, where, "bad magic %r" % magic)
        if (magic in (b"XDB3", b"XDD3")) != self.crc:
            raise corrupt(self.dev.name, what, where, "magic %r on a v%d filesystem" % (magic, self.version))
        self._check_v5_block(blk, what, where, 4, 24, 40, 8, inode.number)
        if end < self.hdr:
            raise corrupt(self.dev.name, what, where, "block tail claims %d leaf entries" % count)
        pos = self.hdr
        while pos < end:
            if blk[pos] == 0xFF and blk[pos + 1] == 0xFF:
                length = struct.unpack_from(">H", blk, pos + 2)[0]
                if length < 8 or length % 8 or pos + length > end:
                    raise corrupt(self.dev.name, what, where + pos, "free space entry of %d bytes" % length)
                pos += length
                continue
            if pos + 11 > end:
                raise corrupt(self.dev.name, what, where + pos, "entry overruns the block")
            child, namelen = struct.unpack_from(">QB", blk, pos)
            size = (9 + namelen + (1 if self.ftype else 0) + 2 + 7) & ~7
            if not namelen or pos + size > end:
                raise corrupt(self.dev.name, what, where + pos, "entry of name length %d" % namelen)
            name = name_text(blk[pos + 9:pos + 9 + namelen])
            if name != "." and name != "..":
                yield name, child
            pos += size

    def readlink_inode(self, inode):
        what = "XFS symlink inode %d" % inode.number
        if inode.size > MAX_SYMLINK or not inode.size:
            raise corrupt(self.dev.name, what, None, "target of %d bytes" % inode.size)
        if inode.format == FMT_LOCAL:
            if inode.size > len(inode.fork):
                raise corrupt(self.dev.name, what, None, "local target longer than the fork")
            return name_text(inode.fork[:inode.size])
        data = bytearray()
        hdr = 56 if self.crc else 0
        for _start, fsb, count, _unwritten in self._extent_list(inode):
            for i in range(count):
                where = self.fsb_offset(fsb + i)
                blk = self._raw(where, self.block_size, what)
                if self.crc:
                    if blk[:4] != b"XSLM":
                        raise corrupt(self.dev.name, what, where, "remote symlink block without XSLM magic")
                    self._check_v5_block(blk, what, where, 12, 16, 32, 40, inode.number)
                    nbytes = struct.unpack_from(">I", blk, 8)[0]
                    data += blk[hdr:hdr + min(nbytes, self.block_size - hdr)]
                else:
                    data += blk
                if len(data) >= inode.size:
                    return name_text(data[:inode.size])
        raise corrupt(self.dev.name, what, None, "remote target shorter than %d bytes" % inode.size)

    def root(self):
        node = self.inode(self.root_ino)
        if not node.is_dir():
            raise corrupt(self.dev.name, "XFS root inode", None, "inode %d is not a directory" % self.root_ino)
        return node

    def node(self, ref):
        return self.inode(ref)

    def info(self):
        out = FsBase.info(self)
        feats = [v[0] for k, v in sorted(INCOMPAT.items()) if self.incompat & k]
        feats += [v for k, v in sorted(RO_COMPAT_NAMES.items()) if self.ro_compat & k]
        out.update({"version": self.version, "block size": self.block_size, "blocks": self.dblocks,
                    "allocation groups": self.agcount, "inode size": self.inode_size,
                    "directory block size": self.dir_block, "features": " ".join(feats)})
        return out
