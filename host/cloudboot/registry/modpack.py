"""`push modpack`: a gzip'd newc cpio of /lib/modules/<rel> rooted at lib/modules/<rel>/ (REFERENCE §3.1/3.2).

Reproducible: entries in sorted order, mtimes from SOURCE_DATE_EPOCH (default 0), uid/gid 0, gzip mtime 0.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.image.output import atomic_output


def _header(ino: int, mode: int, size: int, name: bytes, mtime: int, nlink: int = 1) -> bytes:
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    data = head + name + b"\0"
    return data + b"\0" * (-len(data) % 4)


class _Cpio:
    def __init__(self, out, mtime: int) -> None:
        self.out, self.mtime, self.ino = out, mtime, 0

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        self.ino += 1
        nlink = 2 if stat.S_ISDIR(mode) else 1
        self.out.write(_header(self.ino, mode, len(data), name.encode(), self.mtime, nlink))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def trailer(self) -> None:
        self.out.write(_header(0, 0, 0, b"TRAILER!!!", 0))


def build_modpack(src: Path, out: Path) -> int:
    """Pack `src` (a /lib/modules/<rel> tree) into `out`; returns the number of entries."""
    if not src.is_dir():
        raise CloudBootError(f"push modpack: {src} is not a directory")
    rel = src.resolve().name
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    count = 0
    with atomic_output(out) as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        cpio = _Cpio(gz, mtime)
        cpio.add("lib", stat.S_IFDIR | 0o755)
        cpio.add("lib/modules", stat.S_IFDIR | 0o755)
        cpio.add(f"lib/modules/{rel}", stat.S_IFDIR | 0o755)
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(dirnames + filenames):
                p = base / name
                arc = f"lib/modules/{rel}/{p.relative_to(src).as_posix()}"
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    cpio.add(arc, stat.S_IFLNK | 0o777, os.readlink(p).encode())
                elif stat.S_ISDIR(st.st_mode):
                    cpio.add(arc, stat.S_IFDIR | (st.st_mode & 0o7777))
                elif stat.S_ISREG(st.st_mode):
                    cpio.add(arc, stat.S_IFREG | (st.st_mode & 0o7777), p.read_bytes())
                else:
                    continue
                count += 1
        cpio.trailer()
    return count + 3
