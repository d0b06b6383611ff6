"""A minimal flattened device tree (DTB) reader and writer: enough to rewrite /chosen for a kexec.

The format (devicetree specification v0.4, chapter 5), all integers big-endian:
  header (40 bytes): magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version,
    last_comp_version, boot_cpuid_phys, size_dt_strings, size_dt_struct;
  memory reservation map: (address u64, size u64) pairs ending with a (0, 0) pair, 8-byte aligned;
  structure block: tokens FDT_BEGIN_NODE (1) + NUL-terminated name padded to 4 bytes, FDT_END_NODE (2),
    FDT_PROP (3) + len u32 + nameoff u32 (into the strings block) + value padded to 4 bytes, FDT_NOP (4),
    FDT_END (9);
  strings block: NUL-terminated property names.
Anything malformed raises InitError saying what and where (PID 1 must never die of a traceback)."""

from __future__ import annotations

import struct

from cloudboot.init.errors import InitError

MAGIC = 0xD00DFEED
HEADER = struct.Struct(">10I")
FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9
#: The version we write, and the oldest version a reader of ours must understand (as dtc writes).
VERSION, LAST_COMP_VERSION = 17, 16
MAX_DEPTH = 64


class Node:
    """One node: its name (unit address included, "" for the root), properties in order, children in order.

    (Plain classes here and in the kexec loaders: dataclasses would pull inspect, ast and more into the
    initramfs and into boot time, about a second under riscv64 TCG.)"""

    __slots__ = ("name", "props", "children")

    def __init__(self, name: str, props: dict[str, bytes] | None = None, children: list[Node] | None = None) -> None:
        self.name = name
        self.props = {} if props is None else props
        self.children = [] if children is None else children

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and (self.name, self.props, self.children) == \
            (other.name, other.props, other.children)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.props!r}, {self.children!r})"

    def child(self, name: str) -> Node | None:
        """The direct child called `name`, or None."""
        for c in self.children:
            if c.name == name:
                return c
        return None

    def ensure_child(self, name: str) -> Node:
        """The direct child called `name`, added (empty) when missing."""
        c = self.child(name)
        if c is None:
            c = Node(name)
            self.children.append(c)
        return c

    def set_u32(self, prop: str, value: int) -> None:
        """Property `prop` = one big-endian 32-bit cell."""
        self.props[prop] = struct.pack(">I", value)

    def set_u64(self, prop: str, value: int) -> None:
        """Property `prop` = two cells (a big-endian 64-bit number)."""
        self.props[prop] = struct.pack(">Q", value)

    def set_str(self, prop: str, value: str) -> None:
        """Property `prop` = a NUL-terminated string."""
        self.props[prop] = value.encode() + b"\0"

    def get_str(self, prop: str) -> str | None:
        """Property `prop` read as a string (up to its first NUL), or None when absent."""
        raw = self.props.get(prop)
        return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")

    def get_int(self, prop: str) -> int | None:
        """Property `prop` read as a big-endian number of 1 or 2 cells, or None when absent or of another size."""
        raw = self.props.get(prop)
        if raw is None or len(raw) not in (4, 8):
            return None
        return int.from_bytes(raw, "big")


class Fdt:
    """A whole device tree: the root node, the memory reservation map and the boot CPU's id."""

    __slots__ = ("root", "reservations", "boot_cpuid_phys")

    def __init__(self, root: Node, reservations: list[tuple[int, int]] | None = None,
                 boot_cpuid_phys: int = 0) -> None:
        self.root = root
        self.reservations = [] if reservations is None else reservations
        self.boot_cpuid_phys = boot_cpuid_phys

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fdt) and (self.root, self.reservations, self.boot_cpuid_phys) == \
            (other.root, other.reservations, other.boot_cpuid_phys)

    def __repr__(self) -> str:
        return f"Fdt({self.root!r}, {self.reservations!r}, {self.boot_cpuid_phys!r})"

    def node(self, path: str) -> Node | None:
        """The node at an absolute path like "/chosen", or None."""
        n: Node | None = self.root
        for part in [p for p in path.split("/") if p]:
            n = n.child(part) if n else None
        return n


