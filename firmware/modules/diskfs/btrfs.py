"""btrfs, read-only, one device: superblock, sys_chunk_array and chunk tree (SINGLE/DUP profiles), root tree,
subvolumes (entries that point into another subvolume are followed) and the default subvolume, inline,
regular and prealloc extents with holes, zlib compression. Little-endian on disk.

Multi-device profiles, lzo and zstd are refused by name (on the list for the next round)."""

import struct

from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import FsBase

MAGIC = b"_BHRfS_M"
SUPER = 0x10000
INODE_ITEM, ROOT_ITEM, DIR_ITEM, DIR_INDEX, EXTENT_DATA, CHUNK_ITEM = 1, 132, 84, 96, 108, 228
FS_TREE, ROOT_TREE_DIR = 5, 6
S_IFMT, S_IFDIR, S_IFLNK = 0o170000, 0o040000, 0o120000
BG_RAID = 0x8 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400  # RAID0/1/10/5/6/1C3/1C4
MAX_LEVEL = 8
KEY_SIZE = 17


def _key(buf, pos):
    """A (objectid, type, offset) key (MicroPython has no struct.Struct)."""
    return struct.unpack_from("<QBQ", buf, pos)


def _text(raw, what):
    try:
        return bytes(raw).decode()
    except UnicodeError:
        raise Corrupt("%s is not valid UTF-8" % what) from None


class Inode:
    def __init__(self, tree, number, mode, size):
        self.tree, self.number, self.mode, self.size = tree, number, mode, size

    def is_dir(self):
        return self.mode & S_IFMT == S_IFDIR

    def is_symlink(self):
        return self.mode & S_IFMT == S_IFLNK


