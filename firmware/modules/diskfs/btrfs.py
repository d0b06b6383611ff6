"""btrfs, read-only. Little-endian on disk.

Superblock (checksum verified; the mirrors at 64 MiB and 256 GiB are used when the primary is bad),
sys_chunk_array and chunk tree; every profile: SINGLE, DUP, RAID0/1/10/5/6, RAID1C3/C4, over the devices of
one fsid (`devices=`: other devices to search). Reads survive missing devices where the profile has the
redundancy (one on RAID1/10/5, two on RAID6/RAID1C3, three on RAID1C4): mirrors are tried in turn and RAID5/6
stripes are rebuilt from P (XOR) or Q (GF(2^8), polynomial 0x11d). Tree blocks are checked (checksum, bytenr,
fsid, level) and a bad copy is retried from the other copies; data checksums (crc32c, xxhash64, sha256, blake2b)
are verified the same way when `verify_data` (default: on CPython; blake2b only where hashlib has it).

Trees of any depth (binary search inside nodes, a small node cache), subvolumes (directory entries that lead
into another subvolume are followed) and the default subvolume (openSUSE's @/.snapshots/N/snapshot), or a
named one (`subvol=` path or id); inline, regular and prealloc extents and holes (NO_HOLES too); zlib, lzo and
(where a decoder exists) zstd compression.
"""

import struct
import sys

from diskfs.checksum import accelerated, crc32c, crc32c_raw, crc32c_sectors_check, crc32c_sectors_key, xxhash64
from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import FsBase, InodeBase, name_bytes, name_text, zero_fill

MAGIC = b"_BHRfS_M"
SUPER = 0x10000
SUPER_MIRRORS = (0x10000, 0x4000000, 0x4000000000)
INODE_ITEM, ROOT_ITEM, DIR_ITEM, DIR_INDEX, EXTENT_DATA = 1, 132, 84, 96, 108
ROOT_BACKREF, EXTENT_CSUM, CHUNK_ITEM = 144, 128, 228
FS_TREE, CSUM_TREE, ROOT_TREE_DIR, FIRST_FREE = 5, 7, 6, 256
CSUM_OBJECTID = (1 << 64) - 10
HEADER = 101
KEY_SIZE = 17
MAX_LEVEL = 7  # BTRFS_MAX_LEVEL - 1
MAX_KEY = ((1 << 64) - 1, 255, (1 << 64) - 1)
CACHE_BYTES = 2 << 20  # per cache generation (two of them)
DATA_STEP = 4 << 20  # verified data is read and checked this much at a time
EXTENT_BATCH = 32  # file extent items fetched per tree walk

# block group profiles
BG_DATA, BG_SYSTEM, BG_METADATA = 0x1, 0x2, 0x4
RAID0, RAID1, DUP, RAID10, RAID5, RAID6, RAID1C3, RAID1C4 = 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400
PROFILES = RAID0 | RAID1 | DUP | RAID10 | RAID5 | RAID6 | RAID1C3 | RAID1C4

CSUMS = {0: ("crc32c", 4), 1: ("xxhash64", 8), 2: ("sha256", 32), 3: ("blake2b", 32)}
COMPRESSION = {1: "zlib", 2: "lzo", 3: "zstd"}
INODE_NODATASUM = 0x1

INCOMPAT = {  # bit: (name, readable, why)
    0x1: ("mixed_backref", True, "back references live in the extent tree, which reading does not need"),
    0x2: ("default_subvol", True, "the default subvolume is read from the root tree's 'default' entry"),
    0x4: ("mixed_groups", True, "data and metadata sharing chunks map the same way"),
    0x8: ("compress_lzo", True, "lzo extents are decoded here"),
    0x10: ("compress_zstd", True, "zstd extents are decoded where a zstd decoder exists (else per file)"),
    0x20: ("big_metadata", True, "tree blocks larger than a page are read whole"),
    0x40: ("extended_iref", True, "inode back references are not read"),
    0x80: ("raid56", True, "RAID5/6 chunks are mapped and rebuilt from parity"),
    0x100: ("skinny_metadata", True, "extent tree item shapes, not read"),
    0x200: ("no_holes", True, "missing extent items read as holes"),
    0x400: ("metadata_uuid", True, "tree blocks carry the metadata UUID"),
    0x800: ("raid1c34", True, "3- and 4-copy mirrors"),
    0x1000: ("zoned", False, "superblocks live in log zones, which are not read"),
    0x2000: ("extent_tree_v2", False, "a different tree layout"),
    0x4000: ("raid_stripe_tree", False, "logical to physical mapping through the stripe tree"),
    0x10000: ("simple_quota", True, "quota accounting, not read"),
}


def _key(buf, pos):
    """A (objectid, type, offset) key (MicroPython has no struct.Struct)."""
    return struct.unpack_from("<QBQ", buf, pos)


def name_hash(name):
    """btrfs's directory name hash (crc32c seeded with ~1, no final inversion)."""
    return crc32c_raw(0xFFFFFFFE, name)


def _default_verify_data():
    return sys.implementation.name != "micropython"


class Inode(InodeBase):
    """An inode of one subvolume (`tree`: (root block, level, subvolume id))."""

    def __init__(self, tree, number, data):
        self.tree, self.number = tree, number
        self.size = struct.unpack_from("<Q", data, 16)[0]
        self.nlink, self.uid, self.gid, self.mode = struct.unpack_from("<IIII", data, 40)
        self.flags = struct.unpack_from("<Q", data, 64)[0]
        self.mtime = struct.unpack_from("<q", data, 136)[0]


