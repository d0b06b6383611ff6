"""What our kexec_load loaders (kexec_arm64, kexec_loongarch, kexec_riscv64) share: free RAM from /proc/iomem,
first-fit placement, the /chosen rewrite for device-tree machines, and the system call with its error hints.

The classic kexec_load(entry, nr_segments, segments, flags) only copies segments to physical addresses at
reboot and jumps to `entry`; where things go and what the next kernel is told is the loader's business."""

from __future__ import annotations

import errno
import os

from cloudboot.init import fdt, linux
from cloudboot.init.errors import InitError, KexecLoadError
from cloudboot.init.log import log

KEXEC_SEGMENT_MAX = 16
DTB_MAX = 2 << 20  # what arm64 and riscv64 kernels map of the device tree early
#: Properties of the running kernel's /chosen that must not reach the next kernel.
CHOSEN_DROP = ("linux,elfcorehdr", "linux,usable-memory-range", "linux,ima-kexec-buffer",
               "linux,tpm-kexec-buffer")
RNG_SEED_SIZE = 128  # as the kernel's own kexec_file_load (arch/arm64/kernel/machine_kexec_file.c)


HEX = frozenset("0123456789abcdefABCDEF")


def _iomem(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """([start, end) of each top-level "System RAM" range, [start, end) of everything nested) in /proc/iomem text
    (lines `<indent><hex>-<hex> : <name>`; others are skipped). Read without re: its import and compile took
    64 ms at kexec time under TCG."""
    ram: list[tuple[int, int]] = []
    nested: list[tuple[int, int]] = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        span, sep, name = body.partition(" : ")
        first, dash, last = span.partition("-")
        if not (sep and dash and first and last and HEX.issuperset(first) and HEX.issuperset(last)):
            continue
        start, end = int(first, 16), int(last, 16) + 1
        if len(body) < len(line):
            nested.append((start, end))
        elif name.strip() == "System RAM":
            ram.append((start, end))
    return ram, nested


def system_ram(text: str) -> list[tuple[int, int]]:
    """[start, end) of the top-level "System RAM" ranges in /proc/iomem text, what they hold included."""
    return _iomem(text)[0]


def parse_iomem(text: str) -> list[tuple[int, int]]:
    """Free RAM from /proc/iomem text: [start, end) ranges of top-level "System RAM" minus anything nested
    inside it, sorted. InitError if there is none (or all addresses read 0: not root)."""
    ram, holes = _iomem(text)
    if not ram or all(e <= 1 for _, e in ram):
        raise InitError("kexec: no System RAM in /proc/iomem (or its addresses are hidden: not root?)")
    free: list[tuple[int, int]] = []
    for start, end in sorted(ram):
        pieces = [(start, end)]
        for hs, he in holes:
            nxt = []
            for ps, pe in pieces:
                if he <= ps or hs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < hs:
                    nxt.append((ps, hs))
                if he < pe:
                    nxt.append((he, pe))
            pieces = nxt
        free.extend(p for p in pieces if p[1] > p[0])
    return sorted(free)


def up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


class Segment:
    """One kexec segment: `name`, what to copy (`data`), where (`mem`, physical) and how much memory it covers
    (`memsz`, a page multiple). (A plain class: dataclasses, or namedtuple's collections, cost riscv64's loader
    tens of ms of imports under TCG.)"""

    __slots__ = ("name", "data", "mem", "memsz")

    def __init__(self, name: str, data: bytes | memoryview, mem: int, memsz: int) -> None:
        self.name, self.data, self.mem, self.memsz = name, data, mem, memsz

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {len(self.data)} bytes, mem={self.mem:#x}, memsz={self.memsz:#x})"


class Allocator:
    """First fit in the free RAM ranges, never below `floor` and never overlapping what it gave before."""

    def __init__(self, free: list[tuple[int, int]], page: int) -> None:
        self.free = sorted(free)
        self.page = page
        self.taken: list[tuple[int, int]] = []

    def take(self, what: str, size: int, align: int, floor: int = 0) -> tuple[int, int]:
        """(address, page-rounded size) of the lowest fit; InitError when nothing fits."""
        memsz = up(max(size, 1), self.page)
        align = max(align, self.page)
        for start, end in self.free:
            addr = up(max(start, floor), align)
            while addr + memsz <= end:
                clash = [(s, e) for s, e in self.taken if s < addr + memsz and addr < e]
                if not clash:
                    self.taken.append((addr, addr + memsz))
                    return addr, memsz
                addr = up(max(e for _, e in clash), align)
        ranges = ", ".join(f"{s:#x}-{e - 1:#x}" for s, e in self.free) or "none"
        raise InitError(f"kexec: no room for the {what} ({memsz:#x} bytes, {align:#x} aligned, above {floor:#x}) "
                        f"in free System RAM: {ranges}")


def edit_chosen(tree: fdt.Fdt, cmdline: str, initrd: tuple[int, int] | None,
                rand: bytes | None = None) -> None:
    """Rewrite /chosen of `tree` for the next kernel: bootargs (removed when empty: the kernel's built-in
    command line applies), linux,initrd-start/end = [start, end) or removed, crash/IMA leftovers removed,
    kaslr-seed and rng-seed fresh from `rand` (8 + RNG_SEED_SIZE bytes; default linux.fresh_random, and without
    it both removed: the running tree's are spent)."""
    chosen = tree.root.ensure_child("chosen")
    if cmdline:
        chosen.set_str("bootargs", cmdline)
    else:
        chosen.props.pop("bootargs", None)
    if initrd:
        chosen.set_u64("linux,initrd-start", initrd[0])
        chosen.set_u64("linux,initrd-end", initrd[1])
    else:
        chosen.props.pop("linux,initrd-start", None)
        chosen.props.pop("linux,initrd-end", None)
    for p in CHOSEN_DROP:
        chosen.props.pop(p, None)
    rand = rand if rand is not None else linux.fresh_random(8 + RNG_SEED_SIZE)
    if rand is None:
        chosen.props.pop("kaslr-seed", None)
        chosen.props.pop("rng-seed", None)
        return
    if len(rand) != 8 + RNG_SEED_SIZE:
        raise InitError(f"edit_chosen: need {8 + RNG_SEED_SIZE} random bytes, got {len(rand)}")
    chosen.props["kaslr-seed"] = rand[:8]
    chosen.props["rng-seed"] = rand[8:]


def initrd_and_dtb(alloc: Allocator, initrd: bytes | memoryview | None, cmdline: str, dtb: bytes, floor: int,
                   rand: bytes | None = None) -> list[Segment]:
    """For device-tree machines: the initrd (if any) page aligned at or above `floor`, then the running tree
    `dtb` with /chosen rewritten for it (edit_chosen) above that: their segments, in that order."""
    segments = []
    initrd_range = None
    if initrd is not None:
        addr, memsz = alloc.take("initrd", len(initrd), alloc.page, floor)
        segments.append(Segment("initrd", initrd, addr, memsz))
        initrd_range, floor = (addr, addr + len(initrd)), addr + memsz
    tree = fdt.parse(dtb)
    edit_chosen(tree, cmdline, initrd_range, rand)
    blob = fdt.serialize(tree)
    if len(blob) > DTB_MAX:
        raise InitError(f"kexec: the device tree is {len(blob)} bytes; at most {DTB_MAX} are passed on")
    addr, memsz = alloc.take("device tree", len(blob), alloc.page, floor)
    return [*segments, Segment("dtb", blob, addr, memsz)]


def read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InitError(f"kexec: cannot read {what} {path}: {exc.strerror}") from None


def map_file(path: str, what: str) -> memoryview | bytes:
    """The file at `path` (a kernel, an initrd) mapped copy-on-write, never written, rather than read: kexec_load
    copies segments from it in place, so a 37 MB kernel is copied once, not twice. Measured under TCG (kexec-load
    phase, plan mode): riscv64 0.19-0.23 s against 0.34-0.38 s read, loongarch64 0.65-0.77 against 0.70-0.90;
    x86_64 went the other way (0.75 against 0.34: its loader reads). An empty file is b"" (nothing to map)."""
    import mmap

    try:
        with open(path, "rb") as f:
            if not os.fstat(f.fileno()).st_size:
                return b""
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
    except OSError as exc:
        raise InitError(f"kexec: cannot read {what} {path}: {exc.strerror}") from None


def stage(entry: int, segments: list[Segment], flags: int) -> None:
    """kexec_load the segments (logged one per line) entered at `entry`; KexecLoadError with the likely reason."""
    if len(segments) > KEXEC_SEGMENT_MAX:
        raise InitError(f"kexec: {len(segments)} segments (the kernel takes {KEXEC_SEGMENT_MAX})")
    for s in segments:
        log(f"kexec: segment {s.name:9} {s.mem:#014x}+{s.memsz:#x} ({len(s.data)} bytes)")
    try:
        linux.kexec_load(entry, [(s.data, s.mem, s.memsz) for s in segments], flags)
    except OSError as exc:
        raise KexecLoadError(
            f"kexec_load(entry={entry:#x}, {len(segments)} segments) failed: {exc.strerror}"
            + {errno.EPERM: " (not permitted: lockdown, kexec_load_disabled or no CAP_SYS_BOOT)",
               errno.ENOSYS: " (this kernel has no kexec_load: CONFIG_KEXEC unset)",
               errno.EBUSY: " (another kexec image is loaded, or CPUs are stuck in the kernel)",
               errno.EINVAL: " (the kernel refused the segment layout, the arch flag, or found no "
                             "device tree or command line segment)",
               errno.EADDRNOTAVAIL: " (a segment lies outside usable RAM)",
               errno.ENOMEM: " (not enough memory)"}.get(exc.errno or 0, ""), exc.errno or 0) from None
