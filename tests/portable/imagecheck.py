"""The test images' self-check: every tree a mkfs wrote is read back by an independent reader before a test
relies on it, so a tool that writes data wrong fails the fixture build (naming the tool, its version and the
first wrong files) instead of passing for a bug in our reader. mkfs.xfs 6.13's protofile copy did this: the
data of a sparse file that does not start on a 64 KiB boundary landed in the wrong place of a 64 KiB-block image.

Readers, none of them the code that wrote the image:
- XFS: `xfs_db` resolves each path and prints the inode's block map; the data is read from the image there.
- ext2/3/4: `debugfs stat` prints each file's block map (extents or indirect blocks), the data is read from
  the image there; inline-data files come from `debugfs dump` (cut to their size).
- btrfs: `btrfs restore` copies the files out (holes stay holes); its copies are compared.
Each checks, for every path of the tree's manifest, the kind of entry, and for regular files the size and the
SHA-256 of the bytes (holes and unwritten extents read as zeros). Symlink targets and hard links are left to
the tests. `<image>.origin` then says which tool made the image and what checked it.

CPython only (host side); used by tests/portable/images.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: path -> (kind "f"/"d"/"l", size, sha256 hex of a regular file's bytes, else "")
Listing = dict[str, tuple[str, int, str]]
#: (offset in the file, offset in the image, length) of each piece of a file's data
Runs = list[tuple[int, int, int]]
_ZERO = bytes(1 << 20)
_KIND = {0o100000: "f", 0o040000: "d", 0o120000: "l"}


class ImageCheckError(RuntimeError):
    """An image does not hold what its recipe put in: the tool that made it wrote something else."""


def manifest(path: Path, top: str = "/") -> Listing:
    """The manifest tests/portable/images.py wrote for a host tree, with paths as they sit below `top`."""
    prefix = "" if top == "/" else top.rstrip("/")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, p, size, digest, _ = line.split("\t")
        out[prefix + p] = (kind, int(size), digest if kind == "f" else "")
    return out


def runs_digest(src: BinaryIO, size: int, runs: Runs) -> str:
    """SHA-256 of a `size`-byte file whose data lies in `src` at `runs`; zeros everywhere else."""
    h = hashlib.sha256()
    pos = 0
    for off, at, length in sorted(runs):
        length = min(length, size - off)
        if length <= 0:
            continue
        if off < pos:
            raise ImageCheckError(f"overlapping data runs at file offset {off}")
        _zeros(h, off - pos)
        src.seek(at)
        left = length
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise ImageCheckError(f"data run at image offset {at} ends past the image")
            h.update(chunk)
            left -= len(chunk)
        pos = off + length
    _zeros(h, size - pos)
    return h.hexdigest()


def _zeros(h, n: int) -> None:
    while n > 0:
        h.update(_ZERO[:min(n, len(_ZERO))])
        n -= len(_ZERO)


def data_runs(f: BinaryIO, size: int) -> list[tuple[int, int]]:
    """(start, end) of each run of data in a local file (SEEK_DATA/SEEK_HOLE; the rest are holes)."""
    out = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        pos = os.lseek(f.fileno(), start, os.SEEK_HOLE)
        out.append((start, pos))
    return out


def file_digest(path: Path) -> str:
    """SHA-256 of a local file, seeking over its holes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        return runs_digest(f, size, [(start, start, end - start) for start, end in data_runs(f, size)])