class Btrfs(FsBase):
    """A single-device btrfs filesystem."""

    TYPE = "btrfs"

    def __init__(self, dev, devices=None, verify=True):
        """`devices`: other devices that may hold the rest of a multi-device filesystem (not read yet)."""
        self.dev, self.verify = dev, verify
        sb = dev.read(SUPER, 4096)
        if sb[0x40:0x48] != MAGIC:
            raise Corrupt("%s: no btrfs superblock at 64 KiB" % dev.name)
        self.fsid = sb[0x20:0x30]
        self.uuid = self.fsid
        root, chunk_root = struct.unpack_from("<QQ", sb, 0x50)
        self.num_devices = struct.unpack_from("<Q", sb, 0x88)[0]
        self.sectorsize, self.nodesize = struct.unpack_from("<II", sb, 0x90)
        sys_size = struct.unpack_from("<I", sb, 0xA0)[0]
        self.label = _text(sb[0x12B:0x12B + 256].split(b"\0")[0], "%s: btrfs label" % dev.name)
        if self.num_devices != 1:
            raise Unsupported("%s: btrfs with %d devices (multi-device is not read yet)" % (dev.name,
                                                                                          self.num_devices))
        if not 4096 <= self.nodesize <= 65536 or sys_size > 2048:
            raise Corrupt("%s: implausible btrfs superblock" % dev.name)
        self.chunks = []  # (logical, length, physical)
        arr = sb[0x32B:0x32B + sys_size]
        pos = 0
        while pos < len(arr):
            pos = self._add_chunk(arr, pos + KEY_SIZE, _key(arr, pos)[2])
        for key, data in self._items(chunk_root, sb[0xC7], (256, CHUNK_ITEM, 0), (256, CHUNK_ITEM, 1 << 64)):
            self._add_chunk(data, 0, key[2])
        self.root_tree = (root, sb[0xC6])
        self.default_subvol = self._default_subvolume()
        self.fs_root = self._subvol_root(self.default_subvol)

    def _add_chunk(self, buf, pos, logical):
        if pos + 48 > len(buf):
            raise Corrupt("%s: truncated chunk item" % self.dev.name)
        length, _, _, ctype = struct.unpack_from("<QQQQ", buf, pos)
        num_stripes = struct.unpack_from("<H", buf, pos + 44)[0]
        if ctype & BG_RAID:
            raise Unsupported("%s: btrfs chunk profile 0x%x (RAID) is not read yet" % (self.dev.name, ctype))
        if not num_stripes or pos + 48 + 32 * num_stripes > len(buf):
            raise Corrupt("%s: chunk at %d has %d stripes" % (self.dev.name, logical, num_stripes))
        physical = struct.unpack_from("<Q", buf, pos + 48 + 8)[0]  # stripe 0 (DUP: both copies are equal)
        self.chunks.append((logical, length, physical))
        return pos + 48 + 32 * num_stripes

    def physical(self, logical, length):
        for start, size, phys in self.chunks:
            if start <= logical and logical + length <= start + size:
                return phys + logical - start
        raise Corrupt("%s: logical address %d is not mapped by any chunk" % (self.dev.name, logical))

    def _node(self, logical):
        return self.dev.read(self.physical(logical, self.nodesize), self.nodesize)

    def _items(self, logical, level, lo, hi, depth=0):
        """(key, data) of every item with lo <= key < hi in the tree rooted at `logical`, in key order."""
        if depth > MAX_LEVEL:
            raise Corrupt("%s: btrfs tree deeper than %d levels" % (self.dev.name, MAX_LEVEL))
        node = self._node(logical)
        nritems, nlevel = struct.unpack_from("<IB", node, 96)
        if nlevel != level:
            raise Corrupt("%s: btrfs node %d has level %d, expected %d" % (self.dev.name, logical, nlevel, level))
        out = []
        if level == 0:
            if 101 + 25 * nritems > len(node):
                raise Corrupt("%s: btrfs leaf %d: %d items overflow" % (self.dev.name, logical, nritems))
            for i in range(nritems):
                key = _key(node, 101 + 25 * i)
                off, size = struct.unpack_from("<II", node, 101 + 25 * i + 17)
                if lo <= key < hi:
                    if 101 + off + size > len(node):
                        raise Corrupt("%s: btrfs leaf %d: item %d overflows" % (self.dev.name, logical, i))
                    out.append((key, node[101 + off:101 + off + size]))
            return out
        if 101 + 33 * nritems > len(node):
            raise Corrupt("%s: btrfs node %d: %d pointers overflow" % (self.dev.name, logical, nritems))
        ptrs = [(_key(node, 101 + 33 * i), struct.unpack_from("<Q", node, 101 + 33 * i + 17)[0])
                for i in range(nritems)]
        for i, (key, child) in enumerate(ptrs):
            upper = ptrs[i + 1][0] if i + 1 < len(ptrs) else None
            if (upper is None or upper > lo) and key < hi:
                out.extend(self._items(child, level - 1, lo, hi, depth + 1))
        return out

    def _subvol_root(self, subvol):
        items = self._items(*self.root_tree, (subvol, ROOT_ITEM, 0), (subvol, ROOT_ITEM + 1, 0))
        if not items:
            raise Corrupt("%s: no root item for subvolume %d" % (self.dev.name, subvol))
        data = items[-1][1]
        return (struct.unpack_from("<Q", data, 176)[0], data[238], struct.unpack_from("<Q", data, 168)[0])

    def _default_subvolume(self):
        for _, data in self._items(*self.root_tree, (ROOT_TREE_DIR, DIR_ITEM, 0), (ROOT_TREE_DIR, DIR_ITEM + 1, 0)):
            name_len = struct.unpack_from("<H", data, 27)[0]
            if bytes(data[30:30 + name_len]) == b"default":
                return _key(data, 0)[0]
        return FS_TREE

    # ---- inodes ----
    def inode(self, tree, number):
        items = self._items(tree[0], tree[1], (number, INODE_ITEM, 0), (number, INODE_ITEM + 1, 0))
        if not items:
            raise Corrupt("%s: inode %d missing" % (self.dev.name, number))
        data = items[0][1]
        return Inode(tree, number, struct.unpack_from("<I", data, 52)[0], struct.unpack_from("<Q", data, 16)[0])

    def entries(self, inode):
        """[(name, (tree, inode number))] of a directory; subvolume entries lead into their own tree."""
        if not inode.is_dir():
            raise NotFound("%s: inode %d is not a directory" % (self.dev.name, inode.number))
        tree = inode.tree
        out = []
        for _, data in self._items(tree[0], tree[1], (inode.number, DIR_INDEX, 0),
                                   (inode.number, DIR_INDEX + 1, 0)):
            loc = _key(data, 0)
            name_len = struct.unpack_from("<H", data, 27)[0]
            name = _text(data[30:30 + name_len], "a name in directory inode %d" % inode.number)
            if loc[1] == ROOT_ITEM:
                root = self._subvol_root(loc[0])
                out.append((name, (root[:2], root[2])))
            else:
                out.append((name, (tree, loc[0])))
        return out

    def _extents(self, inode):
        tree = inode.tree
        return self._items(tree[0], tree[1], (inode.number, EXTENT_DATA, 0), (inode.number, EXTENT_DATA + 1, 0))

    def read_inode_data(self, inode):
        if inode.size > 1 << 40:
            raise Corrupt("%s: inode %d claims %d bytes" % (self.dev.name, inode.number, inode.size))
        buf = bytearray(inode.size)
        self.readinto_file(inode, 0, buf)
        return bytes(buf)

    def readinto_file(self, inode, offset, buf):
        """Fill buf from `offset` of the file: uncompressed extents straight from the device into buf, holes and
        prealloc extents as zeros (buf must start zeroed there), compressed and inline ones decoded."""
        end = min(offset + len(buf), inode.size)
        mv = memoryview(buf)
        for key, fe in self._extents(inode):
            start = key[2]
            comp, ftype = fe[16], fe[20]
            if ftype == 0:  # inline
                data = self._decompress(comp, fe[21:], struct.unpack_from("<Q", fe, 8)[0], inode)
                length = len(data)
            else:
                disk_bytenr, disk_bytes, ext_off, length = struct.unpack_from("<QQQQ", fe, 21)
                if ftype == 2 or not disk_bytenr:
                    continue  # prealloc or a hole: zeros
                data = None
                if comp:
                    raw = self.dev.read(self.physical(disk_bytenr, disk_bytes), disk_bytes)
                    size = struct.unpack_from("<Q", fe, 8)[0]
                    data = self._decompress(comp, raw, size, inode)[ext_off:ext_off + length]
            lo, hi = max(offset, start), min(end, start + length)
            if lo >= hi:
                continue
            if data is None:
                self.dev.readinto(self.physical(disk_bytenr + ext_off + (lo - start), hi - lo),
                                  mv[lo - offset:hi - offset])
            else:
                mv[lo - offset:hi - offset] = data[lo - start:hi - start]
        return max(0, end - offset)

    def _decompress(self, comp, data, size, inode):
        if comp == 0:
            return bytes(data)
        if comp == 1:
            from compat import zlib_decompress

            return zlib_decompress(bytes(data))[:size]
        name = {2: "lzo", 3: "zstd"}.get(comp, "type %d" % comp)
        raise Unsupported("%s: inode %d uses %s compression, not read yet" % (self.dev.name, inode.number, name))

    def readlink_inode(self, inode):
        return _text(self.read_inode_data(inode), "%s: symlink inode %d" % (self.dev.name, inode.number))

    def root(self):
        return self.inode(self.fs_root[:2], self.fs_root[2])

    def node(self, ref):
        return self.inode(*ref)
