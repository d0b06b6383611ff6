"""Our own newc ("070701") cpio writer: the format the kernel unpacks into its initramfs rootfs.

Deterministic: entries are written in path order (parents before children), inode numbers count up from 1,
owners are 0:0 and every mtime is SOURCE_DATE_EPOCH (0 when unset), so the same tree gives the same bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cloudboot.errors import CloudBootError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_CHUNK = 1 << 20


@dataclass
class Entry:
    """One archive member. `data` is bytes, a Path read at write time, or None (dirs, devices)."""

    path: str
    mode: int
    data: bytes | Path | None = None
    rdev: tuple[int, int] = (0, 0)

    @property
    def size(self) -> int:
        if isinstance(self.data, Path):
            return self.data.stat().st_size
        return len(self.data) if self.data is not None else 0


def _header(ino: int, mode: int, nlink: int, mtime: int, size: int, rdev: tuple[int, int], name: bytes) -> bytes:
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def normalize(path: str) -> str:
    """An archive path: relative, '/'-separated, no '.', '..' or empty components."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise CloudBootError(f"cpio: empty path {path!r}")
    if ".." in parts:
        raise CloudBootError(f"cpio: path {path!r} climbs out of the archive ('..')")
    return "/".join(parts)


class Archive:
    """An in-construction newc archive; add members, then `write()` it.

    Parent directories are created implicitly (mode 0755). Adding a path twice is an error unless both
    are directories (the later mode wins), so an accidental overwrite never goes unnoticed."""

    def __init__(self, mtime: int | None = None) -> None:
        if mtime is None:
            mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
        if mtime < 0 or mtime > 0xFFFFFFFF:
            raise CloudBootError(f"cpio: mtime {mtime} does not fit newc's 32-bit field")
        self.mtime = mtime
        self.entries: dict[str, Entry] = {}

    def _add(self, entry: Entry) -> None:
        entry.path = normalize(entry.path)
        parent = entry.path.rpartition("/")[0]
        if parent:
            self.dir(parent, _implicit=True)
        old = self.entries.get(entry.path)
        if old is not None:
            if stat.S_ISDIR(old.mode) and stat.S_ISDIR(entry.mode):
                old.mode = entry.mode
                return
            raise CloudBootError(f"cpio: {entry.path} added twice")
        self.entries[entry.path] = entry

    def dir(self, path: str, mode: int = 0o755, *, _implicit: bool = False) -> None:
        """A directory (and its parents)."""
        path = normalize(path)
        old = self.entries.get(path)
        if old is not None:
            if not stat.S_ISDIR(old.mode):
                raise CloudBootError(f"cpio: {path} is a file, not a directory")
            if not _implicit:
                old.mode = stat.S_IFDIR | mode
            return
        self._add(Entry(path, stat.S_IFDIR | mode))

    def file(self, path: str, data: bytes | Path, mode: int = 0o644) -> None:
        """A regular file whose content is `data` (bytes, or a file read when the archive is written)."""
        self._add(Entry(path, stat.S_IFREG | (mode & 0o7777), data))

    def symlink(self, path: str, target: str) -> None:
        """A symbolic link to `target` (stored verbatim)."""
        if not target:
            raise CloudBootError(f"cpio: symlink {path} has an empty target")
        self._add(Entry(path, stat.S_IFLNK | 0o777, target.encode()))

    def device(self, path: str, kind: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A character ('c') or block ('b') device node."""
        if kind not in ("c", "b"):
            raise CloudBootError(f"cpio: device kind {kind!r} is not 'c' or 'b'")
        fmt = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        self._add(Entry(path, fmt | mode, None, (major, minor)))

    def tree(self, root: Path, prefix: str = "") -> None:
        """Everything under directory `root` (files, dirs, symlinks), placed under `prefix` in the archive.

        Modes come from the files' permission bits; owners and times never do."""
        root = Path(root)
        if not root.is_dir():
            raise CloudBootError(f"cpio: {root} is not a directory")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            rel = base.relative_to(root).as_posix()
            where = "/".join(p for p in (prefix, "" if rel == "." else rel) if p)
            if where:
                self.dir(where, base.stat().st_mode & 0o7777)
            for name in sorted(dirnames + filenames):
                p = base / name
                dest = f"{where}/{name}" if where else name
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(dest, os.readlink(p))
                elif stat.S_ISREG(st.st_mode):
                    self.file(dest, p, st.st_mode & 0o7777)
                elif not stat.S_ISDIR(st.st_mode):
                    raise CloudBootError(f"cpio: {p} is neither a file, a directory nor a symlink")

    def members(self) -> Iterator[Entry]:
        """Entries in archive order: sorted by path components, so a parent precedes its children."""
        for path in sorted(self.entries, key=lambda p: p.split("/")):
            yield self.entries[path]

    def write(self, out: BinaryIO) -> int:
        """Write the archive (with its trailer) to a binary stream; return the byte count."""
        total = 0
        for ino, e in enumerate(self.members(), start=1):
            name = e.path.encode()
            size = e.size
            nlink = 2 if stat.S_ISDIR(e.mode) else 1
            head = _header(ino, e.mode, nlink, self.mtime, size, e.rdev, name) + name + b"\0"
            head += _pad(len(head))
            out.write(head)
            total += len(head)
            written = 0
            if isinstance(e.data, Path):
                with open(e.data, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
            elif e.data is not None:
                out.write(e.data)
                written = len(e.data)
            if written != size:
                raise CloudBootError(f"cpio: {e.path} changed size while being archived ({size} -> {written})")
            out.write(_pad(written))
            total += written + len(_pad(written))
        name = TRAILER.encode()
        tail = _header(0, 0, 1, 0, 0, (0, 0), name) + name + b"\0"
        tail += _pad(len(tail))
        out.write(tail)
        return total + len(tail)

    def to_bytes(self) -> bytes:
        """The whole archive in memory (small archives and tests)."""
        import io

        buf = io.BytesIO()
        self.write(buf)
        return buf.getvalue()


def read(data: bytes) -> list[tuple[str, int, bytes]]:
    """Parse a newc archive into (path, mode, data) up to the trailer; for checks and `inspect`."""
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while True:
        if data[pos:pos + 6] != MAGIC:
            raise CloudBootError(f"cpio: no newc header at offset {pos}")
        try:
            f = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise CloudBootError(f"cpio: bad hex in the header at offset {pos}") from None
        mode, size, namesize = f[1], f[6], f[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += -pos % 4
        if name == TRAILER:
            return out
        body = data[pos:pos + size]
        if len(body) != size:
            raise CloudBootError(f"cpio: {name}: truncated ({len(body)} of {size} bytes)")
        out.append((name, mode, body))
        pos += size
        pos += -pos % 4
