"""A ZFS pool, read-only, up to the DMU: devices gathered by pool GUID, the vdev tree from their labels
(disks, mirrors, raidz1/2/3), the newest uberblock whose root block reads, block pointers (DVAs, gang and
embedded blocks, holes), checksums (fletcher2/4, sha256, sha512), decompression (diskfs.zfscompress), object
sets, dnodes (large dnodes too) and their indirect blocks, and ZAP objects (micro and fat).

Reads survive missing devices where the layout has the redundancy: mirrors try each child, raidz rebuilds
missing columns from P, Q and R (GF(2^8), diskfs.raid's arithmetic) and, when a block fails its checksum,
tries each data column as the bad one. Little-endian pools only (every x86 and arm pool).
"""

import hashlib
import struct

from diskfs import zfscompress
from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import name_text
from diskfs.zfslabel import read_label, uberblocks

VDEV_START = 4 << 20  # two labels and the boot area come first on every leaf
BP = 128
DNODE = 512
ZBT_LEAF, ZBT_HEADER, ZBT_MICRO = (1 << 63), (1 << 63) + 1, (1 << 63) + 3
ZAP_MAGIC, LEAF_MAGIC = 0x2F52AB2AB, 0x2AB1EAF
MAX_BLOCK = 16 << 20
CACHE_ITEMS = 64
#: checksum ids (zio.h)
CK_OFF, CK_LABEL, CK_GANG, CK_F2, CK_F4, CK_SHA256, CK_NOPARITY, CK_SHA512 = 2, 3, 4, 6, 7, 8, 10, 11
CK_NAMES = {0: "inherit", 1: "on", 2: "off", 3: "label", 4: "gang_header", 5: "zilog", 6: "fletcher2",
            7: "fletcher4", 8: "sha256", 9: "zilog2", 10: "noparity", 11: "sha512", 12: "skein", 13: "edonr",
            14: "blake3"}
M64 = (1 << 64) - 1

#: Pool features a reader must know (features_for_read) and this one does: name -> why it reads
FEATURES = {
    "com.delphix:hole_birth": "holes are read as holes",
    "com.delphix:extensible_dataset": "dataset ZAP fields are looked up by name",
    "com.delphix:embedded_data": "data embedded in block pointers is decoded",
    "org.open-zfs:large_blocks": "blocks up to 16 MiB",
    "org.zfsonlinux:large_dnode": "dnodes of several 512-byte slots",
    "org.illumos:lz4_compress": "lz4 decoded",
    "org.freebsd:zstd_compress": "zstd decoded where a decoder exists",
    "org.illumos:sha512": "SHA-512/256 checksums",
    "com.datto:encryption": "native encryption (diskfs.zfscrypt)",
    "com.delphix:head_errlog": "the persistent error log, not read",
    "com.klarasystems:vdev_zaps_v2": "per-vdev ZAPs, not read",
    "com.delphix:bookmarks": "bookmarks are not read",
    "com.datto:bookmark_v2": "bookmarks are not read",
    "com.delphix:obsolete_counts": "space accounting, not read",
    "com.delphix:spacemap_v2": "space maps are not read",
    "com.delphix:log_spacemap": "space maps are not read",
    "org.zfsonlinux:project_quota": "quota accounting, not read",
    "org.zfsonlinux:userobj_accounting": "quota accounting, not read",
}


def fletcher4(data):
    """ZFS's fletcher4 over little-endian 32-bit words: (a, b, c, d), each mod 2^64."""
    n = len(data) // 4
    words = struct.unpack("<%dI" % n, bytes(data[:4 * n]))
    try:
        from itertools import accumulate
    except ImportError:  # MicroPython
        a = b = c = d = 0
        for w in words:
            a += w
            b += a
            c += b
            d += c
        return a & M64, b & M64, c & M64, d & M64
    if not n:
        return 0, 0, 0, 0
    first = list(accumulate(words))  # running sums: each level is the prefix sum of the one before
    second = list(accumulate(first))
    third = list(accumulate(second))
    return first[-1] & M64, second[-1] & M64, third[-1] & M64, sum(third) & M64


