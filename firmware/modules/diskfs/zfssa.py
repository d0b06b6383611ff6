"""ZFS system attributes (ZPL version 5, every OpenZFS dataset): a znode's fields live in its bonus buffer (or
a spill block) as attributes laid out by a numbered layout. The dataset's SA master node names two ZAPs: the
REGISTRY (attribute name -> number, byte length, 0 for variable) and the LAYOUTS (layout number -> attribute
numbers in order). A bonus buffer starts with a header (magic 0x2F505A, layout number, header size, the
lengths of its variable attributes), then the attributes, each padded to 8 bytes."""

import struct

from diskfs.errors import Corrupt

SA_MAGIC = 0x2F505A
#: the ZPL attributes read, with their fixed sizes (0: variable)
WANTED = ("ZPL_MODE", "ZPL_SIZE", "ZPL_LINKS", "ZPL_UID", "ZPL_GID", "ZPL_MTIME", "ZPL_SYMLINK")


class Attributes:
    """One dataset's attribute registry and layouts."""

    def __init__(self, objset, master_obj, where):
        self.where = where
        if not isinstance(master_obj, int):
            raise Corrupt("%s: system-attribute dataset without SA_ATTRS" % where, "ZFS SA")
        master = objset.zap(master_obj)
        registry = objset.zap(master["REGISTRY"]) if isinstance(master.get("REGISTRY"), int) else {}
        layouts = objset.zap(master["LAYOUTS"]) if isinstance(master.get("LAYOUTS"), int) else {}
        self.names, self.lengths = {}, {}
        for name, value in registry.items():
            if isinstance(value, int):
                self.names[value & 0xFFFF] = name
                self.lengths[value & 0xFFFF] = value >> 24 & 0xFFFF
        self.layouts = {}
        for number, attrs in layouts.items():
            if number.isdigit():
                self.layouts[int(number)] = attrs if isinstance(attrs, list) else [attrs]

    def parse(self, node, buf, number):
        """Set node.mode, size, nlink, uid, gid, mtime and node.inline (the symlink target's offset) from an SA
        bonus buffer (or spill block)."""
        if len(buf) < 8 or struct.unpack_from("<I", buf, 0)[0] != SA_MAGIC:
            raise Corrupt("%s: object %d: no system-attribute header" % (self.where, number), "ZFS SA")
        info = struct.unpack_from("<H", buf, 4)[0]
        layout, hdrsize = info & 0x3FF, (info >> 10 & 0x3F) * 8
        attrs = self.layouts.get(layout)
        if attrs is None or hdrsize < 8 or hdrsize > len(buf):
            raise Corrupt("%s: object %d: SA layout %d (header %d bytes) unknown" % (self.where, number, layout,
                                                                                  hdrsize), "ZFS SA")
        pos, var = hdrsize, 0
        found = {}
        for attr in attrs:
            length = self.lengths.get(attr, 0)
            if not length:
                if 6 + 2 * var + 2 > hdrsize:
                    raise Corrupt("%s: object %d: SA header too short" % (self.where, number), "ZFS SA")
                length = struct.unpack_from("<H", buf, 6 + 2 * var)[0]
                var += 1
            if pos + length > len(buf):
                raise Corrupt("%s: object %d: SA attribute %d past the buffer" % (self.where, number, attr), "ZFS SA")
            name = self.names.get(attr)
            if name in WANTED:
                found[name] = (pos, length)
            pos += (length + 7) // 8 * 8
        for name in WANTED[:5]:
            if name not in found or found[name][1] != 8:
                raise Corrupt("%s: object %d: no %s attribute" % (self.where, number, name), "ZFS SA")
        value = lambda n: struct.unpack_from("<Q", buf, found[n][0])[0]  # noqa: E731
        node.mode, node.size, node.nlink = value("ZPL_MODE"), value("ZPL_SIZE"), value("ZPL_LINKS")
        node.uid, node.gid = value("ZPL_UID"), value("ZPL_GID")
        node.mtime = struct.unpack_from("<Q", buf, found["ZPL_MTIME"][0])[0] if "ZPL_MTIME" in found else 0
        node.inline = found["ZPL_SYMLINK"][0] if "ZPL_SYMLINK" in found else None
        node.sa_buf = buf
