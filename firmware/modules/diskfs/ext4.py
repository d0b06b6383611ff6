"""ext2/ext3/ext4, read-only: extents of any depth and indirect blocks, linear and htree directories (read
linearly, as htree allows), fast and slow symlinks, sparse files, 64bit and flex_bg layouts.

Incompat features are an explicit allow-list, so an image using something else fails by name.
"""

import struct

from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import FsBase

MAGIC = 0xEF53
# incompat flag -> (name, supported?, why)
INCOMPAT = {
    0x1: ("compression", False, "never merged into Linux"),
    0x2: ("filetype", True, "directory entries carry the type; we read names and inodes"),
    0x4: ("needs_recovery", False, "the journal holds unreplayed metadata; reading would give stale data"),
    0x8: ("journal_dev", False, "an external journal device, not a filesystem"),
    0x10: ("meta_bg", False, "group descriptors spread over the disk are not located yet"),
    0x40: ("extents", True, "extent trees of any depth"),
    0x80: ("64bit", True, "64-bit block numbers and 64-byte group descriptors"),
    0x100: ("mmp", True, "multi-mount protection matters only to writers"),
    0x200: ("flex_bg", True, "group metadata location comes from the descriptors"),
    0x400: ("ea_inode", True, "large xattrs in inodes; we do not read xattrs"),
    0x1000: ("dirdata", False, "Lustre directory data"),
    0x2000: ("csum_seed", True, "changes checksums only, which we do not verify yet"),
    0x4000: ("largedir", True, "3-level htree: we read directories linearly"),
    0x8000: ("inline_data", False, "data inside the inode is not read yet"),
    0x10000: ("encrypt", False, "fscrypt-encrypted names and data"),
    0x20000: ("casefold", False, "case-insensitive name lookup"),
}
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000
EXTENTS_FL, INLINE_DATA_FL = 0x80000, 0x10000000


def _text(raw, what):
    try:
        return bytes(raw).decode()
    except UnicodeError:
        raise Corrupt("%s is not valid UTF-8: %r" % (what, bytes(raw[:32]))) from None


class Inode:
    """The fields of an inode that reading needs."""

    def __init__(self, number, raw):
        self.number = number
        self.mode = struct.unpack_from("<H", raw, 0)[0]
        self.size = struct.unpack_from("<I", raw, 4)[0] | (struct.unpack_from("<I", raw, 108)[0] << 32)
        self.flags = struct.unpack_from("<I", raw, 32)[0]
        self.block = raw[40:100]

    def is_dir(self):
        return self.mode & S_IFMT == S_IFDIR

    def is_symlink(self):
        return self.mode & S_IFMT == S_IFLNK


