"""ZFS datasets as filesystems, read-only: the DSL (datasets by name, child datasets, snapshots as
`pool/fs@snap`, mountpoints) over diskfs.zfspool, and the ZPL (master node, znodes, directory ZAPs, file data,
symlinks).

`Zfs(dev, devices, dataset=...)` opens one dataset (default: the pool's bootfs, else its root dataset); child
datasets whose mountpoint lies below the opened one's appear at their place (`/boot` on its own dataset reads
through `/boot`), as mounting them would. Devices are matched by pool GUID. Checksums are checked on every
block (`verify_data=False` skips file data, `verify_metadata=False` the rest: for fuzzing the parsers). An
encrypted dataset opens with `passphrase=` or `key=` (raw or hex key file bytes), diskfs.zfscrypt.
"""

import struct

from diskfs.errors import Corrupt, NotFound, Unsupported
from diskfs.fsbase import FsBase, InodeBase, name_text
from diskfs.zfspool import Objset, Pool

OT_DSL_DIR, OT_DSL_DATASET, OT_ZNODE, OT_SA = 12, 16, 17, 44
MAX_DATASETS = 4096
DIR_CACHE = 32


class Inode(InodeBase):
    """A ZPL file, directory or symlink: `os` is the index of its object set in the fs, `path` where the
    merged view shows it (for mountpoints)."""

    inline = None  # where in sa_buf a short symlink's target starts
    sa_buf = None  # the znode's bonus buffer (pre-SA znodes) or system attributes

    def __init__(self, fs, os, number, path):
        self.os, self.number, self.path = os, number, path
        objset = fs.objsets[os][1]
        self.dn = objset.dnode(number)
        if self.dn.bonustype == OT_ZNODE:
            b = self.dn.bonus
            if len(b) < 264:
                raise Corrupt("%s: znode %d: bonus of %d bytes" % (fs.dev.name, number, len(b)), "ZFS znode")
            self.mtime = struct.unpack_from("<Q", b, 16)[0]
            self.mode, self.size, _, self.nlink = struct.unpack_from("<QQQQ", b, 72)
            self.uid, self.gid = struct.unpack_from("<QQ", b, 128)
            self.inline, self.sa_buf = 264, b  # a short symlink's target follows the znode
        elif self.dn.bonustype == OT_SA:
            fs.sa(os).parse(self, self.dn.bonus, number)
        else:
            raise Corrupt("%s: object %d is no file (bonus type %d)" % (fs.dev.name, number, self.dn.bonustype),
                          "ZFS znode")