def fletcher2(data):
    """ZFS's fletcher2 over pairs of little-endian 64-bit words: (a0, a1, b0, b1), each mod 2^64."""
    n = len(data) // 16 * 2
    words = struct.unpack("<%dQ" % n, bytes(data[:8 * n]))
    a0 = a1 = b0 = b1 = 0
    for i in range(0, n, 2):
        a0 += words[i]
        a1 += words[i + 1]
        b0 += a0
        b1 += a1
    return a0 & M64, a1 & M64, b0 & M64, b1 & M64


def _sha_words(digest):
    return struct.unpack(">QQQQ", digest[:32])


def checksum(ctype, data):
    """The four 64-bit words of checksum `ctype` over data; None for 'off'; Unsupported for one not known."""
    if ctype == CK_F4:
        return fletcher4(data)
    if ctype == CK_F2:
        return fletcher2(data)
    if ctype == CK_SHA256:
        return _sha_words(hashlib.sha256(bytes(data)).digest())
    if ctype == CK_SHA512:  # SHA-512/256, its digest stored as native (little-endian) words, unlike sha256
        try:
            return struct.unpack("<QQQQ", hashlib.new("sha512_256", bytes(data)).digest())
        except (ValueError, AttributeError):
            raise Unsupported("ZFS sha512 checksums (no SHA-512/256 on this runtime)", "sha512") from None
    if ctype in (CK_OFF, CK_NOPARITY):
        return None
    raise Unsupported("ZFS checksum %s unsupported" % CK_NAMES.get(ctype, ctype), CK_NAMES.get(ctype, ctype))


class BlockPtr:
    """A block pointer: up to three DVAs (vdev, offset, asize, gang), sizes, compression, checksum, or an
    embedded payload."""

    def __init__(self, raw, pos=0):
        w = struct.unpack_from("<16Q", raw, pos)
        self.raw = bytes(raw[pos:pos + BP])
        prop = w[6]
        self.embedded = bool(prop >> 39 & 1)
        self.comp = prop >> 32 & 0x7F
        self.type, self.level = prop >> 48 & 0xFF, prop >> 56 & 0x1F
        self.crypt = bool(prop >> 61 & 1)  # in an encrypted dataset: encrypted or authenticated
        self.little = bool(prop >> 63)
        self.birth = w[10]
        self.fill = w[11]
        # BP_IS_ENCRYPTED: the third DVA holds the salt and IV, the last checksum words the MAC
        self.encrypted = self.crypt and self.level == 0 and not self.embedded and is_encrypted_type(self.type)
        if self.embedded:
            self.etype = prop >> 40 & 0xFF
            self.lsize = (prop & 0x1FFFFFF) + 1
            self.psize = (prop >> 25 & 0x7F) + 1
            self.cksum_type = CK_OFF
            self.dvas = []
            self.cksum = None
            return
        self.lsize = ((prop & 0xFFFF) + 1) << 9
        self.psize = ((prop >> 16 & 0xFFFF) + 1) << 9
        self.cksum_type = prop >> 40 & 0xFF
        self.cksum = w[12:16]
        self.dvas = []
        if self.encrypted:
            self.salt = self.raw[32:40]
            self.iv = self.raw[40:48] + self.raw[92:96]
            self.mac = self.raw[112:128]
        for i in range(2 if self.encrypted else 3):
            a, b = w[2 * i], w[2 * i + 1]
            if a or b:
                self.dvas.append((a >> 32, (b & ~(1 << 63)) << 9, (a & 0xFFFFFF) << 9, bool(b >> 63)))

    def is_hole(self):
        return not self.embedded and not self.dvas

    def payload(self):
        """An embedded block pointer's bytes (words 0-5, 7-9 and 11-15 of the pointer)."""
        r = self.raw
        return (r[0:48] + r[56:80] + r[88:128])[:self.psize]


#: dmu_ot[] entries whose blocks an encrypted dataset encrypts (the rest is only authenticated)
ENCRYPTED_TYPES = (9, 10, 18, 19, 20, 22, 23, 25, 26, 33, 34, 35, 39, 40, 44, 45, 46, 47, 49)


def is_encrypted_type(t):
    if t & 0x80:  # DMU_OTN_*: the type carries its own encrypted bit
        return bool(t & 0x20)
    return t in ENCRYPTED_TYPES


