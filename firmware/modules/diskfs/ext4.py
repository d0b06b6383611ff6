"""ext2/ext3/ext4, read-only.

1 KiB to 64 KiB blocks, 64bit, flex_bg, meta_bg, bigalloc; extent trees of any depth and ext2/3 indirect
blocks (looked up per run, never flattened); inline data; linear and htree directories (htree read linearly,
as GRUB does: the leaves hold every entry); fast and slow symlinks; sparse and huge files; metadata_csum
(superblock, group descriptors, inodes, extent blocks, directory leaves and htree nodes: a mismatch is Corrupt)
and gdt_csum. A journal that needs recovery is replayed in memory by diskfs.jbd2 (committed transactions
only, revokes honoured), so a filesystem from a crashed system reads as the kernel would see it after
mounting.

Incompat features are an explicit allow-list with the reason for each (GRUB's way), so an image using
anything else fails by name.
"""

import struct

from diskfs import jbd2
from diskfs.checksum import crc16, crc32c_raw
from diskfs.errors import NotFound, Unsupported, check_incompat, corrupt
from diskfs.fsbase import CACHE_BLOCKS, FsBase, InodeBase, name_text

MAGIC = 0xEF53
# incompat bit -> (name, readable?, why)
INCOMPAT = {
    0x1: ("compression", False, "e2compr was never merged into Linux"),
    0x2: ("filetype", True, "directory entries carry the file type next to a one-byte name length"),
    0x4: ("needs_recovery", True, "committed journal transactions are replayed in memory before reading"),
    0x8: ("journal_dev", False, "an external journal device holds no files"),
    0x10: ("meta_bg", True, "group descriptors are found in each meta group's first, second and last group"),
    0x40: ("extents", True, "extent trees of any depth"),
    0x80: ("64bit", True, "64-bit block numbers and 64-byte group descriptors"),
    0x100: ("mmp", True, "multi-mount protection matters only to writers"),
    0x200: ("flex_bg", True, "group metadata is wherever the descriptors say"),
    0x400: ("ea_inode", True, "large xattr values live in inodes; no xattr we read can be one"),
    0x1000: ("dirdata", False, "Lustre's extra data in directory entries"),
    0x2000: ("csum_seed", True, "the checksum seed is stored in the superblock"),
    0x4000: ("largedir", True, "3-level htrees and directories over 2 GiB; we read directories linearly"),
    0x8000: ("inline_data", True, "small files and directories inside the inode and its system.data xattr"),
    0x10000: ("encrypt", True, "only encrypted inodes are refused (by inode), the rest reads normally"),
    0x20000: ("casefold", True, "names are stored as created; lookups match them exactly"),
}
RO_COMPAT_NAMES = {0x1: "sparse_super", 0x2: "large_file", 0x4: "btree_dir", 0x8: "huge_file", 0x10: "gdt_csum",
                   0x20: "dir_nlink", 0x40: "extra_isize", 0x80: "has_snapshot", 0x100: "quota",
                   0x200: "bigalloc", 0x400: "metadata_csum", 0x800: "replica", 0x1000: "readonly",
                   0x2000: "project", 0x4000: "shared_blocks", 0x8000: "verity", 0x10000: "orphan_present"}
COMPAT_HAS_JOURNAL, COMPAT_DIR_INDEX, COMPAT_SPARSE_SUPER2 = 0x4, 0x20, 0x200
RO_SPARSE_SUPER, RO_HUGE_FILE, RO_GDT_CSUM, RO_BIGALLOC, RO_METADATA_CSUM = 0x1, 0x8, 0x10, 0x200, 0x400
INC_FILETYPE, INC_RECOVER, INC_META_BG, INC_64BIT = 0x2, 0x4, 0x10, 0x80
INC_CSUM_SEED, INC_LARGEDIR, INC_INLINE = 0x2000, 0x4000, 0x8000
# inode flags
ENCRYPT_FL, INDEX_FL, HUGE_FILE_FL, EXTENTS_FL, EA_INODE_FL, INLINE_DATA_FL = (0x800, 0x1000, 0x40000, 0x80000,
                                                                              0x200000, 0x10000000)