class Zfs(FsBase):
    """One dataset of a ZFS pool (with the child datasets mounted below it)."""

    TYPE = "zfs"

    def __init__(self, dev, devices=None, dataset=None, verify_data=True, verify_metadata=True, passphrase=None,
                 key=None):
        self.dev = dev
        self.secrets = (passphrase, key)
        self.pool = Pool([dev] + [d for d in devices or [] if d is not dev], verify_data, verify_metadata)
        self.verify_data = verify_data
        self.mos = Objset(self.pool, self.pool.rootbp, "MOS")
        self.objdir = self.mos.zap(1)
        self._check_features()
        self.label = self.pool.name
        self._dirs, self._dir_order = {}, []
        self._sa = {}
        name = self._default_dataset() if dataset is None else self._full(dataset)
        self.dataset = name
        head, _, snap = name.partition("@")
        self.objsets = []
        base_mp = None if snap else self.mountpoint(head)
        self.objsets.append(("/", self._open_dataset(name)))
        self.grafts = {}
        if base_mp and base_mp.startswith("/"):
            for child, mp in self.mounts():
                if child != head and child.startswith(head + "/") and (mp + "/").startswith(base_mp.rstrip("/") + "/"):
                    rel = "/" + mp[len(base_mp.rstrip("/")):].strip("/")
                    if rel != "/":
                        self.grafts[rel] = child
        self._graft_os = {}
        self.master = self.objsets[0][1].zap(1)
        self.root_obj = self._root_of(self.objsets[0][1], self.master, name)

    # ---- the pool and its datasets ----
    def _check_features(self):
        from diskfs.zfspool import FEATURES

        obj = self.objdir.get("features_for_read")
        if not isinstance(obj, int):
            return
        for feature, refcount in sorted(self.mos.zap(obj).items()):
            if refcount and feature not in FEATURES:
                raise Unsupported("%s: ZFS pool %s uses feature %s, which this reader does not know"
                                  % (self.dev.name, self.pool.name, feature), feature)

    def _full(self, name):
        name = name.strip("/")
        pool = self.pool.name
        if name == pool or name.startswith(pool + "/") or name.startswith(pool + "@"):
            return name
        return pool + ("" if name.startswith("@") else "/") + name if name else pool

    def _default_dataset(self):
        props = self.objdir.get("pool_props")
        if isinstance(props, int):
            bootfs = self.mos.zap(props).get("bootfs")
            if isinstance(bootfs, int) and bootfs:
                for name, ds in self._walk():
                    if self._dir(ds)[0] == bootfs:
                        return name
        return self.pool.name

    def _dir(self, obj):
        """(head dataset, parent dir, child-dir ZAP, props ZAP) of a DSL directory."""
        dn = self.mos.dnode(obj)
        if dn.bonustype != OT_DSL_DIR or len(dn.bonus) < 88:
            raise Corrupt("%s: MOS object %d is not a DSL directory" % (self.dev.name, obj), "ZFS DSL dir")
        head, parent, _, children = struct.unpack_from("<QQQQ", dn.bonus, 8)
        props = struct.unpack_from("<Q", dn.bonus, 80)[0]
        return head, parent, children, props

    def _ds(self, obj):
        """(snapshot-name ZAP, block pointer of the objset) of a DSL dataset."""
        from diskfs.zfspool import BlockPtr

        dn = self.mos.dnode(obj)
        if dn.bonustype != OT_DSL_DATASET or len(dn.bonus) < 256:
            raise Corrupt("%s: MOS object %d is not a DSL dataset" % (self.dev.name, obj), "ZFS DSL dataset")
        return struct.unpack_from("<Q", dn.bonus, 32)[0], BlockPtr(dn.bonus, 128)

    def _walk(self):
        """(name, DSL dir object) of every dataset, parents first."""
        root = self.objdir.get("root_dataset")
        if not isinstance(root, int):
            raise Corrupt("%s: ZFS object directory has no root_dataset" % self.dev.name, "ZFS MOS")
        out, pending = [], [(self.pool.name, root)]
        while pending:
            name, obj = pending.pop(0)
            out.append((name, obj))
            if len(out) > MAX_DATASETS:
                raise Corrupt("%s: more than %d datasets (a loop?)" % (self.dev.name, MAX_DATASETS), "ZFS DSL")
            children = self._dir(obj)[2]
            if children:
                for child, cobj in sorted(self.mos.zap(children).items()):
                    if not child.startswith("$") and isinstance(cobj, int):
                        pending.append((name + "/" + child, cobj))
        return out

    def datasets(self):
        """Every dataset's name, parents first."""
        return [name for name, _ in self._walk()]

    def _dir_of(self, name):
        for n, obj in self._walk():
            if n == name:
                return obj
        raise NotFound("%s: ZFS pool %s has no dataset %s (it has %s)" % (self.dev.name, self.pool.name, name,
                                                                          ", ".join(self.datasets())), name)

    def _prop(self, obj, key):
        props = self._dir(obj)[3]
        return self.mos.zap(props).get(key) if props else None

    def mountpoint(self, name):
        """Where a dataset mounts: its `mountpoint` property, else inherited (parent's + its own name), else
        /<name>; 'legacy' and 'none' as such; None when canmount=off."""
        obj = self._dir_of(name)
        canmount = self._prop(obj, "canmount")
        if canmount == 0:
            return None
        suffix = []
        while True:
            mp = self._prop(obj, "mountpoint")
            if isinstance(mp, bytes):
                mp = name_text(mp.split(b"\0")[0])
                if mp in ("legacy", "none"):
                    return mp
                return "/" + "/".join([p for p in mp.split("/") if p] + list(reversed(suffix)))
            parent = self._dir(obj)[1]
            if not parent or "/" not in name:
                return "/" + "/".join([name.split("/")[0]] + list(reversed(suffix)))
            suffix.append(name.rsplit("/", 1)[1])
            name, obj = name.rsplit("/", 1)[0], parent

    def mounts(self):
        """(dataset, mountpoint) of every dataset that mounts somewhere."""
        out = []
        for name, _ in self._walk():
            mp = self.mountpoint(name)
            if mp and mp.startswith("/"):
                out.append((name, mp))
        return out

    def _open_dataset(self, name):
        head, _, snap = name.partition("@")
        ds = self._dir(self._dir_of(head))[0]
        if snap:
            snaps_obj = self._ds(ds)[0]
            snaps = self.mos.zap(snaps_obj) if snaps_obj else {}
            if snap not in snaps:
                raise NotFound("%s: %s has no snapshot %s (it has %s)" % (self.dev.name, head, snap,
                                                                          ", ".join(sorted(snaps)) or "none"), name)
            ds = snaps[snap]
        bp = self._ds(ds)[1]
        if bp.is_hole():
            raise NotFound("%s: dataset %s has no object set" % (self.dev.name, name), name)
        key = None
        if bp.crypt:
            from diskfs.zfscrypt import DatasetKey

            key = DatasetKey(self.mos, self.mos.zap(self._dir_of(head)), "%s: ZFS dataset %s" % (self.dev.name, name),
                             *self.secrets)
        return Objset(self.pool, bp, name, key)

    def snapshots(self, name=None):
        """Snapshot names of a dataset (default: the opened one)."""
        head = (name or self.dataset).partition("@")[0]
        snaps_obj = self._ds(self._dir(self._dir_of(head))[0])[0]
        return sorted(self.mos.zap(snaps_obj)) if snaps_obj else []

    def _root_of(self, objset, master, name):
        version = master.get("VERSION", 0)
        root = master.get("ROOT")
        if not isinstance(root, int):
            raise Corrupt("%s: dataset %s has no ROOT in its master node (not a filesystem?)"
                          % (self.dev.name, name), "ZFS master node")
        if isinstance(version, int) and version > 5:
            raise Unsupported("%s: ZPL version %d unsupported" % (self.dev.name, version), "ZPL version")
        return root

    def sa(self, os):
        """The system-attribute registry and layouts of object set `os` (read once)."""
        if os not in self._sa:
            from diskfs.zfssa import Attributes

            objset = self.objsets[os][1]
            self._sa[os] = Attributes(objset, objset.zap(1).get("SA_ATTRS"), self.dev.name)
        return self._sa[os]

    # ---- FsBase ----
    def root(self):
        return Inode(self, 0, self.root_obj, "/")

    def node(self, ref):
        return Inode(self, ref[0], ref[1], ref[2])

    def _graft(self, path):
        """The (objset index, root object) mounted at `path`, or None."""
        name = self.grafts.get(path)
        if name is None:
            return None
        if path not in self._graft_os:
            objset = self._open_dataset(name)
            self.objsets.append((path, objset))
            self._graft_os[path] = (len(self.objsets) - 1, self._root_of(objset, objset.zap(1), name))
        return self._graft_os[path]

    def _entries(self, inode):
        key = (inode.os, inode.number)
        got = self._dirs.get(key)
        if got is None:
            from diskfs.zfspool import zap_entries

            raw = zap_entries(self.objsets[inode.os][1], inode.dn)
            got = dict((n, v & ((1 << 48) - 1)) for n, v in raw.items() if isinstance(v, int))
            if len(self._dir_order) >= DIR_CACHE:
                self._dirs.pop(self._dir_order.pop(0), None)
            self._dirs[key] = got
            self._dir_order.append(key)
        return got

    def _ref(self, inode, name, number):
        path = inode.path.rstrip("/") + "/" + name
        graft = self._graft(path) if self.grafts else None
        if graft is not None:
            return graft[0], graft[1], path
        return inode.os, number, path

    def entries(self, inode):
        for name, number in sorted(self._entries(inode).items()):
            yield name, self._ref(inode, name, number)

    def child(self, inode, name):
        number = self._entries(inode).get(name)
        return None if number is None else self._ref(inode, name, number)

    def _key(self, node):
        return (node.os, node.number)

    def runs(self, inode, offset, length):
        objset = self.objsets[inode.os][1]
        dn = inode.dn
        bs = dn.blksz
        pos, end = offset, offset + length
        while pos < end:
            blkid, off = divmod(pos, bs)
            n = min(bs - off, end - pos)
            bp = objset.bp_of(dn, blkid) if blkid <= dn.maxblkid else None
            if bp is None:
                yield n, None
            else:
                data = self.pool.read(bp, False, self.verify_data, objset.key)
                yield n, memoryview(data)[off:off + n]
            pos += n

    def readlink_inode(self, inode):
        if inode.size > 4096:
            raise Corrupt("%s: symlink %d of %d bytes" % (self.dev.name, inode.number, inode.size), "ZFS symlink")
        if inode.inline is not None and inode.inline + inode.size <= len(inode.sa_buf):
            raw = inode.sa_buf[inode.inline:inode.inline + inode.size]
        else:
            raw = self.read_inode_data(inode)
        return name_text(raw)

    @property
    def uuid_str(self):
        return "%d" % self.pool.guid

    def info(self):
        out = FsBase.info(self)
        out.update({"pool": self.pool.name, "dataset": self.dataset, "txg": self.pool.ub_txg,
                    "pool version": self.pool.version,
                    "devices": "%d found, %d missing" % (len(self.pool.devices), len(self.pool.missing())),
                    "datasets": ", ".join(self.datasets()),
                    "mounted below": ", ".join("%s at %s" % (n, p) for p, n in sorted(self.grafts.items())) or "-"})
        return out