def checksum_ok(bp, data):
    """Does data match the block pointer's checksum? Blocks of encrypted datasets keep only two checksum words
    (the MAC takes the others), folded first for the weak fletcher sums."""
    got = checksum(bp.cksum_type, data)
    if got is None:
        return True
    if bp.crypt and bp.type != 11:  # not an objset block
        a, b, c, d = got
        if bp.cksum_type in (CK_F2, CK_F4):
            a, b = a ^ c, b ^ d
        return (a, b) == tuple(bp.cksum[:2])
    return got == tuple(bp.cksum)


def _gf_mul(a, b):
    from diskfs import raid

    if not a or not b:
        return 0
    exp, log = raid._tables()
    return exp[log[a] + log[b]]


def _solve(matrix):
    """The inverse of a small square matrix over GF(2^8) (Gauss-Jordan); None when it is singular."""
    from diskfs import raid

    n = len(matrix)
    m = [list(row) + [1 if i == j else 0 for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col]), None)
        if pivot is None:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        inv = raid.gf_inv(m[col][col])
        m[col] = [_gf_mul(inv, v) for v in m[col]]
        for r in range(n):
            if r != col and m[r][col]:
                f = m[r][col]
                m[r] = [v ^ _gf_mul(f, p) for v, p in zip(m[r], m[col])]
    return [row[n:] for row in m]