class Chunk:
    """One chunk: logical [start, start + length) mapped to stripes [(devid, physical)]."""

    def __init__(self, start, length, stripe_len, ctype, stripes, sub_stripes):
        self.start, self.length, self.stripe_len, self.type = start, length, stripe_len, ctype
        self.stripes, self.sub_stripes = stripes, sub_stripes
        n = len(stripes)
        if ctype & RAID5:
            self.copies, self.parity = 2, 1
        elif ctype & RAID6:
            self.copies, self.parity = 3, 2
        elif ctype & (DUP | RAID1 | RAID1C3 | RAID1C4):
            self.copies, self.parity = n, 0
        elif ctype & RAID10:
            self.copies, self.parity = sub_stripes, 0
        else:
            self.copies, self.parity = 1, 0


def csum(ctype, data):
    """The btrfs checksum of data as stored, for checksum type `ctype` (None when this runtime cannot compute it:
    MicroPython's hashlib has no blake2b)."""
    if ctype == 0:
        return struct.pack("<I", crc32c(data))
    if ctype == 1:
        return struct.pack("<Q", xxhash64(data))
    import hashlib

    if ctype == 2:
        return hashlib.sha256(data).digest()
    try:
        return hashlib.blake2b(data, digest_size=32).digest()
    except (AttributeError, TypeError):
        return None