def _sh(cmd: list, env: dict | None = None, input: bytes | None = None, ok: tuple = (0,)) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, env=env, input=input)
    if proc.returncode not in ok:
        raise ImageCheckError(f"{' '.join(map(str, cmd[:3]))} failed ({proc.returncode}): "
                              f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode(errors="replace")


# ------------------------------------------------------------------------------------------------ XFS ----
_BMAP = re.compile(r"^data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d)$")


def read_xfs(image: Path, paths: list[str]) -> Listing:
    """Kind, size and bytes of each path through xfs_db: `path`, then the inode's mode, size and block map
    (`bmap`: file block, AG/AG block, count, unwritten flag); a path xfs_db cannot resolve is left out."""
    sb = dict(re.findall(r"^(\w+) = (\d+)$",
                         _sh(["xfs_db", "-r", "-c", "sb 0", "-c", "print rootino blocksize agblocks", image]), re.M))
    root, bsize, agblocks = int(sb["rootino"]), int(sb["blocksize"]), int(sb["agblocks"])
    out: Listing = {}
    with open(image, "rb") as img:
        for i in range(0, len(paths), 400):  # a bounded command line per xfs_db run
            batch = paths[i:i + 400]
            cmd = ["xfs_db", "-r"]
            for p in batch:  # back at the root first: a failed `path` leaves the current inode unchanged
                cmd += ["-c", f"inode {root}", "-c", f"path {p}", "-c", "inode", "-c", "print core.mode core.size",
                        "-c", "bmap"]
            # status 1 when a path did not resolve: that answer shows as the root inode
            records = _sh([*cmd, image], ok=(0, 1)).split("current inode number is ")[1:]
            if len(records) != len(batch):
                raise ImageCheckError(f"xfs_db gave {len(records)} answers for {len(batch)} paths")
            for p, rec in zip(batch, records, strict=True):
                lines = rec.splitlines()
                if int(lines[0]) == root:
                    continue
                fields = dict(re.findall(r"^core\.(mode|size) = (\d+)$", rec, re.M))
                kind = _KIND.get(int(fields["mode"], 8) & 0o170000, "?")
                size = int(fields["size"])
                digest = ""
                if kind == "f":
                    runs = []
                    for m in filter(None, (_BMAP.match(line) for line in lines)):
                        off, ag, agb, count, unwritten = map(int, m.groups())
                        if not unwritten:
                            runs.append((off * bsize, (ag * agblocks + agb) * bsize, count * bsize))
                    digest = runs_digest(img, size, runs)
                out[p] = (kind, size, digest)
    return out


# ------------------------------------------------------------------------------------------- ext2/3/4 ----
_EXT_TYPE = {"regular": "f", "directory": "d", "symlink": "l"}
_EXT_RUN = re.compile(r"\((\d+)(?:-(\d+))?\)(\[u\])?:(\d+)(?:-\d+)?")


def read_ext(image: Path, paths: list[str]) -> Listing:
    """Kind, size and bytes of each path through debugfs: `stat` gives the type, size and block map (logical
    range: physical range, extents and indirect blocks alike; `[u]` marks uninitialised extents), inline-data
    files are `dump`ed; a path debugfs cannot resolve is left out."""
    env = {**os.environ, "DEBUGFS_PAGER": "__none__"}
    bsize = int(re.search(r"^Block size:\s+(\d+)", _sh(["dumpe2fs", "-h", image], env), re.M).group(1))
    script = "".join(f'stat "{p}"\n' for p in paths).encode()
    text = _sh(["debugfs", "-f", "-", image], env, script)
    records = re.split(r"^debugfs: stat .*$", text, flags=re.M)[1:]
    if len(records) != len(paths):
        raise ImageCheckError(f"debugfs gave {len(records)} answers for {len(paths)} paths")
    out: Listing = {}
    inline = []
    with open(image, "rb") as img:
        for p, rec in zip(paths, records, strict=True):
            kind = re.search(r"Type: (\w+)", rec)
            if not kind:
                continue
            size = int(re.search(r"\bSize: (\d+)", rec).group(1))
            k = _EXT_TYPE.get(kind.group(1), "?")
            digest = ""
            if k == "f" and "Size of inline data" in rec:
                inline.append(p)
            elif k == "f":
                blocks = rec.split("EXTENTS:" if "EXTENTS:" in rec else "BLOCKS:", 1)[-1]
                runs = [(int(lo) * bsize, int(phys) * bsize, (int(hi or lo) - int(lo) + 1) * bsize)
                        for lo, hi, uninit, phys in _EXT_RUN.findall(blocks) if not uninit]
                digest = runs_digest(img, size, runs)
            out[p] = (k, size, digest)
    work = image.parent / (image.name + ".check")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        for i, p in enumerate(inline):
            _sh(["debugfs", "-R", f'dump "{p}" {work / str(i)}', image], env)
            size = out[p][1]
            with open(work / str(i), "rb") as f:  # debugfs 1.47 dumps the whole inline area: keep i_size bytes
                out[p] = ("f", size, runs_digest(f, size, [(0, 0, size)]))
    finally:
        shutil.rmtree(work)
    return out


# ---------------------------------------------------------------------------------------------- btrfs ----
def btrfs_reader(tool: list[str], env: dict[str, str]) -> Callable[[Path, list[str]], Listing]:
    """A reader through `btrfs restore` (snapshots too), with the btrfs-progs the images were made with."""

    def read(image: Path, paths: list[str]) -> Listing:
        work = image.parent / (image.name + ".check")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            _sh([*tool, "restore", "-s", "-S", image, work], env)
            out: Listing = {}
            for p in paths:
                local = work / p.lstrip("/")
                if local.is_symlink():
                    out[p] = ("l", len(os.fsencode(os.readlink(local))), "")
                elif local.is_dir():
                    out[p] = ("d", 0, "")
                elif local.is_file():
                    out[p] = ("f", local.stat().st_size, file_digest(local))
            return out
        finally:
            shutil.rmtree(work)

    return read


# ------------------------------------------------------------------------------------------------------------
def check(image: Path, made_by: str, reader: Callable[[Path, list[str]], Listing], reader_name: str,
          trees: list[tuple[Path, str]], known: dict[str, str] | None = None) -> None:
    """Read every entry of each (manifest, top) back from `image`; ImageCheckError listing the first
    differences, else `<image>.origin` records the maker and the check. `known` maps paths the maker is known
    to write wrong to the reason (they are skipped and named in the record)."""
    known = known or {}
    want: Listing = {}
    for path, top in trees:
        want.update(manifest(path, top))
    paths = sorted(p for p in want if p not in known)
    got = reader(image, paths)
    problems = []
    for p in paths:
        kind, size, digest = want[p]
        if p not in got:
            problems.append(f"{p}: missing")
        elif got[p][0] != kind:
            problems.append(f"{p}: a {got[p][0]!r} entry, want {kind!r}")
        elif kind == "f" and got[p][1] != size:
            problems.append(f"{p}: {got[p][1]} bytes, want {size}")
        elif kind == "f" and got[p][2] != digest:
            problems.append(f"{p}: other bytes than the source file")
    if problems:
        raise ImageCheckError(f"{image.name}, made by {made_by}, read back by {reader_name}: "
                              f"{len(problems)} entries differ from the source tree: {'; '.join(problems[:8])}")
    files = sum(1 for p in paths if want[p][0] == "f")
    lines = [f"made by: {made_by}",
             f"checked by: {reader_name}: {len(paths)} entries, {files} files' bytes "
             f"({', '.join(f'{path.stem} at {top}' for path, top in trees)})"]
    lines += [f"not checked: {p}: {why}" for p, why in sorted(known.items())]
    image.with_name(image.name + ".origin").write_text("\n".join(lines) + "\n", encoding="utf-8")