def _cstr(buf: bytes, off: int, end: int, what: str) -> tuple[str, int]:
    nul = buf.find(b"\0", off, end)
    if nul < 0:
        raise InitError(f"fdt: {what} at offset {off:#x} is not NUL-terminated inside its block")
    try:
        return buf[off:nul].decode("ascii"), nul + 1
    except UnicodeDecodeError:
        raise InitError(f"fdt: {what} at offset {off:#x} is not ASCII: {buf[off:nul][:32]!r}") from None


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse(blob: bytes) -> Fdt:
    """The tree in `blob` (a DTB); InitError naming the problem for anything malformed."""
    blob = bytes(blob)
    if len(blob) < HEADER.size:
        raise InitError(f"fdt: {len(blob)} bytes is too short for a device tree header ({HEADER.size})")
    (magic, totalsize, off_struct, off_strings, off_rsv, version, last_comp, cpuid, size_strings,
     size_struct) = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise InitError(f"fdt: bad magic {magic:#010x} (want {MAGIC:#010x}); not a device tree blob")
    if totalsize > len(blob) or totalsize < HEADER.size:
        raise InitError(f"fdt: header totalsize {totalsize} but the blob has {len(blob)} bytes")
    if last_comp > VERSION or version < LAST_COMP_VERSION:
        raise InitError(f"fdt: version {version} (last compatible {last_comp}); this reader handles 16..17")
    if version < VERSION:  # v16 has no size_dt_struct: the struct block runs to the strings or the end
        size_struct = (off_strings if off_strings > off_struct else totalsize) - off_struct
    for name, off, size in (("structure block", off_struct, size_struct),
                            ("strings block", off_strings, size_strings)):
        if off < HEADER.size or off + size > totalsize:
            raise InitError(f"fdt: {name} [{off:#x}, +{size:#x}) lies outside the blob ({totalsize} bytes)")
    if off_rsv < HEADER.size or off_rsv % 8 or off_rsv >= totalsize:
        raise InitError(f"fdt: memory reservation map offset {off_rsv:#x} is invalid")
    reservations = []
    pos = off_rsv
    while True:
        if pos + 16 > totalsize:
            raise InitError("fdt: memory reservation map runs past the end of the blob (no terminating entry)")
        addr, size = struct.unpack_from(">QQ", blob, pos)
        pos += 16
        if addr == 0 and size == 0:
            break
        reservations.append((addr, size))
    strings_end = off_strings + size_strings
    end = off_struct + size_struct
    pos = off_struct
    stack: list[Node] = []
    root: Node | None = None
    while True:
        if pos + 4 > end:
            raise InitError(f"fdt: structure block ends at {end:#x} without FDT_END")
        (tok,) = struct.unpack_from(">I", blob, pos)
        at = pos
        pos += 4
        if tok == FDT_BEGIN_NODE:
            name, after = _cstr(blob, pos, end, "node name")
            pos = _align4(after)
            if root is not None and not stack:
                raise InitError(f"fdt: second root node {name!r} at {at:#x}")
            if len(stack) >= MAX_DEPTH:
                raise InitError(f"fdt: nodes nested deeper than {MAX_DEPTH} at {at:#x}")
            node = Node(name)
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif tok == FDT_END_NODE:
            if not stack:
                raise InitError(f"fdt: FDT_END_NODE without an open node at {at:#x}")
            stack.pop()
        elif tok == FDT_PROP:
            if pos + 8 > end:
                raise InitError(f"fdt: property header at {at:#x} runs past the structure block")
            length, nameoff = struct.unpack_from(">II", blob, pos)
            pos += 8
            if pos + length > end:
                raise InitError(f"fdt: property value at {at:#x} ({length} bytes) runs past the structure block")
            if nameoff >= size_strings:
                raise InitError(f"fdt: property name offset {nameoff} at {at:#x} is outside the strings block")
            if not stack:
                raise InitError(f"fdt: property outside any node at {at:#x}")
            pname, _ = _cstr(blob, off_strings + nameoff, strings_end, "property name")
            stack[-1].props[pname] = blob[pos:pos + length]
            pos = _align4(pos + length)
        elif tok == FDT_NOP:
            continue
        elif tok == FDT_END:
            break
        else:
            raise InitError(f"fdt: unknown token {tok:#x} at offset {at:#x}")
    if stack:
        raise InitError(f"fdt: FDT_END with {len(stack)} node(s) still open ({stack[-1].name!r})")
    if root is None:
        raise InitError("fdt: the structure block has no root node")
    return Fdt(root, reservations, cpuid)


def serialize(tree: Fdt) -> bytes:
    """The DTB for `tree` (version 17: header, reservation map, structure block, strings block)."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    out = bytearray()

    def name_off(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strings)
            strings.extend(name.encode("ascii") + b"\0")
        return offsets[name]

    def emit(node: Node, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InitError(f"fdt: nodes nested deeper than {MAX_DEPTH} ({node.name!r})")
        name = node.name.encode("ascii") + b"\0"
        out.extend(struct.pack(">I", FDT_BEGIN_NODE) + name + bytes(_align4(len(name)) - len(name)))
        for pname, value in node.props.items():
            out.extend(struct.pack(">III", FDT_PROP, len(value), name_off(pname)) + value
                       + bytes(_align4(len(value)) - len(value)))
        for c in node.children:
            emit(c, depth + 1)
        out.extend(struct.pack(">I", FDT_END_NODE))

    try:
        emit(tree.root, 0)
    except UnicodeEncodeError as exc:
        raise InitError(f"fdt: a node or property name is not ASCII: {exc}") from None
    out.extend(struct.pack(">I", FDT_END))
    rsv = b"".join(struct.pack(">QQ", a, s) for a, s in tree.reservations) + bytes(16)
    off_rsv = HEADER.size  # 40: already 8-byte aligned
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(out)
    total = off_strings + len(strings)
    header = HEADER.pack(MAGIC, total, off_struct, off_strings, off_rsv, VERSION, LAST_COMP_VERSION,
                         tree.boot_cpuid_phys, len(strings), len(out))
    return header + rsv + bytes(out) + bytes(strings)