EXTENT_MAGIC = 0xF30A
MAX_EXTENT_DEPTH = 5
MAX_SYMLINK = 4096


class Inode(InodeBase):
    """The fields of an inode that reading needs (raw is the whole on-disk inode)."""

    def __init__(self, fs, number, raw):
        self.number = number
        (self.mode, uid_lo, size_lo, _, _, self.mtime, _, gid_lo, self.nlink, blocks_lo,
         self.flags) = struct.unpack_from("<HHIIIIIHHII", raw, 0)
        self.block = raw[40:100]
        self.generation, acl_lo, size_hi = struct.unpack_from("<III", raw, 100)
        blocks_hi, acl_hi, uid_hi, gid_hi = struct.unpack_from("<HHHH", raw, 116)
        self.uid, self.gid = uid_lo | (uid_hi << 16), gid_lo | (gid_hi << 16)
        self.file_acl = acl_lo | (acl_hi << 32)
        self.size = size_lo
        if self.mode & 0o170000 == 0o100000 or fs.incompat & INC_LARGEDIR:  # as the kernel's ext4_isize()
            self.size |= size_hi << 32
        iblocks = blocks_lo | (blocks_hi << 32 if fs.ro_compat & RO_HUGE_FILE else 0)
        if self.flags & HUGE_FILE_FL and fs.ro_compat & RO_HUGE_FILE:
            iblocks *= fs.block_size // 512
        self.iblocks = iblocks  # in 512-byte units
        self.raw = raw
        self.extra_isize = struct.unpack_from("<H", raw, 128)[0] if len(raw) > 128 else 0
        self.csum_seed = 0