class Btrfs(FsBase):
    """A btrfs filesystem over one or more devices."""

    TYPE = "btrfs"

    def __init__(self, dev, devices=None, verify=True, verify_data=None, subvol=None):
        """`devices`: other devices that may hold the rest of a multi-device filesystem (found by fsid);
        `subvol`: a subvolume id or path (from the top level) to use instead of the default subvolume."""
        self.dev, self.verify = dev, verify
        self.verify_data = _default_verify_data() if verify_data is None else verify_data
        self._extra = devices
        sb = self._superblock(dev)
        self.fsid = sb[0x20:0x30]
        self.uuid = self.fsid
        self.generation = struct.unpack_from("<Q", sb, 0x48)[0]
        root, chunk_root = struct.unpack_from("<QQ", sb, 0x50)
        self.num_devices = struct.unpack_from("<Q", sb, 0x88)[0]
        self.sectorsize, self.nodesize = struct.unpack_from("<II", sb, 0x90)
        sys_size = struct.unpack_from("<I", sb, 0xA0)[0]
        self.incompat = struct.unpack_from("<Q", sb, 0xBC)[0]
        self.csum_type = struct.unpack_from("<H", sb, 0xC4)[0]
        self.label = name_text(sb[0x12B:0x12B + 256].split(b"\0")[0])
        self.metadata_uuid = sb[0x23B:0x24B] if self.incompat & 0x400 else self.fsid
        if not 4096 <= self.nodesize <= 65536 or self.nodesize & (self.nodesize - 1) or sys_size > 2048 \
                or not 512 <= self.sectorsize <= 65536 or self.sectorsize & (self.sectorsize - 1) \
                or not 1 <= self.num_devices <= 1024:
            raise Corrupt("%s: implausible btrfs superblock (nodesize %d, sectorsize %d, %d devices)"
                          % (dev.name, self.nodesize, self.sectorsize, self.num_devices), "btrfs superblock", SUPER)
        for bit in range(64):
            if self.incompat & (1 << bit):
                name, ok, why = INCOMPAT.get(1 << bit, ("bit %d" % bit, False, "unknown"))
                if not ok:
                    raise Unsupported("%s: btrfs incompat feature %s (0x%x): %s" % (dev.name, name, 1 << bit, why),
                                      name)
        self.devs = {struct.unpack_from("<Q", sb, 0xC9)[0]: dev}
        self._find_devices(devices or ())
        self.chunks, self._starts = [], {}
        self._last = None
        self._cache, self._old = {}, {}
        self._extent_cache = (None, None)
        self._file_extents = None  # (inode, from file offset, up to, [(file offset, parsed item)]) read last
        arr = sb[0x32B:0x32B + sys_size]
        pos = 0
        while pos < len(arr):
            if pos + KEY_SIZE > len(arr):
                raise Corrupt("%s: truncated sys_chunk_array" % dev.name, "btrfs sys_chunk_array", SUPER + 0x32B)
            key = _key(arr, pos)
            if key[1] != CHUNK_ITEM:
                raise Corrupt("%s: sys_chunk_array item of type %d" % (dev.name, key[1]), "btrfs sys_chunk_array",
                              SUPER + 0x32B + pos)
            pos = self._add_chunk(arr, pos + KEY_SIZE, key[2], len(arr))
        for key, data in self._range((chunk_root, sb[0xC7]), (256, CHUNK_ITEM, 0), (256, CHUNK_ITEM + 1, 0)):
            self._add_chunk(data, 0, key[2], len(data))
        self.chunks.sort(key=lambda c: c.start)
        self.root_tree = (root, sb[0xC6], 1)
        self._csum_root = None
        self._csum_item = None  # (start, end, checksums, crc32c_sectors_key or None) of the csum item used last
        if subvol is None:
            self.default_subvol = self._default_subvolume()
            self.subvol = self.default_subvol
        else:
            self.default_subvol = self._default_subvolume()
            self.subvol = self._resolve_subvol(subvol)
        self.fs_root = self._subvol_root(self.subvol)

    # ---- superblock and devices ----
    def _superblock(self, dev, devid=None):
        """The newest valid superblock copy on dev (Corrupt when none is)."""
        best = None
        errors = []
        for off in SUPER_MIRRORS:
            if off + 4096 > dev.size:
                break
            sb = dev.read(off, 4096)
            if sb[0x40:0x48] != MAGIC:
                errors.append("no magic at %d" % off)
                continue
            if struct.unpack_from("<Q", sb, 0x30)[0] != off:
                errors.append("copy at %d names byte %d" % (off, struct.unpack_from("<Q", sb, 0x30)[0]))
                continue
            ctype = struct.unpack_from("<H", sb, 0xC4)[0]
            if self.verify and ctype in CSUMS and not self._csum_ok(ctype, sb[0x20:], sb[:32]):
                errors.append("bad checksum at %d" % off)
                continue
            if best is None or struct.unpack_from("<Q", sb, 0x48)[0] > struct.unpack_from("<Q", best, 0x48)[0]:
                best = sb
            if off == SUPER:
                break  # the primary is good: the kernel uses it
        if best is None:
            raise Corrupt("%s: no valid btrfs superblock (%s)" % (dev.name, "; ".join(errors)), "btrfs superblock",
                          SUPER)
        ctype = struct.unpack_from("<H", best, 0xC4)[0]
        if ctype not in CSUMS:
            raise Unsupported("%s: btrfs checksum type %d" % (dev.name, ctype), "btrfs csum %d" % ctype)
        return best

    def _find_devices(self, devices):
        for d in devices:
            if isinstance(d, str):
                from diskfs.blockdev import FileDevice

                try:
                    d = FileDevice(d)
                except NotFound:
                    continue
            if d is self.dev or d.size < SUPER + 4096:
                continue
            try:
                sb = self._superblock(d)
            except (Corrupt, Unsupported):
                continue
            if sb[0x20:0x30] == self.fsid:
                self.devs.setdefault(struct.unpack_from("<Q", sb, 0xC9)[0], d)

    def missing_devices(self):
        """How many of the filesystem's devices were not found."""
        return max(0, self.num_devices - len(self.devs))

    # ---- checksums ----
    def _csum_ok(self, ctype, data, want):
        got = self._csum(ctype, data)
        return got is None or got == bytes(want[:len(got)])

    def _csum(self, ctype, data):
        return csum(ctype, data)

    # ---- chunks and logical addresses ----
    def _add_chunk(self, buf, pos, logical, end):
        if pos + 48 > end:
            raise Corrupt("%s: truncated chunk item at logical %d" % (self.dev.name, logical), "btrfs chunk item")
        length, _, stripe_len, ctype = struct.unpack_from("<QQQQ", buf, pos)
        num_stripes, sub_stripes = struct.unpack_from("<HH", buf, pos + 44)
        if not num_stripes or pos + 48 + 32 * num_stripes > end:
            raise Corrupt("%s: chunk at logical %d has %d stripes" % (self.dev.name, logical, num_stripes),
                          "btrfs chunk item")
        stripes = [struct.unpack_from("<QQ", buf, pos + 48 + 32 * i) for i in range(num_stripes)]
        prof = ctype & PROFILES
        bad = not length or not stripe_len or stripe_len & (stripe_len - 1) or stripe_len > (1 << 30)
        if prof & (prof - 1):
            bad = True
        elif prof == RAID10:
            bad = bad or sub_stripes < 2 or num_stripes % sub_stripes or num_stripes < sub_stripes
        elif prof == RAID5:
            bad = bad or num_stripes < 2
        elif prof == RAID6:
            bad = bad or num_stripes < 3
        elif prof == 0 and num_stripes != 1:
            bad = True
        if bad:
            raise Corrupt("%s: chunk at logical %d: profile 0x%x, %d stripes, stripe length %d" % (
                self.dev.name, logical, ctype, num_stripes, stripe_len), "btrfs chunk item")
        if logical not in self._starts:  # system chunks are in both places
            self._starts[logical] = True
            self.chunks.append(Chunk(logical, length, stripe_len, ctype, stripes, sub_stripes))
        self._last = None
        return pos + 48 + 32 * num_stripes

    def _chunk(self, logical):
        c = self._last
        if c is not None and c.start <= logical < c.start + c.length:
            return c
        chunks = self.chunks
        lo, hi = 0, len(chunks)
        while lo < hi:
            mid = (lo + hi) // 2
            if chunks[mid].start <= logical:
                lo = mid + 1
            else:
                hi = mid
        if lo and logical < chunks[lo - 1].start + chunks[lo - 1].length:
            self._last = chunks[lo - 1]
            return self._last
        raise Corrupt("%s: logical address %d is not mapped by any chunk" % (self.dev.name, logical),
                      "btrfs chunk map")

    def _stripe_read(self, devid, phys, mv):
        """Read from one device; False when that device is missing."""
        d = self.devs.get(devid)
        if d is None:
            return False
        d.readinto(phys, mv)
        return True

    def _piece(self, chunk, off, mv, copy):
        """Fill mv from chunk offset `off` (inside one stripe unit) using copy number `copy` (0 is the plain one;
        on RAID5/6, 1 is rebuilt from P and 2 from Q). False when that copy cannot be read at all."""
        stripes, slen = chunk.stripes, chunk.stripe_len
        n = len(stripes)
        prof = chunk.type & PROFILES
        if chunk.parity:
            ndata = n - chunk.parity
            row, within = divmod(off, slen * ndata)
            index, soff = divmod(within, slen)
            rot = row % n
            base = row * slen + soff

            def loc(i):  # device slot of data stripe i (ndata is P, ndata + 1 is Q)
                return stripes[(rot + i) % n]

            if copy == 0:
                dv, ph = loc(index)
                if self._stripe_read(dv, ph + base, mv):
                    return True
            return self._rebuild(chunk, loc, index, base, mv, copy)
        if prof == RAID0 or prof == RAID10:
            sub = chunk.sub_stripes if prof == RAID10 else 1
            nr, soff = divmod(off, slen)
            groups = n // sub
            row, group = divmod(nr, groups)
            cands = [stripes[group * sub + k] for k in range(sub)]
            base = row * slen + soff
        else:  # SINGLE, DUP, RAID1, RAID1C3/C4: every stripe is a whole copy
            cands = stripes
            base = off
        k = len(cands)
        if copy >= k:
            return False
        for j in range(k):
            dv, ph = cands[(copy + j) % k]
            if self._stripe_read(dv, ph + base, mv):
                return True
        return False

    def _rebuild(self, chunk, loc, index, base, mv, copy):
        """Data stripe `index` of a RAID5/6 row from the others and parity."""
        from diskfs import raid

        n = len(chunk.stripes)
        ndata = n - chunk.parity
        length = len(mv)
        rows = {}
        for i in range(n):
            if i == index:
                continue
            dv, ph = loc(i)
            buf = bytearray(length)
            if self._stripe_read(dv, ph + base, buf):
                rows[i] = bytes(buf)
        others = dict((i, d) for i, d in rows.items() if i < ndata)
        missing = [i for i in range(ndata) if i != index and i not in others]
        p, q = rows.get(ndata), rows.get(ndata + 1)
        if copy == 2:
            p = None  # the Q-only rebuild: another answer to check against the checksum
        elif copy == 1 and chunk.parity == 2:
            q = None if not missing else q
        out = None
        if not missing and p is not None:
            out = raid.recover_one_p(others.values(), p)
        elif not missing and q is not None:
            out = raid.recover_one_q(index, others, q)
        elif len(missing) == 1 and p is not None and q is not None:
            x, y = sorted((index, missing[0]))
            dx, dy = raid.recover_two(x, y, others, p, q)
            out = dx if index == x else dy
        if out is None:
            return False
        mv[:] = out
        return True

    def read_logical(self, logical, mv, copy=0):
        """Fill mv with the bytes at a logical address (copy: which mirror or rebuild to use)."""
        pos, total = 0, len(mv)
        while pos < total:
            chunk = self._chunk(logical + pos)
            off = logical + pos - chunk.start
            n = min(total - pos, chunk.length - off)
            if chunk.type & PROFILES & ~DUP & ~RAID1 & ~RAID1C3 & ~RAID1C4:
                n = min(n, chunk.stripe_len - off % chunk.stripe_len)
            if not self._piece(chunk, off, mv[pos:pos + n], copy):
                if copy:
                    return False
                gone = sorted(set(str(dv) for dv, _ in chunk.stripes if dv not in self.devs))
                raise NotFound("%s: btrfs logical %d (%d bytes) needs missing device id %s (%d of %d found)"
                               % (self.dev.name, logical + pos, n, ", ".join(gone), len(self.devs),
                                  self.num_devices))
            pos += n
        return True

    def copies(self, logical):
        return self._chunk(logical).copies

    def _read_checked(self, logical, length, check, what):
        """bytes at logical that pass check(buf) (every copy tried in turn), else Corrupt."""
        buf = bytearray(length)
        mv = memoryview(buf)
        ncopies = self.copies(logical)
        problem = None
        for copy in range(ncopies):
            try:
                if not self.read_logical(logical, mv, copy):
                    continue
            except NotFound as exc:
                problem = str(exc)
                continue
            problem = check(buf)
            if problem is None:
                return buf
        raise Corrupt("%s: %s at logical %d: %s" % (self.dev.name, what, logical, problem), what, logical)

    # ---- trees ----
    def _node(self, logical, level):
        node = self._cache.get(logical)
        if node is None:
            node = self._old.get(logical)
            if node is not None:
                self._keep(logical, node)
        if node is None:
            def check(buf):
                if struct.unpack_from("<Q", buf, 0x30)[0] != logical:
                    return "header names block %d" % struct.unpack_from("<Q", buf, 0x30)[0]
                if bytes(buf[0x20:0x30]) != bytes(self.metadata_uuid):
                    return "belongs to another filesystem"
                if self.verify and not self._csum_ok(self.csum_type, memoryview(buf)[0x20:], buf[:32]):
                    return "checksum mismatch"
                return None

            node = bytes(self._read_checked(logical, self.nodesize, check, "btrfs tree block"))
            self._keep(logical, node)
        nritems, nlevel = struct.unpack_from("<IB", node, 0x60)
        if nlevel != level:
            raise Corrupt("%s: btrfs tree block %d has level %d, expected %d" % (self.dev.name, logical, nlevel,
                                                                                  level), "btrfs tree block", logical)
        if HEADER + (25 if level == 0 else 33) * nritems > len(node):
            raise Corrupt("%s: btrfs tree block %d: %d items overflow it" % (self.dev.name, logical, nritems),
                          "btrfs tree block", logical)
        return node, nritems

    def _keep(self, logical, node):
        """Cache a tree block: two generations (the older one dropped when the newer fills), each at most
        CACHE_BYTES, so recently used blocks (the top of every tree) stay."""
        if len(self._cache) * self.nodesize >= CACHE_BYTES:
            self._old = self._cache
            self._cache = {}
        self._cache[logical] = node

    def _iter(self, tree, key, floor=False):
        """(key, data) of every item with key >= `key` in the tree (with floor: from the last item <= key),
        in key order; the caller stops when it has seen enough."""
        root, level = tree[0], tree[1]
        if level > MAX_LEVEL:
            raise Corrupt("%s: btrfs tree of level %d" % (self.dev.name, level), "btrfs tree", root)
        stack = []
        logical = root
        while True:
            node, n = self._node(logical, level)
            stride = 25 if level == 0 else 33
            lo, hi = 0, n  # first index with key > search key
            while lo < hi:
                mid = (lo + hi) // 2
                if _key(node, HEADER + stride * mid) <= key:
                    lo = mid + 1
                else:
                    hi = mid
            if level == 0:
                if lo and (floor or _key(node, HEADER + 25 * (lo - 1)) == key):
                    lo -= 1
                break
            i = max(lo - 1, 0)
            stack.append((node, n, i, level))
            if n == 0:
                return
            logical = struct.unpack_from("<Q", node, HEADER + 33 * i + KEY_SIZE)[0]
            level -= 1
        idx = lo
        prev = None
        while True:
            while idx < n:
                k = _key(node, HEADER + 25 * idx)
                off, size = struct.unpack_from("<II", node, HEADER + 25 * idx + KEY_SIZE)
                if HEADER + off + size > len(node) or off < 25 * n:
                    raise Corrupt("%s: btrfs leaf item %d overflows" % (self.dev.name, idx), "btrfs leaf")
                if prev is not None and k <= prev:
                    raise Corrupt("%s: btrfs leaf keys out of order" % self.dev.name, "btrfs leaf")
                prev = k
                yield k, node[HEADER + off:HEADER + off + size]
                idx += 1
            # next leaf: climb until a node has a next pointer, then go down its leftmost path
            while stack:
                pnode, pn, pi, plevel = stack.pop()
                if pi + 1 < pn:
                    stack.append((pnode, pn, pi + 1, plevel))
                    break
            else:
                return
            pnode, pn, pi, plevel = stack[-1]
            logical = struct.unpack_from("<Q", pnode, HEADER + 33 * pi + KEY_SIZE)[0]
            level = plevel - 1
            while True:
                node, n = self._node(logical, level)
                if level == 0:
                    break
                stack.append((node, n, 0, level))
                if n == 0:
                    return
                logical = struct.unpack_from("<Q", node, HEADER + KEY_SIZE)[0]
                level -= 1
            idx = 0

    def _range(self, tree, lo, hi):
        """Items with lo <= key < hi, as a list."""
        out = []
        for k, data in self._iter(tree, lo):
            if k >= hi:
                break
            out.append((k, data))
        return out

    def _one(self, tree, key):
        for k, data in self._iter(tree, key):
            return data if k == key else None
        return None

    # ---- subvolumes ----
    def _subvol_root(self, subvol):
        items = self._range(self.root_tree, (subvol, ROOT_ITEM, 0), (subvol, ROOT_ITEM + 1, 0))
        if not items:
            raise NotFound("%s: btrfs subvolume %d has no root item" % (self.dev.name, subvol))
        data = items[-1][1]
        if len(data) < 239:
            raise Corrupt("%s: root item of subvolume %d is %d bytes" % (self.dev.name, subvol, len(data)),
                          "btrfs root item")
        return (struct.unpack_from("<Q", data, 176)[0], data[238], subvol), struct.unpack_from("<Q", data, 168)[0]

    def _default_subvolume(self):
        for k, data in self._range(self.root_tree, (ROOT_TREE_DIR, DIR_ITEM, 0), (ROOT_TREE_DIR, DIR_ITEM + 1, 0)):
            for loc, name in self._dir_items(data, k[0]):
                if name == b"default":
                    return loc[0]
        return FS_TREE

    def _resolve_subvol(self, subvol):
        if isinstance(subvol, int):
            self._subvol_root(subvol)
            return subvol
        self.fs_root = self._subvol_root(FS_TREE)
        node = self.lookup(subvol)
        sid = node.tree[2]
        if not node.is_dir() or node.number != self._subvol_root(sid)[1] or (sid == FS_TREE and subvol.strip("/")):
            raise NotFound("%s: %s is not a btrfs subvolume" % (self.dev.name, subvol), subvol)
        return sid

    def subvolume(self, subvol):
        """The same filesystem seen from another subvolume (an id, or a path from the top level)."""
        return Btrfs(self.dev, devices=self._extra, verify=self.verify, verify_data=self.verify_data,
                     subvol=subvol)

    def subvolumes(self):
        """[(id, path from the top level)] of every subvolume but the top level, sorted by id."""
        parents = {}
        for k, data in self._iter(self.root_tree, (FIRST_FREE, ROOT_BACKREF, 0)):
            if len(parents) > 100000:
                raise Corrupt("%s: too many subvolumes" % self.dev.name, "btrfs root tree")
            if k[0] >= CSUM_OBJECTID:
                break
            if k[1] != ROOT_BACKREF or len(data) < 18:
                continue
            nlen = struct.unpack_from("<H", data, 16)[0]
            parents[k[0]] = (k[2], name_text(data[18:18 + nlen]), struct.unpack_from("<Q", data, 0)[0])
        out = []
        for sid in sorted(parents):
            parts, cur, hops = [], sid, 0
            while cur in parents and hops < 256:
                parent, name, dirid = parents[cur]
                prefix = self._dir_path(parent, dirid) if dirid != FIRST_FREE else ""
                parts.append((prefix + "/" + name) if prefix else name)
                cur, hops = parent, hops + 1
            parts.reverse()
            out.append((sid, "/".join(parts)))
        return out

    def _dir_path(self, subvol, dirid):
        """The path of directory `dirid` inside a subvolume (through INODE_REF items)."""
        tree = self._subvol_root(subvol)[0]
        names = []
        for _ in range(4096):
            if dirid == FIRST_FREE:
                break
            items = self._range(tree, (dirid, 12, 0), (dirid, 13, 0))
            if not items or len(items[0][1]) < 10:
                break
            nlen = struct.unpack_from("<H", items[0][1], 8)[0]
            names.append(name_text(items[0][1][10:10 + nlen]))
            dirid = items[0][0][2]
        names.reverse()
        return "/".join(names)

    # ---- inodes ----
    def inode(self, tree, number):
        data = self._one(tree, (number, INODE_ITEM, 0))
        if data is None:
            raise Corrupt("%s: inode %d of subvolume %d missing" % (self.dev.name, number, tree[2]), "btrfs inode")
        if len(data) < 160:
            raise Corrupt("%s: inode item %d is %d bytes" % (self.dev.name, number, len(data)), "btrfs inode")
        return Inode(tree, number, data)

    def _dir_items(self, data, where):
        """[(location key, name bytes)] of the dir items packed in one item."""
        out = []
        pos = 0
        while pos + 30 <= len(data):
            loc = _key(data, pos)
            data_len, name_len = struct.unpack_from("<HH", data, pos + 25)
            if pos + 30 + name_len + data_len > len(data):
                raise Corrupt("%s: dir item in inode %d overflows" % (self.dev.name, where), "btrfs dir item")
            out.append((loc, bytes(data[pos + 30:pos + 30 + name_len])))
            pos += 30 + name_len + data_len
        return out

    def _ref(self, tree, loc):
        if loc[1] == ROOT_ITEM:
            root, dirid = self._subvol_root(loc[0])
            return root, dirid
        if loc[1] != INODE_ITEM:
            raise Corrupt("%s: directory entry points at a key of type %d" % (self.dev.name, loc[1]),
                          "btrfs dir item")
        return tree, loc[0]

    def entries(self, inode):
        """[(name, (tree, inode number))] of a directory; subvolume entries lead into their own tree."""
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        tree = inode.tree
        out = []
        for k, data in self._iter(tree, (inode.number, DIR_INDEX, 0)):
            if k[0] != inode.number or k[1] != DIR_INDEX:
                break
            for loc, name in self._dir_items(data, inode.number):
                out.append((name_text(name), self._ref(tree, loc)))
        return out

    def child(self, inode, name):
        raw = name_bytes(name)
        if raw is None:
            return None
        data = self._one(inode.tree, (inode.number, DIR_ITEM, name_hash(raw)))
        if data is None:
            return None
        for loc, n in self._dir_items(data, inode.number):
            if n == raw:
                return self._ref(inode.tree, loc)
        return None

    def root(self):
        return self.inode(*self.fs_root)

    def node(self, ref):
        return self.inode(*ref)

    def _key(self, node):
        return (node.tree[2], node.number)

    # ---- file data ----
    def readlink_inode(self, inode):
        if inode.size > 4096:
            raise Corrupt("%s: symlink inode %d of %d bytes" % (self.dev.name, inode.number, inode.size))
        return name_text(self.read_inode_data(inode))

    def readinto_file(self, inode, offset, buf):
        """Fill buf from `offset` of the file (holes and prealloc extents as zeros); the count, short at the end."""
        end = min(offset + len(buf), inode.size)
        if offset >= end:
            return 0
        mv = memoryview(buf)
        pos = offset
        while pos < end:
            got = self._file_extents  # a batch of extents: sequential reads walk the tree once per batch
            if got is None or got[0] is not inode or pos < got[1] or (got[2] is not None and pos >= got[2]):
                items, covered = self._extents_from(inode, pos)
                got = self._file_extents = (inode, pos, covered, items)
            for start, ext in got[3]:
                if start >= end:
                    break
                if start + ext[2] > pos:
                    pos = self._extent_into(inode, start, ext, pos, offset, end, mv)
                    if pos >= end:
                        break
            if got[2] is None or pos < got[2]:
                break  # no extent item after these: the rest is a hole
        if pos < end:
            zero_fill(mv, pos - offset, end - offset)
        return end - offset

    def _extents_from(self, inode, pos):
        """([(file offset, parsed item)] of up to EXTENT_BATCH file extents from the one holding file offset pos,
        the file offset they cover up to (None when no extent item follows them))."""
        number = inode.number
        out = []
        for key, fe in self._iter(inode.tree, (number, EXTENT_DATA, pos), floor=True):
            if key[0] != number or key[1] != EXTENT_DATA:
                if key < (number, EXTENT_DATA, 0):
                    continue  # the floor item belongs to something before the extents
                break
            try:
                ext = self._file_extent_item(number, fe)
            except Corrupt:
                if out:  # a bad item past the first: only a read that reaches it fails
                    return out, key[2]
                raise
            if key[2] + ext[2] <= pos:
                continue
            out.append((key[2], ext))
            if len(out) >= EXTENT_BATCH:
                return out, key[2] + ext[2]
        return out, None

    def _file_extent_item(self, number, fe):
        """(compression, type, length in the file, disk_bytenr, disk_bytes, offset into the extent, item) of a
        file extent item."""
        if len(fe) < 21:
            raise Corrupt("%s: inode %d: extent item of %d bytes" % (self.dev.name, number, len(fe)),
                          "btrfs file extent")
        if fe[20] == 0:
            return fe[16], 0, struct.unpack_from("<Q", fe, 8)[0], 0, 0, 0, fe  # inline: ram_bytes
        if len(fe) < 53:
            raise Corrupt("%s: inode %d: extent item of %d bytes" % (self.dev.name, number, len(fe)),
                          "btrfs file extent")
        disk_bytenr, disk_bytes, ext_off, length = struct.unpack_from("<QQQQ", fe, 21)
        return fe[16], fe[20], length, disk_bytenr, disk_bytes, ext_off, fe

    def _extent_into(self, inode, start, ext, pos, offset, end, mv):
        """Fill mv (file bytes [offset, end)) from file position pos with the extent at file offset `start`
        (zeros for a gap before it); the file position reached."""
        comp, ftype, length, disk_bytenr, disk_bytes, ext_off, fe = ext
        if start > pos:
            zero_fill(mv, pos - offset, min(start, end) - offset)
            pos = min(start, end)
            if pos >= end:
                return pos
        hi = min(start + length, end)
        a, b = pos - offset, hi - offset
        if ftype == 0:
            got = self._decode(comp, fe[21:], length, inode.number)[pos - start:hi - start]
            mv[a:a + len(got)] = got
            if len(got) < b - a:
                zero_fill(mv, a + len(got), b)
        elif ftype == 2 or disk_bytenr == 0:
            zero_fill(mv, a, b)
        elif comp:
            data = self._compressed(fe, disk_bytenr, disk_bytes, comp, inode)
            lo = ext_off + pos - start
            got = data[lo:lo + b - a]
            mv[a:a + len(got)] = got
            if len(got) < b - a:
                zero_fill(mv, a + len(got), b)
        else:
            self._read_data(disk_bytenr + ext_off + pos - start, mv[a:b], inode)
        return hi

    def _compressed(self, fe, disk_bytenr, disk_bytes, comp, inode):
        ram = struct.unpack_from("<Q", fe, 8)[0]
        if self._extent_cache[0] == (disk_bytenr, disk_bytes, comp):
            return self._extent_cache[1]
        if disk_bytes > (1 << 27) or ram > (1 << 28):
            raise Corrupt("%s: inode %d: compressed extent of %d bytes (%d decoded)" % (
                self.dev.name, inode.number, disk_bytes, ram), "btrfs file extent")
        raw = bytearray(disk_bytes)
        self._read_data(disk_bytenr, memoryview(raw), inode)
        data = self._decode(comp, raw, ram, inode.number)
        self._extent_cache = ((disk_bytenr, disk_bytes, comp), data)
        return data

    def _decode(self, comp, data, size, number):
        if comp == 0:
            return bytes(data[:size])
        try:
            if comp == 1:
                from compat import zlib_decompress

                return zlib_decompress(bytes(data))[:size]
            if comp == 2:
                from diskfs.lzo import btrfs_lzo

                return btrfs_lzo(data, size, self.sectorsize)
            if comp == 3:
                return _zstd(bytes(data), size)[:size]
        except Unsupported as exc:
            raise Unsupported("%s: inode %d: %s" % (self.dev.name, number, exc), exc.feature) from None
        except Exception as exc:  # every decoder's own error type: the data is bad
            raise Corrupt("%s: inode %d: %s data does not decode: %s" % (
                self.dev.name, number, COMPRESSION.get(comp), exc), "btrfs compressed extent") from None
        raise Unsupported("%s: inode %d uses compression type %d" % (self.dev.name, number, comp),
                          "btrfs compression %d" % comp)

    def _csums(self, logical, length):
        """[(logical, stored checksums, crc32c_sectors_key of them or None)] for the runs of sectors inside the
        sector-aligned [logical, logical + length) that have data checksums, in order, the checksums one bytes
        object with one per sector; sectors without one (nodatasum files, prealloc) are left out."""
        ss = self.sectorsize
        size = CSUMS[self.csum_type][1]
        end = logical + length
        item = self._csum_item
        if item is not None and item[0] <= logical and end <= item[1]:
            # a csum item covers up to a leaf's worth of sectors (16 MiB with 16 KiB nodes): most reads need
            # no tree walk and no key
            i = (logical - item[0]) // ss * size
            j = i + length // ss * size
            return [(logical, item[2][i:j], None if item[3] is None else item[3][i:j])]
        if self._csum_root is None:
            root = self._range(self.root_tree, (CSUM_TREE, ROOT_ITEM, 0), (CSUM_TREE, ROOT_ITEM + 1, 0))
            if not root or len(root[-1][1]) < 239:
                self._csum_root = ()
            else:
                data = root[-1][1]
                self._csum_root = (struct.unpack_from("<Q", data, 176)[0], data[238], CSUM_TREE)
        out = []
        if not self._csum_root:
            return out
        for k, data in self._iter(self._csum_root, (CSUM_OBJECTID, EXTENT_CSUM, logical), floor=True):
            if k[0] != CSUM_OBJECTID or k[1] != EXTENT_CSUM:
                if k < (CSUM_OBJECTID, EXTENT_CSUM, 0):
                    continue
                break
            if k[2] >= end:
                break
            if k[2] % ss:
                raise Corrupt("%s: csum item at logical %d is not sector-aligned" % (self.dev.name, k[2]),
                              "btrfs csum item", k[2])
            n = len(data) // size
            item_end = k[2] + n * ss
            first, last = max(k[2], logical), min(item_end, end)
            if first >= last:
                continue
            if item is not None and item[0] == k[2] and item[1] == item_end:
                data, key = item[2], item[3]  # a read running past the cached item: its key is made already
            else:
                data = data[:n * size]
                key = crc32c_sectors_key(data, ss) if self.csum_type == 0 else None
                item = self._csum_item = (k[2], item_end, data, key)
            i, j = (first - k[2]) // ss * size, (last - k[2]) // ss * size
            sums, key = data[i:j], None if key is None else key[i:j]
            if out and out[-1][0] + len(out[-1][1]) // size * ss == first:  # items split at a leaf edge: one run
                prev = out[-1]
                out[-1] = (prev[0], prev[1] + sums, None if key is None else prev[2] + key)
            else:
                out.append((first, sums, key))
        return out

    def _read_data(self, logical, mv, inode):
        """Read file data at a logical address into mv, checking data checksums when asked to."""
        if not self.verify_data or inode.flags & INODE_NODATASUM or (self.csum_type == 3 and not _has_blake2()):
            if not self.read_logical(logical, mv):
                raise NotFound("%s: no readable copy of logical %d" % (self.dev.name, logical))
            return
        ss = self.sectorsize
        end = logical + len(mv)
        lo = -(-logical // ss) * ss  # whole sectors [lo, hi) go straight into mv; partial ones through a bounce
        hi = end // ss * ss
        if lo >= hi:
            a = logical // ss * ss
            tmp = memoryview(bytearray(-(-end // ss) * ss - a))
            self._read_sectors(a, tmp, inode)
            mv[:] = tmp[logical - a:end - a]
            return
        if logical < lo:
            tmp = memoryview(bytearray(ss))
            self._read_sectors(lo - ss, tmp, inode)
            mv[:lo - logical] = tmp[ss - (lo - logical):]
        self._read_sectors(lo, mv[lo - logical:hi - logical], inode)
        if end > hi:
            tmp = memoryview(bytearray(ss))
            self._read_sectors(hi, tmp, inode)
            mv[hi - logical:] = tmp[:end - hi]

    def _read_sectors(self, logical, mv, inode):
        """Read whole sectors at a sector-aligned logical address into mv and verify them: a run at a time with
        one check when the checksum allows (crc32c_sectors_check), sector by sector (with repair) otherwise."""
        ss = self.sectorsize
        size = CSUMS[self.csum_type][1]
        pos, total = 0, len(mv)
        while pos < total:
            n = min(total - pos, DATA_STEP)
            seg = mv[pos:pos + n]
            runs = self._csums(logical + pos, n)
            self.read_logical(logical + pos, seg)
            for start, sums, key in runs:
                a = start - logical - pos
                piece = seg[a:a + len(sums) // size * ss]
                if key is None or not crc32c_sectors_check(piece, key, ss):
                    self._check_sectors(start, piece, sums, inode)
            pos += n

    def _check_sectors(self, logical, piece, sums, inode):
        """Verify each sector of piece (at `logical`) against its stored checksum, repairing bad ones from
        another copy (Corrupt naming the sector when no copy matches)."""
        ss = self.sectorsize
        ctype = self.csum_type
        size = CSUMS[ctype][1]
        n = len(sums) // size
        if ctype < 2:  # compare integers: one unpack of every stored value, no pack per sector
            want = struct.unpack("<%d%s" % (n, "IQ"[ctype]), sums)
            fn = (accelerated() or crc32c) if ctype == 0 else xxhash64
            for i in range(n):
                if fn(piece[i * ss:(i + 1) * ss]) != want[i]:
                    self._repair(logical + i * ss, piece[i * ss:(i + 1) * ss], sums[i * size:(i + 1) * size],
                                 inode)
            return
        for i in range(n):
            sector = piece[i * ss:(i + 1) * ss]
            want = sums[i * size:(i + 1) * size]
            if self._csum(ctype, sector) != want:
                self._repair(logical + i * ss, sector, want, inode)

    def _repair(self, logical, sector, want, inode):
        """Another copy of a data sector whose checksum did not match (Corrupt when none matches)."""
        for copy in range(1, self.copies(logical)):
            buf = bytearray(len(sector))
            try:
                if not self.read_logical(logical, memoryview(buf), copy):
                    continue
            except NotFound:
                continue
            if self._csum(self.csum_type, buf) == want:
                sector[:] = buf
                return
        raise Corrupt("%s: inode %d: data checksum mismatch at logical %d (every copy tried)"
                      % (self.dev.name, inode.number, logical), "btrfs data", logical)

    def info(self):
        out = FsBase.info(self)
        out.update({"devices": "%d of %d" % (len(self.devs), self.num_devices), "nodesize": self.nodesize,
                    "sectorsize": self.sectorsize, "csum": CSUMS[self.csum_type][0],
                    "default subvolume": self.default_subvol, "subvolume": self.subvol,
                    "profiles": ", ".join(sorted(set(_profile_name(c.type) for c in self.chunks)))})
        return out


def _profile_name(ctype):
    kind = "data" if ctype & BG_DATA else ("system" if ctype & BG_SYSTEM else "metadata")
    names = {RAID0: "raid0", RAID1: "raid1", DUP: "dup", RAID10: "raid10", RAID5: "raid5", RAID6: "raid6",
             RAID1C3: "raid1c3", RAID1C4: "raid1c4"}
    return "%s:%s" % (kind, names.get(ctype & PROFILES, "single"))


_BLAKE2 = None


def _has_blake2():
    global _BLAKE2
    if _BLAKE2 is None:
        import hashlib

        _BLAKE2 = hasattr(hashlib, "blake2b")
    return _BLAKE2


def _zstd(data, size):
    """zstd: CPython's zstandard module where installed (C speed), else the portable compat.zstd (one frame:
    btrfs pads an extent to the sector size), else Unsupported."""
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    try:
        from compat import zstd
    except ImportError:
        raise Unsupported("btrfs zstd compression (no zstd decoder on this runtime)", "zstd") from None
    return zstd.decompress(data, size, single=True)