class Vdev:
    """A node of the vdev tree: a leaf ('disk' or 'file', with its device or None when missing), a mirror or a
    raidz (children in column order)."""

    def __init__(self, tree, leaves, where):
        self.kind = tree.get("type", "")
        self.guid = tree.get("guid", 0)
        self.ashift = tree.get("ashift", 9)
        self.nparity = tree.get("nparity", 0)
        self.children = []
        self.dev = None
        if self.kind in ("disk", "file"):
            self.dev = leaves.get(self.guid)
            return
        if self.kind not in ("mirror", "raidz", "replacing", "spare"):
            raise Unsupported("%s: ZFS vdev type %r unsupported" % (where, self.kind), "ZFS vdev " + self.kind)
        kids = tree.get("children")
        if not isinstance(kids, list) or not kids or len(kids) > 255:
            raise Corrupt("%s: ZFS %s vdev without children" % (where, self.kind), "ZFS label")
        self.children = [Vdev(k, leaves, where) for k in kids if isinstance(k, dict)]
        if self.kind == "raidz" and not (1 <= self.nparity <= 3 and self.nparity < len(self.children)):
            raise Corrupt("%s: raidz with %d parity over %d devices" % (where, self.nparity, len(self.children)),
                          "ZFS label")

    def leaves(self):
        if self.kind in ("disk", "file"):
            return [self]
        out = []
        for c in self.children:
            out += c.leaves()
        return out

    def candidates(self, offset, size):
        """Each way to read [offset, offset + size) of this vdev, best first: bytes, or None when nothing
        more can be tried (a generator: later ones are rebuilt only when asked for)."""
        if self.dev is not None or self.kind in ("disk", "file"):
            if self.dev is None or VDEV_START + offset + size > self.dev.size:
                return
            buf = bytearray(size)
            self.dev.readinto(VDEV_START + offset, buf)
            yield buf
        elif self.kind == "raidz":
            yield from self._raidz(offset, size)
        else:
            for child in self.children:
                yield from child.candidates(offset, size)

    def _raidz(self, offset, size):
        ashift, nparity = self.ashift, self.nparity
        dcols = len(self.children)
        unit = 1 << ashift
        size = (size + unit - 1) // unit * unit
        b, s = offset >> ashift, size >> ashift
        f, o = b % dcols, (b // dcols) << ashift
        q, r = divmod(s, dcols - nparity)
        bc = r + nparity if r else 0
        acols = bc if q == 0 else dcols
        cols = []  # (child index, child offset, size)
        for c in range(acols):
            col, coff = f + c, o
            if col >= dcols:
                col, coff = col - dcols, coff + unit
            cols.append([col, coff, (q + 1) << ashift if c < bc else q << ashift])
        if nparity == 1 and offset & (1 << 20) and len(cols) > 1:  # raidz1's parity/data swap on odd MiBs
            cols[0][0], cols[1][0] = cols[1][0], cols[0][0]
            cols[0][1], cols[1][1] = cols[1][1], cols[0][1]
        data = []
        for col, coff, n in cols:
            buf = None
            if n:
                for got in self.children[col].candidates(coff, n):
                    buf = got
                    break
            data.append(buf if n else bytearray())
        ndata = len(cols) - nparity
        missing = [i for i in range(ndata) if data[nparity + i] is None]
        if len(missing) <= nparity:
            out = self._assemble(data, cols, nparity, missing)
            if out is not None:
                yield out[:size]
        if missing:
            return
        # the block failed its checksum: try each data column, then each pair, as the bad one
        for k in range(1, nparity + 1):
            for bad in _combinations(list(range(ndata)), k):
                out = self._assemble(data, cols, nparity, list(bad))
                if out is not None:
                    yield out[:size]

    def _assemble(self, data, cols, nparity, missing):
        """The data columns concatenated, rebuilding those in `missing` from the parity columns present."""
        from diskfs import raid

        ndata = len(cols) - nparity
        if not missing:
            return b"".join(bytes(d) for d in data[nparity:])
        avail = [j for j in range(nparity) if data[j] is not None]
        if len(avail) < len(missing):
            return None
        rows = avail[:len(missing)]
        psize = cols[0][2]
        known = {}
        for i in range(ndata):
            if i not in missing:
                d = bytes(data[nparity + i])
                known[i] = d + bytes(psize - len(d))
        syndromes = []
        for j in rows:  # parity j: sum of g_j^(ndata-1-i) D_i with g = 1, 2, 4
            acc = bytes(data[j])
            for i, d in known.items():
                acc = raid.xor(acc, raid.gf_scale(d, raid.gf_pow2(j * (ndata - 1 - i))))
            syndromes.append(acc)
        inv = _solve([[raid.gf_pow2(j * (ndata - 1 - m)) for m in missing] for j in rows])
        if inv is None:
            return None
        rebuilt = {}
        for a, m in enumerate(missing):
            acc = bytes(psize)
            for b, syn in enumerate(syndromes):
                if inv[a][b]:
                    acc = raid.xor(acc, raid.gf_scale(syn, inv[a][b]))
            rebuilt[m] = acc
        parts = []
        for i in range(ndata):
            n = cols[nparity + i][2]
            parts.append(rebuilt[i][:n] if i in rebuilt else known[i][:n])
        return b"".join(parts)


def _combinations(items, k):
    if k == 0:
        yield ()
        return
    for i in range(len(items)):
        for rest in _combinations(items[i + 1:], k - 1):
            yield (items[i],) + rest


class Pool:
    """The pool on `devices` (the first one's pool GUID decides which others belong), at its newest uberblock."""

    def __init__(self, devices, verify_data=True, verify_metadata=True):
        first = devices[0]
        self.name_dev = first.name
        _, label = read_label(first)
        self.guid = label.get("pool_guid")
        self.name = label.get("name", "")
        self.version = label.get("version", 0)
        self.verify_data, self.verify_metadata = verify_data, verify_metadata
        where = "%s: ZFS pool %s" % (first.name, self.name)
        self.where = where
        leaves, tops, self.devices = {}, {}, []
        for dev in devices:
            try:
                _, nv = read_label(dev)
            except Corrupt:
                continue
            if nv.get("pool_guid") != self.guid or nv.get("guid") in leaves:
                continue
            leaves[nv.get("guid")] = dev
            self.devices.append(dev)
            tree = nv.get("vdev_tree")
            if isinstance(tree, dict) and tree.get("id") not in tops:
                tops[tree.get("id")] = tree
        self.ntops = label.get("vdev_children", len(tops))
        self.tops = {}
        for vid, tree in tops.items():
            self.tops[vid] = Vdev(tree, leaves, where)
        self.ashift = max([t.ashift for t in self.tops.values()] or [9])
        ubs = []
        for dev in self.devices:
            ubs += uberblocks(dev, self.ashift)
        ubs.sort(key=lambda u: (u[0], u[1]), reverse=True)
        self._cache, self._order = {}, []
        problem = None
        for txg, _, raw in ubs[:8]:
            try:
                self.ub_txg = txg
                self.rootbp = BlockPtr(raw, 40)
                self.mos_raw = self.read(self.rootbp)
                break
            except Corrupt as exc:
                problem = exc
        else:
            raise Corrupt("%s: no uberblock whose root block reads (%s)" % (where, problem or "none valid"),
                          "ZFS uberblock")

    def missing(self):
        """Leaf vdevs whose device was not found (by GUID)."""
        out = []
        for top in self.tops.values():
            out += [leaf.guid for leaf in top.leaves() if leaf.dev is None]
        return out

    # ---- blocks ----
    def read(self, bp, cache=True, verify=None, key=None):
        """A block's logical bytes (lsize): embedded payload, hole or read from a DVA that checks out (checksums
        checked when `verify`, default: verify_metadata), decrypted with `key` (zfscrypt.DatasetKey) when the
        block is encrypted."""
        if verify is None:
            verify = self.verify_metadata
        if bp.embedded:
            if bp.etype != 0:
                raise Unsupported("%s: embedded block type %d unsupported" % (self.where, bp.etype), "ZFS embedded")
            if bp.comp in (0, 2):
                return bp.payload() + bytes(bp.lsize - bp.psize)
            return zfscompress.decompress(bp.comp, bp.payload(), bp.lsize)
        if bp.is_hole():
            return bytes(bp.lsize)
        if not bp.little:
            raise Unsupported("%s: big-endian ZFS block unsupported" % self.where, "ZFS big-endian")
        if bp.encrypted and key is None:
            raise Unsupported("%s: an encrypted block outside an encrypted dataset" % self.where, "ZFS encryption")
        if bp.lsize > MAX_BLOCK or bp.psize > MAX_BLOCK:
            raise Corrupt("%s: block of %d bytes" % (self.where, bp.lsize), "ZFS block pointer")
        slot = bp.raw[:48] + bp.raw[80:88]
        if cache and slot in self._cache:
            return self._cache[slot]
        raw = self._physical(bp, verify)
        if bp.encrypted:
            raw = key.decrypt(bp, raw)
        if bp.comp in (0, 2):  # inherit (old pools) and off: stored as is
            data = bytes(raw[:bp.lsize]) + bytes(max(0, bp.lsize - len(raw)))
        else:
            data = zfscompress.decompress(bp.comp, raw, bp.lsize)
        if cache:
            if len(self._order) >= CACHE_ITEMS:
                self._cache.pop(self._order.pop(0), None)
            self._cache[slot] = data
            self._order.append(slot)
        return bytes(data)

    def _physical(self, bp, verify, depth=0):
        """psize bytes of the block from the first DVA copy whose checksum matches."""
        if depth > 4:
            raise Corrupt("%s: gang blocks nested deeper than 4" % self.where, "ZFS gang block")
        problem = "no copy could be read (missing devices: %d)" % len(self.missing())
        for vdev, offset, _, gang in bp.dvas:
            top = self.tops.get(vdev)
            if top is None:
                problem = "DVA names vdev %d, which the labels do not list" % vdev
                continue
            if gang:
                got = self._gang(top, vdev, offset, bp, verify, depth)
                if got is not None:
                    return got
                problem = "gang block fails its checksums"
                continue
            for buf in top.candidates(offset, bp.psize):
                buf = buf[:bp.psize]
                if not verify or checksum_ok(bp, buf):
                    return buf
                problem = "%s checksum mismatch" % CK_NAMES.get(bp.cksum_type, bp.cksum_type)
        raise Corrupt("%s: block at vdev %s offset %s: %s" % (self.where, bp.dvas[0][0] if bp.dvas else "-",
                                                            bp.dvas[0][1] if bp.dvas else "-", problem),
                      "ZFS block", bp.dvas[0][1] if bp.dvas else None)

    def _gang(self, top, vdev, offset, bp, verify, depth):
        """A gang block: a 512-byte header of three block pointers (checksummed with its own address), their
        data concatenated."""
        for hdr in top.candidates(offset, 512):
            hdr = bytes(hdr[:512])
            eck = struct.unpack_from("<QQQQ", hdr, 512 - 32)
            tmp = bytearray(hdr)
            tmp[512 - 32:] = struct.pack("<QQQQ", vdev, offset, bp.birth, 0)
            if _sha_words(hashlib.sha256(tmp).digest()) != eck:
                continue
            parts = []
            for i in range(3):
                child = BlockPtr(hdr, i * BP)
                if child.is_hole():
                    continue
                parts.append(self._physical(child, verify, depth + 1)[:child.psize])
            data = b"".join(parts)[:bp.psize]
            if not verify or checksum_ok(bp, data):
                return data
        return None


class Dnode:
    """A dnode (one or more 512-byte slots): its block pointers, bonus buffer and sizes."""

    def __init__(self, raw, number, where):
        self.number = number
        (self.type, self.indblkshift, self.nlevels, self.nblkptr, self.bonustype, self.checksum, self.compress,
         self.flags, secs, self.bonuslen, self.extra) = struct.unpack_from("<BBBBBBBBHHB", raw, 0)
        self.maxblkid = struct.unpack_from("<Q", raw, 16)[0]
        self.blksz = secs << 9
        size = DNODE * (1 + self.extra)
        if self.type == 0:
            return
        bad = None
        if len(raw) < size:
            bad = "%d slots run past its block" % (1 + self.extra)
        elif not 1 <= self.nblkptr <= 3 or not 1 <= self.nlevels <= 10 or not 10 <= self.indblkshift <= 17:
            bad = "%d block pointers, %d levels, indirect shift %d" % (self.nblkptr, self.nlevels, self.indblkshift)
        elif not 512 <= self.blksz <= MAX_BLOCK or 64 + BP * self.nblkptr + self.bonuslen > size:
            bad = "block size %d, bonus %d bytes" % (self.blksz, self.bonuslen)
        if bad:
            raise Corrupt("%s: dnode %d: %s" % (where, number, bad), "ZFS dnode")
        self.blkptrs = [BlockPtr(raw, 64 + BP * i) for i in range(self.nblkptr)]
        at = 64 + BP * self.nblkptr
        self.bonus = bytes(raw[at:at + self.bonuslen])
        self.spill = BlockPtr(raw, size - BP) if self.flags & 4 else None


class Objset:
    """An object set (the MOS or a dataset): its meta dnode and the objects in it."""

    def __init__(self, pool, bp, what, key=None):
        self.pool, self.what, self.key = pool, what, key
        raw = pool.read(bp)
        if len(raw) < 1024:
            raise Corrupt("%s: %s: objset of %d bytes" % (pool.where, what, len(raw)), "ZFS objset")
        self.type = struct.unpack_from("<Q", raw, 704)[0]
        self.meta = Dnode(raw[:DNODE], 0, pool.where)
        self._last = (None, None)

    def dnode(self, number):
        """Object `number`'s dnode (NotFound when it is free)."""
        meta = self.meta
        per = meta.blksz // DNODE
        blkid, slot = divmod(number, per)
        if number < 0 or blkid > meta.maxblkid:
            raise NotFound("%s: %s: no object %d" % (self.pool.where, self.what, number))
        block = self.block(meta, blkid)
        raw = block[slot * DNODE:]
        dn = Dnode(raw, number, self.pool.where)
        if dn.type == 0:
            raise NotFound("%s: %s: object %d is free" % (self.pool.where, self.what, number))
        return dn

    def bp_of(self, dn, blkid):
        """The level-0 block pointer of block `blkid` of a dnode, through its indirect blocks (None: a hole)."""
        epbs = dn.indblkshift - 7
        top = blkid >> (epbs * (dn.nlevels - 1))
        if top >= dn.nblkptr:
            return None
        bp = dn.blkptrs[top]
        for level in range(dn.nlevels - 1, 0, -1):
            if bp.is_hole():
                return None
            ind = self.pool.read(bp, key=self.key)
            idx = (blkid >> (epbs * (level - 1))) & ((1 << epbs) - 1)
            if (idx + 1) * BP > len(ind):
                raise Corrupt("%s: dnode %d: indirect block of %d bytes" % (self.pool.where, dn.number, len(ind)),
                              "ZFS indirect block")
            bp = BlockPtr(ind, idx * BP)
        return None if bp.is_hole() else bp

    def block(self, dn, blkid, cache=True, verify=None):
        """Block `blkid` of a dnode's data (zeros for a hole), dn.blksz bytes."""
        if blkid > dn.maxblkid:
            return bytes(dn.blksz)
        bp = self.bp_of(dn, blkid)
        if bp is None:
            return bytes(dn.blksz)
        data = self.pool.read(bp, cache, verify, self.key)
        if len(data) < dn.blksz:
            data = data + bytes(dn.blksz - len(data))
        return data

    def zap(self, number):
        """A ZAP object's entries: {name: value}; values are ints (one 64-bit integer), lists of ints, or bytes
        (a string's bytes, without the final NUL)."""
        dn = self.dnode(number)
        return zap_entries(self, dn)


def zap_entries(objset, dn):
    where = "%s: ZAP object %d" % (objset.pool.where, dn.number)
    first = objset.block(dn, 0)
    kind = struct.unpack_from("<Q", first, 0)[0]
    out = {}
    if kind == ZBT_MICRO:
        for at in range(64, len(first) - 63, 64):
            value = struct.unpack_from("<Q", first, at)[0]
            name = bytes(first[at + 14:at + 64]).split(b"\0")[0]
            if name:
                out[name_text(name)] = value
        return out
    if kind != ZBT_HEADER:
        raise Corrupt("%s: block type 0x%x is not a ZAP" % (where, kind), "ZFS ZAP", 0)
    magic, ptr_blk, ptr_num, ptr_shift = struct.unpack_from("<QQQQ", first, 8)
    if magic != ZAP_MAGIC or ptr_shift > 32:
        raise Corrupt("%s: bad fat ZAP header" % where, "ZFS ZAP", 0)
    bs = dn.blksz
    if ptr_num == 0:  # the pointer table lives in the second half of the header block
        n = min(1 << ptr_shift, bs // 16)
        table = struct.unpack_from("<%dQ" % n, first, bs // 2)
    else:
        if ptr_num > 1024 or ptr_num * bs > 64 << 20:
            raise Corrupt("%s: pointer table of %d blocks" % (where, ptr_num), "ZFS ZAP", 0)
        table = []
        for b in range(ptr_num):
            blk = objset.block(dn, ptr_blk + b)
            table += struct.unpack("<%dQ" % (bs // 8), blk)
    seen = set()
    for leaf in table:
        if leaf in seen or leaf == 0 or leaf > dn.maxblkid:
            continue
        seen.add(leaf)
        _leaf_entries(objset.block(dn, leaf), bs, out, "%s leaf %d" % (where, leaf))
    return out


def _leaf_entries(buf, bs, out, where):
    btype, _, _, magic = struct.unpack_from("<QQQI", buf, 0)
    if btype != ZBT_LEAF or magic != LEAF_MAGIC:
        raise Corrupt("%s: not a ZAP leaf" % where, "ZFS ZAP leaf")
    hashes = bs // 32
    base = 48 + 2 * hashes
    nchunks = (bs - 2 * hashes) // 24 - 2

    def array(chunk, nbytes):
        data = bytearray()
        for _ in range(nchunks):
            if len(data) >= nbytes:
                break
            if chunk >= nchunks:
                raise Corrupt("%s: array chunk %d of %d" % (where, chunk, nchunks), "ZFS ZAP leaf")
            at = base + 24 * chunk
            if buf[at] != 251:
                raise Corrupt("%s: chunk %d is not an array chunk" % (where, chunk), "ZFS ZAP leaf")
            data += buf[at + 1:at + 22]
            chunk = struct.unpack_from("<H", buf, at + 22)[0]
        if len(data) < nbytes:
            raise Corrupt("%s: array of %d bytes ends early" % (where, nbytes), "ZFS ZAP leaf")
        return bytes(data[:nbytes])

    for c in range(nchunks):
        at = base + 24 * c
        if buf[at] != 252:
            continue
        intlen = buf[at + 1]
        name_chunk, name_len, value_chunk, value_num = struct.unpack_from("<HHHH", buf, at + 4)
        if intlen not in (1, 2, 4, 8) or name_len > 4096 or value_num * intlen > 1 << 20:
            raise Corrupt("%s: entry chunk %d: %d-byte integers, %d-byte name" % (where, c, intlen, name_len),
                          "ZFS ZAP leaf")
        name = name_text(array(name_chunk, name_len).split(b"\0")[0])
        raw = array(value_chunk, value_num * intlen)
        if intlen == 1:
            out[name] = raw  # bytes: a string keeps its NUL, a key does not lose its last byte
        else:
            ints = [int.from_bytes(raw[i:i + intlen], "big") for i in range(0, len(raw), intlen)]
            out[name] = ints[0] if len(ints) == 1 else ints