class Ext4(FsBase):
    """An ext2/3/4 filesystem on a block device (`verify`: check metadata checksums)."""

    TYPE = "ext4"

    def __init__(self, dev, verify: bool = True):
        self.dev = dev
        self.verify = verify
        self._cache_clear()
        self._extents_ok = {}  # (byte offset, inode) -> the cached block whose checksum was verified (once per block)
        self._groups = {}
        self.journal_replayed = 0
        self._parse_super(self._raw(1024, 1024))
        if self.incompat & INC_RECOVER:
            overlay = self._replay_journal()
            if overlay:
                self.dev = overlay
                self._cache_clear()
                self._groups = {}
                self._parse_super(self._raw(1024, 1024))

    # ---- superblock ----
    def _parse_super(self, sb):
        name = self.dev.name
        if struct.unpack_from("<H", sb, 56)[0] != MAGIC:
            raise corrupt(name, "ext4 superblock", 1024, "no ext2/3/4 magic")
        self.inodes_count, blocks_lo = struct.unpack_from("<II", sb, 0)
        (self.first_data_block, log_bs, log_cs, self.blocks_per_group, self.clusters_per_group,
         self.inodes_per_group) = struct.unpack_from("<IIIIII", sb, 20)
        self.rev = struct.unpack_from("<I", sb, 76)[0]
        self.compat, self.incompat, self.ro_compat = struct.unpack_from("<III", sb, 92)
        if self.rev == 0:
            self.compat = self.incompat = self.ro_compat = 0
        if log_bs > 6:
            raise corrupt(name, "ext4 superblock", 1024, "implausible superblock (log block size %d)" % log_bs)
        self.block_size = bs = 1024 << log_bs
        self.inode_size = struct.unpack_from("<H", sb, 88)[0] if self.rev else 128
        self.first_ino = struct.unpack_from("<I", sb, 84)[0] if self.rev else 11
        check_incompat(name, "ext4", self.incompat, INCOMPAT)
        self.is64 = bool(self.incompat & INC_64BIT)
        self.desc_size = struct.unpack_from("<H", sb, 254)[0] if self.is64 else 32
        self.blocks_count = blocks_lo | ((struct.unpack_from("<I", sb, 336)[0] << 32) if self.is64 else 0)
        if self.ro_compat & RO_BIGALLOC:
            if log_cs < log_bs or log_cs - log_bs > 16:
                raise corrupt(name, "ext4 superblock", 1024, "bigalloc cluster size 2^%d" % log_cs)
            self.cluster_size = 1024 << log_cs
        else:
            self.cluster_size = bs
        ipg, bpg = self.inodes_per_group, self.blocks_per_group
        if (not ipg or ipg > bs * 8 or not bpg or not self.blocks_count or self.inode_size < 128
                or self.inode_size > bs or self.inode_size & (self.inode_size - 1)
                or self.desc_size < 32 or self.desc_size > 1024 or self.desc_size & (self.desc_size - 1)
                or self.first_data_block >= self.blocks_count
                or self.blocks_count * bs > (self.dev.size + bs - 1) // bs * bs):
            raise corrupt(name, "ext4 superblock", 1024, "implausible superblock (%d blocks of %d bytes on a "
                          "%d-byte device, %d inodes/group, inode size %d, descriptor size %d)"
                          % (self.blocks_count, bs, self.dev.size, ipg, self.inode_size, self.desc_size))
        if self.ro_compat & RO_BIGALLOC:
            if bpg != self.clusters_per_group * (self.cluster_size // bs):
                raise corrupt(name, "ext4 superblock", 1024, "bigalloc blocks per group disagree with clusters")
        elif bpg > bs * 8:
            raise corrupt(name, "ext4 superblock", 1024, "%d blocks per group" % bpg)
        self.group_count = (self.blocks_count - self.first_data_block + bpg - 1) // bpg
        if self.inodes_count > self.group_count * ipg:
            raise corrupt(name, "ext4 superblock", 1024, "%d inodes in %d groups of %d" % (self.inodes_count,
                                                                                         self.group_count, ipg))
        self.uuid = bytes(sb[104:120])
        self.label = name_text(bytes(sb[120:136]).split(b"\0")[0])
        self.first_meta_bg = struct.unpack_from("<I", sb, 0x104)[0]
        self.journal_inum = struct.unpack_from("<I", sb, 0xE0)[0]
        self.journal_dev = struct.unpack_from("<I", sb, 0xE4)[0]
        self.backup_bgs = struct.unpack_from("<II", sb, 0x24C)
        self.csum = bool(self.ro_compat & RO_METADATA_CSUM)
        self.gdt_csum = bool(self.ro_compat & RO_GDT_CSUM) and not self.csum
        if self.csum:
            if sb[0x175] != 1:
                raise Unsupported("%s: ext4 checksum type %d (only crc32c exists)" % (name, sb[0x175]),
                                  "checksum type")
            if self.verify and crc32c_raw(0xFFFFFFFF, sb[:0x3FC]) != struct.unpack_from("<I", sb, 0x3FC)[0]:
                raise corrupt(name, "ext4 superblock", 1024, "checksum mismatch")
            if self.incompat & INC_CSUM_SEED:
                self.csum_seed = struct.unpack_from("<I", sb, 0x270)[0]
            else:
                self.csum_seed = crc32c_raw(0xFFFFFFFF, self.uuid)
        self.filetype = bool(self.incompat & INC_FILETYPE)
        self.descs_per_block = bs // self.desc_size

    # ---- blocks (a small cache for metadata) ----
    def _block(self, n, what):
        """Metadata block `n` (cached; callers must not modify it)."""
        data = self._cache.get(n)
        if data is not None:
            return data
        if n < self.first_data_block and n != 0 or n >= self.blocks_count:
            raise corrupt(self.dev.name, what, None, "block %d is outside the filesystem (%d blocks)"
                          % (n, self.blocks_count))
        data = self._raw(n * self.block_size, self.block_size)
        self._cache_put(n, data)
        return data

    def _has_super(self, group):
        if group == 0:
            return True
        if self.compat & COMPAT_SPARSE_SUPER2:
            return group in self.backup_bgs
        if group <= 1 or not self.ro_compat & RO_SPARSE_SUPER:
            return True
        if not group & 1:
            return False
        for base in (3, 5, 7):
            n = base
            while n < group:
                n *= base
            if n == group:
                return True
        return False

    def _group_first_block(self, group):
        return self.first_data_block + group * self.blocks_per_group

    def _desc_block(self, group):
        """Block holding the descriptor of `group` (meta_bg spreads them over the disk)."""
        mg = group // self.descs_per_block
        if not self.incompat & INC_META_BG or mg < self.first_meta_bg:
            return self.first_data_block + 1 + mg
        first = mg * self.descs_per_block
        extra = 1 if self._has_super(first) else 0
        if self.block_size == 1024 and mg == 0 and self.first_data_block == 0:
            extra += 1
        return self._group_first_block(first) + extra

    def _group(self, group):
        """(inode table block, flags) of a group, its descriptor checksum verified."""
        got = self._groups.get(group)
        if got is not None:
            return got
        if group >= self.group_count:
            raise corrupt(self.dev.name, "ext4 group descriptor", None, "group %d of %d" % (group,
                                                                                            self.group_count))
        blk = self._desc_block(group)
        d = self._block(blk, "ext4 group descriptor table")
        pos = (group % self.descs_per_block) * self.desc_size
        desc = d[pos:pos + self.desc_size]
        where = blk * self.block_size + pos
        lo = struct.unpack_from("<I", desc, 8)[0]
        flags = struct.unpack_from("<H", desc, 0x12)[0]
        stored = struct.unpack_from("<H", desc, 0x1E)[0]
        hi = struct.unpack_from("<I", desc, 0x28)[0] if self.desc_size >= 64 else 0
        if self.verify and (self.csum or self.gdt_csum):
            le_group = struct.pack("<I", group)
            if self.csum:
                c = crc32c_raw(self.csum_seed, le_group)
                c = crc32c_raw(c, desc[:0x1E])
                c = crc32c_raw(c, b"\0\0")
                c = crc32c_raw(c, desc[0x20:]) & 0xFFFF
            else:
                c = crc16(crc16(0xFFFF, self.uuid), le_group)
                c = crc16(c, desc[:0x1E])
                if self.is64 and self.desc_size > 0x20:
                    c = crc16(c, desc[0x20:])
            if c != stored:
                raise corrupt(self.dev.name, "ext4 group descriptor %d" % group, where, "checksum mismatch")
        table = lo | (hi << 32)
        itable_blocks = (self.inodes_per_group * self.inode_size + self.block_size - 1) // self.block_size
        if table + itable_blocks > self.blocks_count or table < self.first_data_block:
            raise corrupt(self.dev.name, "ext4 group descriptor %d" % group, where,
                          "inode table at block %d is outside the filesystem" % table)
        self._groups[group] = got = (table, flags)
        return got

    # ---- inodes ----
    def inode(self, number):
        if not 1 <= number <= self.inodes_count:
            raise corrupt(self.dev.name, "ext4 inode", None, "inode number %d out of range (1-%d)"
                          % (number, self.inodes_count))
        group, index = divmod(number - 1, self.inodes_per_group)
        table, flags = self._group(group)
        if flags & 0x1:  # INODE_UNINIT: nothing in this group was ever allocated
            raise corrupt(self.dev.name, "ext4 inode %d" % number, None, "its group %d has no initialized inodes"
                          % group)
        off = table * self.block_size + index * self.inode_size
        blk, within = divmod(off, self.block_size)
        raw = self._block(blk, "ext4 inode table")[within:within + self.inode_size]
        node = Inode(self, number, raw)
        if self.inode_size > 128 and (node.extra_isize > self.inode_size - 128 or node.extra_isize & 3):
            raise corrupt(self.dev.name, "ext4 inode %d" % number, off, "extra size %d" % node.extra_isize)
        if self.csum:
            seed = crc32c_raw(self.csum_seed, struct.pack("<I", number))
            node.csum_seed = crc32c_raw(seed, struct.pack("<I", node.generation))
            if self.verify:
                self._verify_inode(node, raw, off)
        if node.flags & ENCRYPT_FL:
            raise Unsupported("%s: inode %d is encrypted (fscrypt)" % (self.dev.name, number), "encrypt")
        if node.mode & 0o170000 == 0o040000 and node.size > self.blocks_count * self.block_size \
                and not node.flags & INLINE_DATA_FL:
            raise corrupt(self.dev.name, "ext4 inode %d" % number, off, "directory of %d bytes" % node.size)
        return node

    def _verify_inode(self, node, raw, off):
        c = crc32c_raw(node.csum_seed, raw[:0x7C])
        c = crc32c_raw(c, b"\0\0")
        c = crc32c_raw(c, raw[0x7E:128])
        stored = struct.unpack_from("<H", raw, 0x7C)[0]
        if self.inode_size > 128:
            c = crc32c_raw(c, raw[128:0x82])
            if node.extra_isize >= 4:
                c = crc32c_raw(c, b"\0\0")
                c = crc32c_raw(c, raw[0x84:])
                stored |= struct.unpack_from("<H", raw, 0x82)[0] << 16
            else:
                c = crc32c_raw(c, raw[0x82:])
                c &= 0xFFFF
        else:
            c &= 0xFFFF
        if c != stored:
            raise corrupt(self.dev.name, "ext4 inode %d" % node.number, off, "checksum mismatch")

    # ---- block maps: runs of (file byte count, device offset or None) ----
    def runs(self, inode, offset, length):
        bs = self.block_size
        if inode.flags & INLINE_DATA_FL and self.incompat & INC_INLINE:
            yield from self._inline_runs(self._inline_data(inode), offset, length)
            return
        lookup = self._extent_lookup if inode.flags & EXTENTS_FL else self._indirect_lookup
        pos, end = offset, offset + length
        while pos < end:
            lblock = pos // bs
            start, count, phys = lookup(inode, lblock)
            if count <= 0 or not start <= lblock < start + count:
                raise corrupt(self.dev.name, "ext4 block map of inode %d" % inode.number, None,
                              "run %d+%d does not cover block %d" % (start, count, lblock))
            n = min(end, (start + count) * bs) - pos
            yield n, (None if phys is None else phys * bs + (pos - start * bs))
            pos += n

    def _inline_runs(self, data, offset, length):
        have = max(0, min(length, len(data) - offset))
        if have:
            yield have, memoryview(data)[offset:offset + have]
        if length > have:
            yield length - have, None

    def _check_phys(self, inode, phys, count):
        if phys < self.first_data_block or phys + count > self.blocks_count:
            raise corrupt(self.dev.name, "ext4 block map of inode %d" % inode.number, None,
                          "blocks %d+%d are outside the filesystem (%d blocks)" % (phys, count, self.blocks_count))

    def _extent_node(self, inode, data, where, expect_depth):
        """(depth, entries) of an extent node (header checked; blocks' checksums verified)."""
        if len(data) < 12:
            raise corrupt(self.dev.name, "ext4 extent node of inode %d" % inode.number, where, "too short")
        magic, entries, emax, depth = struct.unpack_from("<HHHH", data, 0)
        if magic != EXTENT_MAGIC or entries > emax or 12 + 12 * emax > len(data) or depth > MAX_EXTENT_DEPTH \
                or (expect_depth is not None and depth != expect_depth):
            raise corrupt(self.dev.name, "ext4 extent node of inode %d" % inode.number, where,
                          "bad header (magic 0x%x, %d of %d entries, depth %d%s)"
                          % (magic, entries, emax, depth,
                             "" if expect_depth is None else ", expected %d" % expect_depth))
        if where is not None and self.csum and self.verify and 16 + 12 * emax <= len(data) \
                and self._extents_ok.get((where, inode.number)) is not data:
            tail = 12 + 12 * emax
            if crc32c_raw(inode.csum_seed, data[:tail]) != struct.unpack_from("<I", data, tail)[0]:
                raise corrupt(self.dev.name, "ext4 extent block of inode %d" % inode.number, where,
                              "checksum mismatch")
            if len(self._extents_ok) >= CACHE_BLOCKS:
                self._extents_ok = {}
            self._extents_ok[(where, inode.number)] = data  # a fragmented file looks its leaf up once per run
        return depth, entries

    def _extent_lookup(self, inode, lblock):
        """(first block, count, physical block or None) of the extent or hole holding `lblock`."""
        data, where = inode.block, None
        depth, entries = self._extent_node(inode, data, None, None)
        upper = 1 << 32
        for _ in range(MAX_EXTENT_DEPTH + 1):
            lo, hi = 0, entries
            while lo < hi:  # the last entry whose first block is <= lblock
                mid = (lo + hi) // 2
                if struct.unpack_from("<I", data, 12 + 12 * mid)[0] <= lblock:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo - 1
            if depth == 0:
                if i >= 0:
                    ee_block, ee_len, start_hi, start_lo = struct.unpack_from("<IHHI", data, 12 + 12 * i)
                    uninit = ee_len > 32768
                    if uninit:
                        ee_len -= 32768
                    if lblock < ee_block + ee_len:
                        phys = start_lo | (start_hi << 32)
                        self._check_phys(inode, phys, ee_len)
                        return ee_block, ee_len, (None if uninit else phys)
                    hole_start = ee_block + ee_len
                else:
                    hole_start = 0
                nxt = struct.unpack_from("<I", data, 12 + 12 * (i + 1))[0] if i + 1 < entries else upper
                if nxt <= lblock:  # entries out of order (the checks below catch it) or the end of the range
                    nxt = lblock + 1
                return hole_start, nxt - hole_start, None
            if entries == 0:
                return lblock, upper - lblock if upper > lblock else 1, None
            if i < 0:
                i = 0
            if i + 1 < entries:
                nxt = struct.unpack_from("<I", data, 12 + 12 * (i + 1))[0]
                if nxt > lblock:
                    upper = min(upper, nxt)
            _, leaf_lo, leaf_hi = struct.unpack_from("<IIH", data, 12 + 12 * i)
            child = leaf_lo | (leaf_hi << 32)
            where = child * self.block_size
            data = self._block(child, "ext4 extent block of inode %d" % inode.number)
            depth, entries = self._extent_node(inode, data, where, depth - 1)
        raise corrupt(self.dev.name, "ext4 extent tree of inode %d" % inode.number, where, "too deep")

    def extents(self, inode):
        """[(logical block, physical block, count)] of every written extent (for tests and `fs info`)."""
        out = []
        lblock = 0
        limit = (inode.size + self.block_size - 1) // self.block_size
        while lblock < limit:
            start, count, phys = self._extent_lookup(inode, lblock)
            if phys is not None:
                out.append((start, phys, count))
            lblock = start + count
        return out

    def _indirect_lookup(self, inode, lblock):
        """ext2/3 block maps: 12 direct pointers, then single, double and triple indirect blocks."""
        per = self.block_size // 4
        ptrs = inode.block
        if lblock < 12:
            idx, level, base = lblock, 0, 0
        else:
            base, span = 12, per
            for level in (1, 2, 3):  # noqa: B007 - used after the loop
                if lblock < base + span:
                    break
                base += span
                span *= per
            else:
                raise corrupt(self.dev.name, "ext4 block map of inode %d" % inode.number, None,
                              "block %d is beyond triple-indirect reach" % lblock)
            idx = 11 + level
        if level == 0:
            phys = struct.unpack_from("<I", ptrs, 4 * idx)[0]
            if not phys:
                return lblock, 1, None
            self._check_phys(inode, phys, 1)
            return lblock, 1, phys
        table, tpos = ptrs, 4 * idx
        span = per ** level
        start = base
        for _lv in range(level, 0, -1):
            blk = struct.unpack_from("<I", table, tpos)[0]
            if not blk:
                return start, span, None  # a hole of the whole span this pointer would map
            self._check_phys(inode, blk, 1)
            table = self._block(blk, "ext4 indirect block of inode %d" % inode.number)
            span //= per
            k = (lblock - start) // span
            start += k * span
            tpos = 4 * k
        # level 1 table reached: `table` maps single blocks; extend the run while contiguous
        k = tpos // 4
        phys = struct.unpack_from("<I", table, tpos)[0]
        if not phys:
            n = 1
            while k + n < per and not struct.unpack_from("<I", table, 4 * (k + n))[0]:
                n += 1
            return lblock, n, None
        n = 1
        while k + n < per and struct.unpack_from("<I", table, 4 * (k + n))[0] == phys + n:
            n += 1
        self._check_phys(inode, phys, n)
        return lblock, n, phys

    # ---- inline data: i_block, then the system.data xattr in the inode's extra space ----
    def _inline_data(self, inode):
        value = self._inline_xattr(inode)
        return bytes(inode.block) + (value or b"")

    def _inline_xattr(self, inode):
        raw = inode.raw
        start = 128 + inode.extra_isize
        if len(raw) < start + 4 or struct.unpack_from("<I", raw, start)[0] != 0xEA020000:
            return None
        first = start + 4
        pos = first
        for _ in range(len(raw) // 16 + 1):
            if pos + 16 > len(raw) or struct.unpack_from("<I", raw, pos)[0] == 0:
                return None
            name_len, index, voff, vinum, vsize = struct.unpack_from("<BBHII", raw, pos)
            name = bytes(raw[pos + 16:pos + 16 + name_len])
            if pos + 16 + name_len > len(raw):
                break
            if index == 7 and name == b"data":
                if vinum or first + voff + vsize > len(raw):
                    raise corrupt(self.dev.name, "ext4 inline data xattr of inode %d" % inode.number, None,
                                  "value of %d bytes at %d overruns the inode" % (vsize, voff))
                return bytes(raw[first + voff:first + voff + vsize])
            pos += (16 + name_len + 3) & ~3
        raise corrupt(self.dev.name, "ext4 xattrs of inode %d" % inode.number, None, "entries overrun the inode")

    # ---- directories ----
    def entries(self, inode):
        """(name, inode number) of each entry in a directory (htree directories read linearly)."""
        for name, ino, _ in self._dirents(inode):
            yield name, ino

    def _dirents(self, inode):
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        if inode.flags & INLINE_DATA_FL and self.incompat & INC_INLINE:
            data = self._inline_data(inode)
            # the first 4 bytes are the parent's inode number; entries follow in i_block and in the xattr
            yield from self._parse_dirents(inode, data[4:60], None, 60 - 4)
            if len(data) > 60:
                yield from self._parse_dirents(inode, data[60:], None, len(data) - 60)
            return
        bs = self.block_size
        nblocks = (inode.size + bs - 1) // bs
        htree = bool(inode.flags & INDEX_FL) and bool(self.compat & COMPAT_DIR_INDEX)
        for lblock in range(nblocks):
            for n, src in self.runs(inode, lblock * bs, bs):
                if src is None or n != bs:
                    break  # a hole in a directory holds no entries
                blk = self._raw(src, bs)
                end = self._dir_csum(inode, blk, src, htree, lblock)
                yield from self._parse_dirents(inode, blk, src, end)

    def _dir_csum(self, inode, blk, where, htree, lblock):
        """Verify a directory block's checksum; returns where its entries end."""
        bs = len(blk)
        has_tail = bs >= 12 and struct.unpack_from("<IHBB", blk, bs - 12) == (0, 12, 0, 0xDE)
        if not self.csum:
            return bs
        if has_tail:
            if self.verify and crc32c_raw(inode.csum_seed, blk[:bs - 12]) != struct.unpack_from("<I", blk,
                                                                                                 bs - 4)[0]:
                raise corrupt(self.dev.name, "ext4 directory block of inode %d" % inode.number, where,
                              "checksum mismatch")
            return bs - 12
        if htree:
            count_off = self._dx_count_offset(blk, lblock)
            if count_off is not None:
                if self.verify:
                    self._dx_csum(inode, blk, where, count_off)
                return bs
        raise corrupt(self.dev.name, "ext4 directory block of inode %d" % inode.number, where,
                      "no checksum tail on a metadata_csum filesystem")

    def _dx_count_offset(self, blk, lblock):
        rec0 = struct.unpack_from("<H", blk, 4)[0]
        if lblock == 0:
            rec1 = struct.unpack_from("<H", blk, 12 + 4)[0] if len(blk) >= 32 else 0
            if rec0 == 12 and rec1 == len(blk) - 12:
                return 32
            return None
        if struct.unpack_from("<I", blk, 0)[0] == 0 and self._rec_len(rec0) == len(blk):
            return 8
        return None

    def _dx_csum(self, inode, blk, where, count_off):
        limit, count = struct.unpack_from("<HH", blk, count_off)
        if count > limit or count_off + limit * 8 + 8 > len(blk):
            raise corrupt(self.dev.name, "ext4 htree node of inode %d" % inode.number, where,
                          "count %d, limit %d" % (count, limit))
        tail = count_off + limit * 8
        c = crc32c_raw(inode.csum_seed, blk[:count_off + count * 8])
        c = crc32c_raw(c, blk[tail:tail + 4])
        c = crc32c_raw(c, b"\0\0\0\0")
        if c != struct.unpack_from("<I", blk, tail + 4)[0]:
            raise corrupt(self.dev.name, "ext4 htree node of inode %d" % inode.number, where, "checksum mismatch")

    def _rec_len(self, v):
        if self.block_size < 65536:
            return v
        if v == 65535 or v == 0:
            return 65536
        return (v & 65532) | ((v & 3) << 16)

    def _parse_dirents(self, inode, data, where, end):
        pos = 0
        while pos + 8 <= end:
            ino, rec = struct.unpack_from("<IH", data, pos)
            rec = self._rec_len(rec)
            if self.filetype:
                nlen, ftype = data[pos + 6], data[pos + 7]
            else:
                nlen, ftype = struct.unpack_from("<H", data, pos + 6)[0], 0
            if rec < 8 or rec & 3 or pos + rec > end or nlen + 8 > rec:
                raise corrupt(self.dev.name, "ext4 directory entry of inode %d" % inode.number,
                              None if where is None else where + pos,
                              "record length %d, name length %d at entry offset %d of %d" % (rec, nlen, pos, end))
            if ino and nlen:
                name = name_text(data[pos + 8:pos + 8 + nlen])
                if name != "." and name != "..":
                    yield name, ino, ftype
            pos += rec

    def readlink_inode(self, inode):
        what = "ext4 symlink inode %d" % inode.number
        if inode.size > MAX_SYMLINK:
            raise corrupt(self.dev.name, what, None, "target of %d bytes" % inode.size)
        ea_blocks = (self.cluster_size >> 9) if inode.file_acl else 0
        if not inode.flags & (EXTENTS_FL | INLINE_DATA_FL) and inode.iblocks - ea_blocks <= 0:
            if inode.size >= 60:
                raise corrupt(self.dev.name, what, None, "fast symlink of %d bytes" % inode.size)
            return name_text(inode.block[:inode.size])
        return name_text(self.read_inode_data(inode))

    def root(self):
        node = self.inode(2)
        if not node.is_dir():
            raise corrupt(self.dev.name, "ext4 root inode", None, "inode 2 is not a directory")
        return node

    def node(self, ref):
        return self.inode(ref)

    def info(self):
        out = FsBase.info(self)
        feats = [v[0] for k, v in sorted(INCOMPAT.items()) if self.incompat & k]
        feats += [v for k, v in sorted(RO_COMPAT_NAMES.items()) if self.ro_compat & k]
        out.update({"block size": self.block_size, "blocks": self.blocks_count, "inodes": self.inodes_count,
                    "groups": self.group_count, "features": " ".join(feats),
                    "journal transactions replayed": self.journal_replayed})
        return out

    # ---- the journal (jbd2), replayed in memory ----
    def _replay_journal(self):
        """An overlay device with the committed, unrevoked journal blocks in place, or None if nothing to do."""
        name = self.dev.name
        if self.journal_dev or not self.journal_inum:
            raise Unsupported("%s: needs_recovery with an external journal device" % name, "journal_dev")
        jnode = self.inode(self.journal_inum)
        bs = self.block_size
        offsets = {}

        def locate(n):
            """Device offset of journal block n (the journal is a file: its extents say where)."""
            got = offsets.get(n)
            if got is None:
                for length, src in self.runs(jnode, n * bs, bs):
                    if src is None or length != bs:
                        raise corrupt(name, "jbd2 journal", None, "journal block %d is a hole" % n)
                    got = src
                if len(offsets) > 4096:
                    offsets.clear()
                offsets[n] = got
            return got

        journal = jbd2.Journal(name, self._raw, locate, bs, jnode.size, self.verify)
        blocks = journal.replay(self.blocks_count)
        self.journal_replayed = journal.transactions
        return jbd2.Overlay(self.dev, bs, blocks) if blocks else None