class Ext4(FsBase):
    """An ext2/3/4 filesystem on a block device."""

    TYPE = "ext4"

    def __init__(self, dev):
        self.dev = dev
        sb = dev.read(1024, 1024)
        if struct.unpack_from("<H", sb, 56)[0] != MAGIC:
            raise Corrupt("%s: no ext2/3/4 superblock (magic at offset 1080)" % dev.name)
        self.inodes_count, blocks_lo = struct.unpack_from("<II", sb, 0)
        self.first_data_block, log_bs = struct.unpack_from("<II", sb, 20)
        self.blocks_per_group = struct.unpack_from("<I", sb, 32)[0]
        self.inodes_per_group = struct.unpack_from("<I", sb, 40)[0]
        if log_bs > 6 or not self.inodes_per_group or not self.blocks_per_group:
            raise Corrupt("%s: implausible superblock (log block size %d)" % (dev.name, log_bs))
        self.block_size = 1024 << log_bs
        rev = struct.unpack_from("<I", sb, 76)[0]
        self.inode_size = struct.unpack_from("<H", sb, 88)[0] if rev else 128
        incompat = struct.unpack_from("<I", sb, 96)[0]
        for bit in sorted(INCOMPAT):
            if incompat & bit and not INCOMPAT[bit][1]:
                raise Unsupported("%s: ext4 incompat 0x%x (%s) unsupported: %s"
                                  % (dev.name, bit, INCOMPAT[bit][0], INCOMPAT[bit][2]))
        unknown = incompat & ~sum(INCOMPAT)
        if unknown:
            raise Unsupported("%s: ext4 incompat 0x%x unknown to this reader" % (dev.name, unknown))
        self.is64 = bool(incompat & 0x80)
        self.desc_size = struct.unpack_from("<H", sb, 254)[0] if self.is64 else 32
        if self.desc_size < 32 or self.inode_size < 128 or self.inode_size > self.block_size:
            raise Corrupt("%s: implausible descriptor size %d or inode size %d"
                          % (dev.name, self.desc_size, self.inode_size))
        self.blocks_count = blocks_lo | ((struct.unpack_from("<I", sb, 336)[0] << 32) if self.is64 else 0)
        self.uuid = sb[104:120]
        self.label = _text(sb[120:136].split(b"\0")[0], "%s: volume label" % dev.name)
        self._itable = {}

    # ---- blocks and inodes ----
    def read_block(self, n, count=1):
        if n + count > self.blocks_count:
            raise Corrupt("%s: block %d is past the end (%d blocks)" % (self.dev.name, n, self.blocks_count))
        return self.dev.read(n * self.block_size, count * self.block_size)

    def _inode_table(self, group):
        if group not in self._itable:
            off = (self.first_data_block + 1) * self.block_size + group * self.desc_size
            d = self.dev.read(off, self.desc_size)
            lo = struct.unpack_from("<I", d, 8)[0]
            hi = struct.unpack_from("<I", d, 40)[0] if self.desc_size >= 64 else 0
            self._itable[group] = lo | (hi << 32)
        return self._itable[group]

    def inode(self, number):
        if not 1 <= number <= self.inodes_count:
            raise Corrupt("%s: inode %d out of range" % (self.dev.name, number))
        group, index = divmod(number - 1, self.inodes_per_group)
        table = self._inode_table(group)
        return Inode(number, self.dev.read(table * self.block_size + index * self.inode_size, 160
                                           if self.inode_size >= 160 else 128))

    # ---- block maps ----
    def extents(self, inode):
        """[(logical block, physical block, count)] of a file, sorted; holes are absent."""
        if inode.flags & INLINE_DATA_FL:
            raise Unsupported("%s: inode %d has inline data" % (self.dev.name, inode.number))
        if inode.flags & EXTENTS_FL:
            out = []
            self._walk(inode.block, inode.number, 0, out)
            out.sort()
            return out
        return self._indirect(inode)

    def _walk(self, node, ino, depth, out):
        magic, entries, _, tree_depth = struct.unpack_from("<HHHH", node, 0)
        if magic != 0xF30A or depth > 5 or 12 * (entries + 1) > len(node):
            raise Corrupt("%s: inode %d: bad extent node (magic 0x%x, depth %d)" % (self.dev.name, ino, magic, depth))
        for i in range(entries):
            e = 12 + 12 * i
            if tree_depth == 0:
                lblock, length, hi, lo = struct.unpack_from("<IHHI", node, e)
                if length > 32768:
                    continue  # uninitialized (preallocated) extent: reads as zeros, like a hole
                out.append((lblock, lo | (hi << 32), length))
            else:
                _, lo, hi = struct.unpack_from("<IIH", node, e)
                self._walk(self.read_block(lo | (hi << 32)), ino, depth + 1, out)

    def _indirect(self, inode):
        """ext2/3 block maps: 12 direct pointers, then single, double and triple indirect blocks."""
        per = self.block_size // 4
        ptrs = struct.unpack("<15I", inode.block)
        out = []

        def add(lblock, phys):
            if not phys:
                return
            if out and out[-1][0] + out[-1][2] == lblock and out[-1][1] + out[-1][2] == phys:
                out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
            else:
                out.append((lblock, phys, 1))

        for i in range(12):
            add(i, ptrs[i])
        base = 12
        for level in (1, 2, 3):
            self._indirect_level(ptrs[11 + level], level, base, per, add)
            base += per ** level
        return out

    def _indirect_level(self, blk, level, base, per, add):
        if not blk:
            return
        table = struct.unpack("<%dI" % per, self.read_block(blk))
        if level == 1:
            for i in range(per):
                add(base + i, table[i])
            return
        span = per ** (level - 1)
        for i in range(per):
            if table[i]:
                self._indirect_level(table[i], level - 1, base + i * span, per, add)

    def read_inode_data(self, inode, limit=None):
        """A file's bytes (holes as zeros), at most `limit` bytes."""
        if inode.size > self.blocks_count * self.block_size:
            raise Corrupt("%s: inode %d claims %d bytes, more than the filesystem" % (self.dev.name, inode.number,
                                                                                      inode.size))
        size = inode.size if limit is None else min(inode.size, limit)
        buf = bytearray(size)
        self.readinto_file(inode, 0, buf)
        return bytes(buf)

    def readinto_file(self, inode, offset, buf):
        """Fill buf from `offset` of the file; contiguous runs are read in one device request."""
        bs = self.block_size
        end = min(offset + len(buf), inode.size)
        for lblock, phys, count in self.extents(inode):
            lo = max(offset, lblock * bs)
            hi = min(end, (lblock + count) * bs)
            if lo >= hi:
                continue
            mv = memoryview(buf)[lo - offset:hi - offset]
            self.dev.readinto(phys * bs + (lo - lblock * bs), mv)
        return max(0, end - offset)

    # ---- names ----
    def entries(self, inode):
        """[(name, inode number)] of a directory (htree directories read linearly)."""
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        data = self.read_inode_data(inode)
        out = []
        pos = 0
        while pos + 8 <= len(data):
            ino, rec_len, name_len = struct.unpack_from("<IHB", data, pos)
            if rec_len < 8 or pos + rec_len > len(data) or name_len > rec_len - 8:
                raise Corrupt("%s: directory inode %d: bad entry at offset %d" % (self.dev.name, inode.number, pos))
            if ino:
                name = _text(data[pos + 8:pos + 8 + name_len], "%s: a name in directory inode %d"
                             % (self.dev.name, inode.number))
                if name not in (".", ".."):
                    out.append((name, ino))
            pos += rec_len
        return out

    def readlink_inode(self, inode):
        what = "%s: symlink inode %d" % (self.dev.name, inode.number)
        if inode.size < 60 and not inode.flags & EXTENTS_FL and not inode.flags & INLINE_DATA_FL:
            return _text(inode.block[:inode.size], what)
        if inode.size > 4096:
            raise Corrupt("%s is %d bytes long" % (what, inode.size))
        return _text(self.read_inode_data(inode), what)

    def root(self):
        return self.inode(2)

    def node(self, ref):
        return self.inode(ref)
