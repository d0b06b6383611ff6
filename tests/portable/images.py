"""Test data for the portable disk core: filesystem images made by the real tools (mkfs.ext4 -d, mkfs.xfs -p,
mkfs.btrfs --rootdir, btrfs-convert, sgdisk/sfdisk, debugfs, xfs_db, cryptsetup, qemu-img, mkswap), no root,
no mounts; what mkfs cannot fill (multi-device btrfs, an XFS B+tree data fork) is filled by Linux in one VM (vmimages).

Each image has a recipe (a function and its arguments); it is rebuilt only when its recipe, its source tree
or the tool versions change (a key stored next to it), and images build in parallel. Every source tree also
gets a manifest (`<tree>.manifest`: kind, path, size, sha256 or link target, link group) so portable tests
compare listings and bytes on MicroPython, which cannot walk the host tree itself.

No image is trusted because a tool exited 0: each recipe reads its image back with an independent reader
(tests/portable/imagecheck.py: xfs_db, debugfs, btrfs restore; Linux itself for what it wrote) against the
tree's manifest, and `<image>.origin` records which tool version made it and what checked it. What a tool is
known to write wrong is listed in KNOWN_DEFECTS, with the reason.

CPython only (host side); run by tests/conftest.py once per session:
`python -m tests.portable.images` builds everything and prints the directory.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cloudboot.harness import zfsfuse
from cloudboot.harness.xfsproto import protofile
from cloudboot.harness.zfsfuse import make_pool
from cloudboot.paths import cache_dir
from tests.portable import imagecheck

UUID = "01234567-89ab-cdef-0123-456789abcdef"
MiB = 1 << 20
BIG_SIZE = 256 * MiB  # the ">= 256 MiB" file
HUGE_END = 5_000_000_000  # a sparse file ending past 4 GiB


def _sh(*cmd, cwd=None, env=None, input=None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, input=input, capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                           f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace")


def _blank(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# ---------------------------------------------------------------- trees ----
def tree_basic(root: Path) -> None:
    """A small Debian-like root: kernels, initrd, fast and slow symlinks, 400 files, sparse, hard links,
    empty and tiny files, non-ASCII names, a deep path."""
    (root / "boot").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"MZ" + bytes(i * 7 % 256 for i in range(3_000_000)))
    (root / "boot/vmlinuz-6.12.117-amd64").write_bytes(b"MZ" + bytes(i * 11 % 256 for i in range(1_500_000)))
    (root / "boot/initrd.img-6.12.117-amd64").write_bytes(b"070701" + bytes(100_000))
    (root / "vmlinuz").symlink_to("boot/vmlinuz-6.12.117-amd64")
    (root / "etc/long-link").symlink_to("/boot/" + "x" * 80)  # a slow symlink (target > 60 bytes), dangling
    (root / "etc/hostname").write_text("cloud-boot\n")
    for i in range(400):  # enough entries for an htree directory
        (root / "etc" / f"file-{i:04d}").write_text(f"{i}\n")
    with open(root / "etc/sparse", "wb") as f:
        f.seek(5_000_000)
        f.write(b"end")
    with open(root / "etc/holes", "wb") as f:  # data, hole, data, hole, data
        for i in range(3):
            f.seek(i * 300_000)
            f.write(bytes([65 + i]) * 5000)
    (root / "etc/empty").write_bytes(b"")
    (root / "etc/tiny").write_bytes(b"x")
    os.link(root / "etc/hostname", root / "etc/hostname.hardlink")
    (root / "gr\u00fc\u00dfe").mkdir()
    (root / "gr\u00fc\u00dfe/\u65e5\u672c\u8a9e.txt").write_text("\u3053\u3093\u306b\u3061\u306f\n")
    (root / "gr\u00fc\u00dfe/\U0001f600").write_text("emoji\n")
    deep = root / "deep"
    for i in range(24):
        deep = deep / f"d{i:02d}"
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("bottom\n")
    (root / "etc/to-deep").symlink_to("../deep/" + "/".join(f"d{i:02d}" for i in range(24)) + "/leaf")
    (root / "etc/loop-a").symlink_to("loop-b")
    (root / "etc/loop-b").symlink_to("loop-a")


def tree_many(root: Path) -> None:
    """A directory of 10,000 entries (htree / XFS node / many btrfs leaves) next to a small file."""
    (root / "many").mkdir(parents=True)
    for i in range(10_000):
        (root / "many" / f"entry-{i:05d}").write_text(f"{i}\n")
    (root / "hello").write_text("hello\n")


def big_block(i: int) -> bytes:
    """Block i (4 KiB) of the big file: its index then a pattern, so a misplaced block is caught."""
    return struct.pack("<Q", i) + bytes(((i * 31 + j * 7) & 0xFF) for j in range(8)) * 511


def tree_big(root: Path) -> None:
    """A 256 MiB file and a 5 GB sparse one."""
    root.mkdir(parents=True)
    pool = [big_block(i) for i in range(64)]
    with open(root / "big", "wb") as f:
        for i in range(BIG_SIZE // 4096):
            f.write(struct.pack("<Q", i) + pool[i % 64][8:])
    with open(root / "huge", "wb") as f:
        f.seek(HUGE_END)
        f.write(b"end")
    (root / "note").write_text("big and huge\n")


def tree_frag(root: Path, blocks: int = 2000) -> None:
    """One file of 2,000 4 KiB blocks with a hole after each (and at the end): 2,000 extents, far more than an XFS
    inode holds, so its data fork is a B+tree. The size is set first so that no speculative preallocation past
    EOF fills the holes."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "frag", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, blocks * 8192)
        for i in range(blocks):
            os.pwrite(fd, big_block(i), i * 8192)
    finally:
        os.close(fd)


TREES = {"tree": tree_basic, "many": tree_many, "big": tree_big, "frag": tree_frag}

#: The names tree (names_fs): bytes that are not UTF-8 in names and in a link target; kept out of TREES, whose
#: sources every other image's key hashes. Portable tests expect exactly these.
NAMES = {b"plain": b"plain\n", b"bad\xff": b"bad\n", b"caf\xc3\xa9\xe9": b"mixed\n", b"dir\xfe/f\x80": b"inner\n"}
NAMES_LINK = (b"dir\xfe/up\xfd", b"../bad\xff")


def tree_names(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    top = os.fsencode(root)
    for rel, data in NAMES.items():
        path = os.path.join(top, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    os.symlink(NAMES_LINK[1], os.path.join(top, NAMES_LINK[0]))


def _bytes_tree(top: bytes) -> dict[bytes, tuple[str, bytes]]:
    """relative path -> ("f", bytes) / ("d", b"") / ("l", target) of everything below `top`, names as bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            if rel == b"lost+found":
                continue
            if os.path.islink(path):
                out[rel] = ("l", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("d", b"")
            else:
                with open(path, "rb") as f:
                    out[rel] = ("f", f.read())
    return out


def _xfs_names(image: Path, directory: bytes) -> set[bytes]:
    """The names xfs_db lists in one directory (raw bytes), without . and .."""
    proc = subprocess.run([b"xfs_db", b"-r", b"-c", b"path " + directory, b"-c", b"ls", os.fsencode(image)],
                          capture_output=True, check=True)
    names = {line.split(None, 5)[5].rsplit(b" (", 1)[0] for line in proc.stdout.splitlines()
             if len(line.split(None, 5)) == 6}
    return names - {b".", b".."}


def _zdb_paths(image: Path, pool: str, work: Path) -> set[bytes]:
    """The paths (raw bytes, without the leading /) zdb -dddd gives the objects of the pool's root dataset."""
    with zfsfuse.daemon(work):  # zfs-fuse's zdb asks its daemon
        out = subprocess.run(["zdb", "-e", "-p", str(image.parent), "-dddd", pool], capture_output=True,
                             check=True).stdout
    return {line.split(b"\t")[-1][1:] for line in out.splitlines() if line.strip().startswith(b"path\t/")} - {b""}


def names_fs(out: Path, trees: dict[str, Path], fstype: str) -> None:
    """The names tree on `fstype`, read back by the tool's own reader: debugfs rdump and btrfs restore copy the
    files out (names, bytes, link targets compared); xfs_db lists each directory's names, zdb every object's
    path (zfs-fuse copies the tree in through its FUSE mount)."""
    src = out.parent / (out.stem + ".tree")
    tree_names(src)
    want = _bytes_tree(os.fsencode(src))
    work = out.parent / (out.stem + ".check")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if fstype == "xfs":
        _blank(out, 300 * MiB)
        top = os.fsencode(src)
        proto = [b"/dev/null", b"0 0", b"d--755 0 0", b" bad\xff ---644 0 0 " + os.path.join(top, b"bad\xff"),
                 b" caf\xc3\xa9\xe9 ---644 0 0 " + os.path.join(top, b"caf\xc3\xa9\xe9"),
                 b" dir\xfe d--755 0 0", b"  f\x80 ---644 0 0 " + os.path.join(top, b"dir\xfe/f\x80"),
                 b"  up\xfd l--777 0 0 " + NAMES_LINK[1], b" $", b" plain ---644 0 0 " + os.path.join(top, b"plain"),
                 b"$", b""]
        (work / "proto").write_bytes(b"\n".join(proto))  # harness.xfsproto writes UTF-8 only
        _sh("mkfs.xfs", "-q", "-f", "-p", work / "proto", out)
        got = _xfs_names(out, b"/") | {b"dir\xfe/" + n for n in _xfs_names(out, b"/dir\xfe")}
        made_by, checker, ok = version("mkfs.xfs"), version("xfs_db") + " ls", got == set(want)
    elif fstype == "zfs":
        _blank(out, 64 * MiB)
        make_pool("cbzfsnames", [out], [("", src, {}, None)], work / "zfs")
        got = _zdb_paths(out, "cbzfsnames", work)
        made_by, checker, ok = f"zfs-fuse {_zfs_version()}", "zdb -dddd paths", got == set(want)
    else:
        _blank(out, (200 if fstype == "btrfs" else 16) * MiB)
        if fstype == "btrfs":
            _sh(*btrfs_tool("mkfs.btrfs"), "-q", "-f", "--rootdir", src, out, env=btrfs_env())
            _sh(*btrfs_tool("btrfs"), "restore", "-S", out, work, env=btrfs_env())
            made_by, checker = version("mkfs.btrfs"), f"btrfs restore ({version('btrfs')})"
        else:
            _sh("mkfs.ext4", "-q", "-F", "-d", src, out)
            _sh("debugfs", "-R", f"rdump / {work}", out)
            made_by, checker = version("mke2fs"), f"debugfs rdump ({version('debugfs')})"
        got = _bytes_tree(os.fsencode(work))
        ok = got == want
    shutil.rmtree(work)
    shutil.rmtree(src)
    if not ok:
        raise imagecheck.ImageCheckError(f"{out.name}: {checker} read back {sorted(got)}, want {sorted(want)}")
    out.with_name(out.name + ".origin").write_text(f"made by: {made_by}\nchecked by: {checker}: {len(want)} "
                                                   "entries, names as bytes\n", encoding="utf-8")


def manifest_lines(root: Path) -> list:
    """kind \\t path \\t size \\t sha256|target \\t link group, one line per entry under root (sorted).
    Also run by Linux in the fixture VM (vmimages) to read back what it wrote."""
    lines = []
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = "/" + os.path.relpath(dirpath, root) if dirpath != str(root) else "/"
        rel = rel.replace("/.", "/") if rel == "/." else rel
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            path = (rel.rstrip("/") + "/" + name)
            st = p.lstat()
            if p.is_symlink():
                lines.append(f"l\t{path}\t{st.st_size}\t{os.readlink(p)}\t")
            elif p.is_dir():
                lines.append(f"d\t{path}\t0\t\t")
            else:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                group = inodes.setdefault(st.st_ino, path) if st.st_nlink > 1 else ""
                lines.append(f"f\t{path}\t{st.st_size}\t{h.hexdigest()}\t{group}")
    return sorted(lines)


def write_manifest(root: Path, out: Path) -> None:
    out.write_text("\n".join(manifest_lines(root)) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- tools ----
_VERSIONS: dict[str, str] = {}


def version(tool: str) -> str:
    """The first line a tool prints about its version ("mkfs.xfs version 6.13.0"), or "<tool> missing"."""
    if tool not in _VERSIONS:
        cmd = btrfs_tool(tool) if tool.startswith("btrfs") or tool == "mkfs.btrfs" else [tool]
        flag = "--version" if tool.startswith("btrfs") or tool == "mkfs.btrfs" else "-V"
        try:
            p = subprocess.run([*cmd, flag], capture_output=True, text=True, env=btrfs_env())
            lines = (p.stdout + p.stderr).strip().splitlines()
            _VERSIONS[tool] = lines[0].strip() if lines else f"{tool} (no version)"
        except OSError:
            _VERSIONS[tool] = f"{tool} missing"
    return _VERSIONS[tool]


def _tool_versions() -> str:
    return "|".join(version(t) for t in ("mke2fs", "mkfs.xfs", "mkfs.btrfs", "debugfs", "xfs_db", "btrfs"))


_BTRFS_DIR: Path | None = None


def _btrfs_progs() -> Path | None:
    """A btrfs-progs with mkfs --compress/--subvol (>= 6.13): the system's, else bookworm-backports' 6.14
    unpacked into the cache (Debian 12's 6.2 has neither). None means: use the system's tools."""
    global _BTRFS_DIR
    if _BTRFS_DIR is not None:
        return _BTRFS_DIR if _BTRFS_DIR.name else None
    help_text = subprocess.run(["mkfs.btrfs", "--help"], capture_output=True, text=True)
    if "--compress" in help_text.stdout + help_text.stderr and shutil.which("btrfs-convert"):
        _BTRFS_DIR = Path("")
        return None
    root = cache_dir() / "test-tools" / "btrfs-progs-6.14"
    if not (root / "sbin/mkfs.btrfs").exists():
        from cloudboot.toolchain import apt

        bpo = apt.PrivateApt("bookworm-backports", ["bookworm", "bookworm-updates", "bookworm-backports"])
        debs = cache_dir() / "test-tools" / "debs"
        shutil.rmtree(debs, ignore_errors=True)
        for deb in bpo.download(["btrfs-progs/bookworm-backports", "libreiserfscore0"], debs):
            apt.extract_deb(deb, root)
    _BTRFS_DIR = root
    return root


def btrfs_tool(name: str) -> list[str]:
    root = _btrfs_progs()
    if root is None:
        return [shutil.which(name) or name]
    for sub in ("sbin", "bin", "usr/sbin", "usr/bin"):
        if (root / sub / name).exists():
            return [str(root / sub / name)]
    return [name]


def btrfs_env() -> dict[str, str]:
    root = _btrfs_progs()
    env = dict(os.environ)
    if root is not None:
        env["LD_LIBRARY_PATH"] = str(root / "usr/lib/x86_64-linux-gnu") + ":" + str(root / "usr/lib")
    return env


# ---------------------------------------------------------------- checks ----
#: What a tool is known to write wrong, per image: skipped by the self-check (and by the tests), with why.
KNOWN_DEFECTS = {
    "ext4-inline.img": {"/boot/initrd.img-6.12.117-amd64": "mke2fs 1.47.0 and 1.47.2 -d with inline_data store "
                                                           "this sparse-tailed file as 1024 bytes"},
}


def _reader(fstype: str):
    """(reader, its name with version) for an image's filesystem (tests/portable/imagecheck.py)."""
    if fstype == "xfs":
        return imagecheck.read_xfs, version("xfs_db")
    if fstype == "ext":
        return imagecheck.read_ext, version("debugfs")
    return imagecheck.btrfs_reader(btrfs_tool("btrfs"), btrfs_env()), f"btrfs restore ({version('btrfs')})"


def _check(out: Path, trees: dict[str, Path], fstype: str, made_by: str, layout: dict[str, str] | None = None,
           manifests: list | None = None) -> None:
    """Read `out` back with an independent reader: each tree of `layout` ({tree: where it sits}, default the
    basic tree at /) or the given (manifest, top) pairs must be there, byte for byte."""
    pairs = manifests or [(trees[t].parent / f"{t}.manifest", top) for t, top in (layout or {"tree": "/"}).items()]
    reader, name = _reader(fstype)
    imagecheck.check(out, made_by, reader, name, pairs, KNOWN_DEFECTS.get(out.name))


def _adopt_origin(part: Path, disk: Path, label: str) -> None:
    """A partition image's .origin record, appended to its disk's."""
    src = part.with_name(part.name + ".origin")
    record = disk.with_name(disk.name + ".origin")
    with open(record, "a", encoding="utf-8") as f:
        f.write(f"[{label}]\n" + src.read_text(encoding="utf-8"))
    src.unlink()


def _aligned_sources(tree: Path, block: int, work: Path) -> dict[str, Path]:
    """Copies of the tree's sparse files whose data runs start and end on `block` boundaries (the gaps written
    as zeros), for mkfs.xfs -p: 6.13 copies a data run that starts inside a filesystem block to the wrong
    place (xfs-64k.img's /etc/holes held other files' bytes). Maps the protofile path to the copy."""
    out = {}
    for p in sorted(tree.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        size = p.stat().st_size
        with open(p, "rb") as f:
            runs = imagecheck.data_runs(f, size)
            if runs == [(0, size)] or size == 0:
                continue  # no holes: mkfs copies it whole
            copy = work / str(len(out))
            copy.parent.mkdir(parents=True, exist_ok=True)
            with open(copy, "wb") as g:
                g.truncate(size)
                for start, end in runs:  # widened runs may meet: the later one rewrites the same bytes
                    lo, hi = start // block * block, min(-(-end // block) * block, size)
                    f.seek(lo)
                    g.seek(lo)
                    g.write(f.read(hi - lo))
        out["/" + str(p.relative_to(tree))] = copy
    return out


# ---------------------------------------------------------------- recipes ----
def ext4(out: Path, trees: dict[str, Path], tree: str, size: int, *opts: str, htree: bool = False) -> None:
    """mke2fs -d; with `htree`, e2fsck -D then rebuilds every directory as an htree (mke2fs writes them linear)."""
    _blank(out, size)
    _sh("mkfs.ext4", "-q", "-F", "-L", out.stem.upper()[:16], "-U", UUID, *opts, "-d", trees[tree], out)
    if htree:
        proc = subprocess.run(["e2fsck", "-fyD", str(out)], capture_output=True)
        if proc.returncode not in (0, 1):  # 1: "file system was modified" (the directories)
            raise RuntimeError(f"e2fsck -fyD {out}: {proc.returncode}\n{proc.stdout.decode()}")
    _check(out, trees, "ext", version("mke2fs") + (" and e2fsck -D" if htree else ""), {tree: "/"})


def ext_plain(out: Path, trees: dict[str, Path], tool: str, tree: str, size: int, *opts: str) -> None:
    _blank(out, size)
    _sh(tool, "-q", "-F", "-L", out.stem.upper()[:16], "-U", UUID, *opts, "-d", trees[tree], out)
    _check(out, trees, "ext", f"{tool}: {version('mke2fs')}", {tree: "/"})


def ext4_frag(out: Path, trees: dict[str, Path]) -> None:
    """A fragmented file: fill with small files, delete every other one, then write a big file into the
    holes. The filesystem is only just big enough, so the file's extent tree gets an index level."""
    work = out.parent / (out.stem + ".work")
    shutil.rmtree(work, ignore_errors=True)
    (work / "small").mkdir(parents=True)
    for i in range(600):
        (work / "small" / f"s{i:03d}").write_bytes(bytes([i % 256]) * 4096)
    _blank(out, 3900 << 10)
    _sh("mkfs.ext4", "-q", "-F", "-b", "1024", "-N", "700", "-O", "^has_journal", "-d", work / "small", out)
    (work / "rm.cmds").write_text("".join(f"rm /s{i:03d}\n" for i in range(0, 600, 2)))
    _sh("debugfs", "-w", "-f", work / "rm.cmds", out)
    big = out.parent / "big.bin"
    big.write_bytes(bytes(i * 13 % 251 for i in range(1_000_000)))
    _sh("debugfs", "-w", "-R", f"write {big} big.bin", out)
    for i in range(0, 600, 2):  # the expected tree: the same changes made on the host
        (work / "small" / f"s{i:03d}").unlink()
    shutil.copyfile(big, work / "small/big.bin")
    write_manifest(work / "small", work / "frag.manifest")
    _check(out, trees, "ext", f"{version('mke2fs')}, then {version('debugfs')} -w",
           manifests=[(work / "frag.manifest", "/")])
    shutil.rmtree(work)


def ext4_dirty(out: Path, trees: dict[str, Path], checksums: bool) -> None:
    """needs_recovery with committed, unapplied transactions: the blocks a real change (debugfs -w on a copy)
    touched are written into the journal by debugfs' journal_write (csum v3 when `checksums`), the last one
    revoked again in a second transaction. `<name>-recovered.img` is the same image after e2fsck replayed it:
    the oracle."""
    _blank(out, 32 * MiB)
    _sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "DIRTY", "-U", UUID, "-d", trees["tree"], out)
    _check(out, trees, "ext", version("mke2fs"))  # the tree, before the journal gets its transactions
    changed = out.parent / (out.stem + ".changed")
    shutil.copyfile(out, changed)
    new = out.parent / (out.stem + ".new")
    new.write_bytes(b"written through the journal\n" * 3000)
    _sh("debugfs", "-w", "-f", "-", changed,
        input=f"write {new} /etc/journaled\nmkdir /boot/newdir\nrm /etc/file-0007\n"
              f"write {new} /boot/newdir/inner\n".encode())
    blocks = []
    with open(out, "rb") as a, open(changed, "rb") as b:
        n = 0
        while True:
            x, y = a.read(4096), b.read(4096)
            if not x:
                break
            if x != y:
                blocks.append((n, y))
            n += 1
    data = out.parent / (out.stem + ".blocks")
    data.write_bytes(b"".join(y for _, y in blocks))
    revoke = blocks[-1][0]
    cmds = [f"jo{' -c' if checksums else ''}", f"jw -b {','.join(str(n) for n, _ in blocks)} {data}",
            f"jw -r {revoke} /dev/null", "jc"]
    _sh("debugfs", "-w", "-f", "-", out, input=("\n".join(cmds) + "\n").encode())
    recovered = out.parent / (out.stem + "-recovered.img")
    shutil.copyfile(out, recovered)
    _sh("e2fsck", "-E", "journal_only", "-y", recovered)  # replay only, no other repairs
    for p in (changed, new, data):
        p.unlink()


def xfs(out: Path, trees: dict[str, Path], tree: str, size: int, *opts: str) -> None:
    _blank(out, size)
    block = 4096
    for flag, value in zip(opts, opts[1:]):
        if flag == "-b" and value.startswith("size="):
            block = int(value[5:])
    work = out.parent / (out.stem + ".aligned")
    shutil.rmtree(work, ignore_errors=True)
    proto = protofile(trees[tree], out.parent / (out.stem + ".proto"), _aligned_sources(trees[tree], block, work))
    _sh("mkfs.xfs", "-q", "-f", "-L", out.stem.upper()[:12], "-m", f"uuid={UUID}", *opts, "-p", proto, out)
    proto.unlink()
    shutil.rmtree(work, ignore_errors=True)
    _check(out, trees, "xfs", version("mkfs.xfs"), {tree: "/"})


def xfs_big(out: Path, trees: dict[str, Path]) -> None:
    """The big tree; the 5 GB sparse file is written as its last block and moved into place with xfs_db
    (mkfs.xfs 6.1's protofile reads files whole, and its allocator ignores small AGs' boundaries, so a
    B+tree data fork comes from the 10,000-entry directory in xfs-many instead; a file larger than an AG
    comes out truncated and overwrites the next AG's headers, hence AGs bigger than the file)."""
    last = out.parent / (out.stem + ".last")
    start = HUGE_END // 4096 * 4096
    last.write_bytes(bytes(HUGE_END - start) + b"end")
    _blank(out, 600 * MiB)
    proto = protofile(trees["big"], out.parent / (out.stem + ".proto"), {"/huge": last})
    _sh("mkfs.xfs", "-q", "-f", "-L", "XFS-BIG", "-d", "agcount=2", "-p", proto, out)  # 300 MiB AGs
    _sh("xfs_db", "-x", "-c", "path /huge", "-c", f"write core.size {HUGE_END + 3}",
        "-c", f"write u3.bmx[0].startoff {start // 4096}", out)
    proto.unlink()
    last.unlink()
    _check(out, trees, "xfs", f"{version('mkfs.xfs')}, /huge moved by xfs_db -x", {"big": "/"})


def btrfs(out: Path, trees: dict[str, Path], tree: str, size: int, *opts: str) -> None:
    _blank(out, size)
    _sh(*btrfs_tool("mkfs.btrfs"), "-q", "-f", "-L", out.stem.upper(), "-U", UUID, *opts, "--rootdir", trees[tree],
        out, env=btrfs_env())
    _check(out, trees, "btrfs", version("mkfs.btrfs"), {tree: "/"})


def btrfs_subvol(out: Path, trees: dict[str, Path]) -> None:
    """openSUSE's layout: @ and @/.snapshots/1/snapshot (the default subvolume, holding the root tree),
    @/home as a plain subvolume."""
    work = out.parent / (out.stem + ".work")
    shutil.rmtree(work, ignore_errors=True)
    snap = work / "@/.snapshots/1/snapshot"
    shutil.copytree(trees["tree"], snap, symlinks=True)
    (work / "@/home/user").mkdir(parents=True)
    (work / "@/home/user/notes").write_text("in the home subvolume\n")
    (work / "@/.snapshots/1/info.xml").write_text("<snapshot><num>1</num></snapshot>\n")
    (work / "top-level-file").write_text("in subvolume 5\n")
    _blank(out, 200 * MiB)
    _sh(*btrfs_tool("mkfs.btrfs"), "-q", "-f", "-L", "SUSE", "-U", UUID, "--rootdir", work,
        "--subvol", "@", "--subvol", "@/home", "--subvol", "@/.snapshots", "--subvol",
        "default:@/.snapshots/1/snapshot", out, env=btrfs_env())
    shutil.rmtree(work)
    _check(out, trees, "btrfs", version("mkfs.btrfs"), {"tree": "/@/.snapshots/1/snapshot"})


def btrfs_convert(out: Path, trees: dict[str, Path]) -> None:
    """btrfs-convert of an ext4 image holding the big tree: the 5 GB sparse file keeps its hole, and the
    ext2_saved subvolume's image file references extents by offset."""
    _blank(out, 400 * MiB)
    _sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^metadata_csum", "-L", "CONVERTED", "-d", trees["big"], out)
    _sh(*btrfs_tool("btrfs-convert"), out, env=btrfs_env())
    _check(out, trees, "btrfs", f"{version('btrfs-convert')} from {version('mke2fs')}", {"big": "/"})


def vm_fs(out: Path, trees: dict[str, Path], fstype: str, devices: int, *opts: str) -> list[Path]:
    """The host half of an image Linux fills (build() then runs vmimages.fill on all of them at once): the empty
    filesystem made by the real mkfs, over `devices` image files for btrfs (out, then out.dev1, out.dev2...).
    Returns the device images."""
    paths = [out] + [out.parent / f"{out.stem}.dev{i}" for i in range(1, devices)]
    for p in paths:
        _blank(p, (300 if fstype == "xfs" else 160) * MiB)
    if fstype == "btrfs":  # one fsid per set: the kernel knows a set's devices by it
        fsid = hashlib.sha256(out.name.encode()).hexdigest()
        fsid = "-".join((fsid[:8], fsid[8:12], fsid[12:16], fsid[16:20], fsid[20:32]))
        _sh(*btrfs_tool("mkfs.btrfs"), "-q", "-f", "-L", out.stem.upper(), "-U", fsid, *opts, *paths,
            env=btrfs_env())
    else:
        _sh("mkfs.xfs", "-q", "-f", "-L", out.stem.upper()[:12], "-m", f"uuid={UUID}", *opts, out)
    return paths


#: VM-filled image -> the trees written into it, each at /<tree>
VM_TREES = {"xfs-btree.img": ["tree", "frag"]}


def _vm_fill(out: Path, names: list[str], trees: dict[str, Path]) -> None:
    """Make every named VM image's empty filesystem, then fill them all in one VM, which mounts each again
    afterwards and reads its trees back (manifests equal to the host's); xfs_db also reads the XFS image back,
    confirms the file's data fork is a B+tree and records the inode's core (the oracle the tests read)."""
    from tests.portable import vmimages

    jobs = []
    for name in names:
        fn, args, _ = _recipe(name)
        fstype = args[0]
        jobs.append((name, fstype, fn(out / name, trees, *args), VM_TREES.get(name, ["tree"])))
    manifests = {t: (out / f"{t}.manifest").read_text(encoding="utf-8") for t in ("tree", "frag")}
    release = vmimages.fill(jobs, {t: TREES[t] for t in ("tree", "frag")}, [big_block, manifest_lines], out,
                            manifests)
    for name, fstype, _, tops in jobs:
        maker = f"Linux {release} (on {version('mkfs.' + fstype)}), read back by Linux after a remount"
        if fstype != "xfs":
            (out / (name + ".origin")).write_text(f"made by: {maker}\n", encoding="utf-8")
            continue
        _check(out / name, trees, "xfs", maker, {t: f"/{t}" for t in tops})
        core = _sh("xfs_db", "-r", "-c", "path /frag/frag", "-c", "print core.format core.nextents", out / name)
        if "core.format = 3" not in core:
            raise RuntimeError(f"{name}: /frag/frag is not in B+tree format:\n{core}")
        (out / (name + ".frag-core")).write_text(core)


def gpt_disk(out: Path, trees: dict[str, Path]) -> None:
    """GPT: an ESP (vfat), an ext4 root (partition 2, name 'root') and an XFS partition named 'data'."""
    _blank(out, 64 * MiB)
    _sh("sgdisk", "-U", "11111111-2222-3333-4444-555555555555", "-n", "1:2048:+4M", "-t", "1:ef00", "-c", "1:EFI",
        "-n", "2:0:+40M", "-t", "2:8300", "-c", "2:root", "-u", "2:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "-n", "3:0:0", "-t", "3:8300", "-c", "3:d\u00e4ta \U0001f600", out)
    part = out.parent / (out.stem + ".p2")
    _blank(part, 40 * MiB)
    _sh("mkfs.ext4", "-q", "-F", "-b", "1024", "-L", "EXT4-1K", "-U", UUID, "-d", trees["tree"], part)
    _check(part, trees, "ext", version("mke2fs"))
    with open(out, "r+b") as f, open(part, "rb") as src:
        f.seek((2048 + 8192) * 512)
        shutil.copyfileobj(src, f)
    out.with_name(out.name + ".origin").unlink(missing_ok=True)
    _adopt_origin(part, out, "partition 2")
    part.unlink()
    (out.parent / (out.stem + ".json")).write_text(_sh("sfdisk", "-J", out))  # the oracle for GUIDs and names


def _sparse_copy(src: Path, dst, offset: int) -> None:
    """Copy src into dst at offset, seeking over all-zero MiBs (the images are mostly empty)."""
    with open(src, "rb") as f:
        pos = 0
        while chunk := f.read(MiB):
            if chunk.count(0) != len(chunk):
                dst.seek(offset + pos)
                dst.write(chunk)
            pos += len(chunk)


def gpt_multi(out: Path, trees: dict[str, Path]) -> None:
    """GPT with an ext4 (partition 1, 'boot'), an XFS (2, 'root') and a btrfs (3, 'home') partition, each holding
    the basic tree (for `cloud-boot fs`)."""
    parts = [("ext4", 40, ext4, ("tree", 40 * MiB, "-b", "4096")), ("xfs", 300, xfs, ("tree", 300 * MiB)),
             ("btrfs", 200, btrfs, ("tree", 200 * MiB))]
    _blank(out, (1 + sum(size for _, size, _, _ in parts) + 1) * MiB)
    cmd = ["sgdisk", "-U", "22222222-3333-4444-5555-666666666666"]
    for i, (_, size, _, _) in enumerate(parts, 1):
        cmd += ["-n", f"{i}:0:+{size}M", "-t", f"{i}:8300", "-c", f"{i}:{('boot', 'root', 'home')[i - 1]}"]
    _sh(*cmd, out)
    out.with_name(out.name + ".origin").unlink(missing_ok=True)
    with open(out, "r+b") as f:
        start = 2048 * 512
        for i, (name, size, fn, args) in enumerate(parts, 1):
            part = out.parent / f"{out.stem}-{name}.img"
            fn(part, trees, *args)  # each recipe checks its own image
            _sparse_copy(part, f, start)
            _adopt_origin(part, out, f"partition {i}")
            part.unlink()
            start += size * MiB


def gpt_backup_only(out: Path, trees: dict[str, Path]) -> None:
    """The GPT disk with its primary header smashed: the backup must be used."""
    shutil.copyfile(out.parent / "gpt-disk.img", out)
    with open(out, "r+b") as f:
        f.seek(512 + 16)
        f.write(b"\xde\xad\xbe\xef")


def mbr_disk(out: Path, trees: dict[str, Path]) -> None:
    """MBR: a primary, an extended partition with three logical ones; ext4 in logical partition 6."""
    _blank(out, 64 * MiB)
    script = ("label: dos\nlabel-id: 0x1234abcd\n"
              "start=2048, size=8192, type=83\n"
              "start=10240, type=5\n"
              "size=8192, type=83\n"
              "size=40960, type=83\n"
              "size=4096, type=82\n")
    _sh("sfdisk", "-q", out, input=script.encode())
    table = _sh("sfdisk", "-J", out)
    import json

    parts = json.loads(table)["partitiontable"]["partitions"]
    six = [p for p in parts if p["node"].endswith("6")][0]
    part = out.parent / (out.stem + ".p6")
    _blank(part, six["size"] * 512)
    _sh("mkfs.ext4", "-q", "-F", "-L", "LOGICAL6", "-d", trees["tree"], part)
    _check(part, trees, "ext", version("mke2fs"))
    with open(out, "r+b") as f, open(part, "rb") as src:
        f.seek(six["start"] * 512)
        shutil.copyfileobj(src, f)
    out.with_name(out.name + ".origin").unlink(missing_ok=True)
    _adopt_origin(part, out, "partition 6")
    part.unlink()
    (out.parent / (out.stem + ".json")).write_text(table)


def vfat(out: Path, trees: dict[str, Path]) -> None:
    if out.exists():
        out.unlink()
    _sh("mkfs.vfat", "-C", "-n", "CBESP", "-i", "1234ABCD", out, "8192")


def ext4_debian_cloud(out: Path, trees: dict[str, Path]) -> None:
    """A Debian-cloud-like root: two kernels, grub.cfg naming only the older one (its `linux` line with
    `$vars`), /etc/default/grub + grub.d/*.cfg (console=ttyS0 in GRUB_CMDLINE_LINUX_DEFAULT, as Debian's cloud
    images put it) for the newer one. Its own tree: adding one to TREES would rebuild every image."""
    root = out.parent / (out.name + ".tree")
    shutil.rmtree(root, ignore_errors=True)
    for rel, text in {
        "boot/vmlinuz-6.1.0-9-cloud-amd64": "MZ older kernel",
        "boot/initrd.img-6.1.0-9-cloud-amd64": "070701 older initrd",
        "boot/vmlinuz-6.12.10-cloud-amd64": "MZ newer kernel",
        "boot/initrd.img-6.12.10-cloud-amd64": "070701 newer initrd",
        "boot/grub/grub.cfg": (
            "# DO NOT EDIT\nset default=\"0\"\nif [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
            "set extra='quiet splash'\nfunction load_video {\n  insmod all_video\n}\n"
            "menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {\n"
            "\tload_video\n\tset root='hd0,gpt1'\n"
            "\tlinux\t/boot/vmlinuz-6.1.0-9-cloud-amd64 root=PARTUUID=abcd ro  console=tty0 "
            "console=ttyS0,115200 ${extra} \"x=a b\" $unset_var\n"
            "\tinitrd\t/boot/initrd.img-6.1.0-9-cloud-amd64\n}\n"
            "submenu 'Advanced options' {\n  menuentry 'recovery' {\n"
            "    linux /boot/vmlinuz-6.1.0-9-cloud-amd64 root=PARTUUID=abcd ro single\n  }\n}\n"),
        "etc/default/grub": (
            "# If you change this file, run 'update-grub'\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"
            "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n"),
        "etc/default/grub.d/10_cloud.cfg": (
            "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 "
            "consoleblank=0\"\nGRUB_TERMINAL=\"console serial\"\n"),
        "etc/default/grub.d/20_extra.cfg": "export GRUB_CMDLINE_LINUX='net.ifnames=0'\n"
                                          "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX biosdevname=0\"\n",
        "etc/default/grub.d/README": "not a .cfg: GRUB_CMDLINE_LINUX=ignored\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _blank(out, 16 * MiB)
    _sh("mkfs.ext4", "-q", "-F", "-L", "debcloud", "-U", UUID, "-d", root, out)
    shutil.rmtree(root)


def luks(out: Path, trees: dict[str, Path], kind: str) -> None:
    _blank(out, 32 * MiB)
    label = ["--label", "cbcrypt"] if kind == "luks2" else []
    _sh("cryptsetup", "luksFormat", "--batch-mode", "--type", kind, *label, "--uuid", UUID, "--pbkdf", "pbkdf2",
        "--pbkdf-force-iterations", "1000", out, "-", input=b"secret")


PASSPHRASE = b"correct horse \xe2\x9c\x93"  # not ASCII: the bytes are what counts
SECOND_PASSPHRASE = b"second slot"
LUKS2_SHIFT = 8 * MiB  # reencrypt --encrypt moves the filesystem this far to make room for the header


def _inner_fs(out: Path, trees: dict[str, Path], fstype: str, size: int) -> None:
    """The basic tree in a filesystem image of `size` bytes (4 KiB blocks and sectors: any LUKS sector size fits)."""
    if fstype == "ext4":
        ext4(out, trees, "tree", size, "-b", "4096")
    elif fstype == "xfs":
        xfs(out, trees, "tree", size, "-s", "size=4096")
    else:
        btrfs(out, trees, "tree", size, "-M")


def luks_uuid(name: str) -> str:
    """One UUID per LUKS image: cryptsetup locks by UUID, and the images are made in parallel."""
    h = hashlib.sha256(name.encode()).hexdigest()
    return "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:32]))


def luks_fs(out: Path, trees: dict[str, Path], kind: str, fstype: str, size: int, cipher: str, key_bits: int,
            hash_name: str, pbkdf: str, sector: int = 512, second_slot: bool = False) -> None:
    """A filesystem inside LUKS, every byte written by real LUKS code, no device-mapper: LUKS2 by `cryptsetup
    reencrypt --encrypt` (offline: cryptsetup's own userspace encryption of the filesystem, header and all);
    LUKS1 by `cryptsetup luksFormat` and its payload by QEMU's LUKS driver (`qemu-img convert -n`), another
    implementation. Small KDF costs. `second_slot`: a second keyslot (pbkdf2) opened by SECOND_PASSPHRASE."""
    inner = out.parent / (out.stem + ".inner")
    _inner_fs(inner, trees, fstype, size)
    pw = out.parent / (out.stem + ".pw")
    pw.write_bytes(PASSPHRASE)
    costs = (["--pbkdf-force-iterations", "1000"] if pbkdf == "pbkdf2" else
             ["--pbkdf-force-iterations", "4", "--pbkdf-memory", "16384", "--pbkdf-parallel", "2"])
    common = ["--batch-mode", "--type", kind, "--cipher", cipher, "--key-size", str(key_bits), "--hash", hash_name,
              "--pbkdf", pbkdf, *costs, "--uuid", luks_uuid(out.name), "--key-file", pw]
    try:
        if kind == "luks2":
            with open(inner, "r+b") as f:
                f.truncate(size + LUKS2_SHIFT)
            work = out.parent / (out.stem + ".work")  # reencrypt keeps a temporary header in its directory
            work.mkdir(exist_ok=True)
            _sh("cryptsetup", "reencrypt", "--encrypt", *common, "--label", out.stem, "--sector-size", str(sector),
                "--reduce-device-size", f"{LUKS2_SHIFT >> 20}M", inner, cwd=work)
            shutil.rmtree(work)
            inner.rename(out)
        else:
            _blank(out, size + 4 * MiB)
            _sh("cryptsetup", "luksFormat", *common, out)
            _sh("qemu-img", "convert", "-n", "--object", f"secret,id=pw,file={pw}", "-f", "raw", inner,
                "--target-image-opts", f"driver=luks,key-secret=pw,file.filename={out}")
        if second_slot:
            other = out.parent / (out.stem + ".pw2")
            other.write_bytes(SECOND_PASSPHRASE)
            _sh("cryptsetup", "luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                "--key-file", pw, out, other)
            other.unlink()
    finally:
        pw.unlink(missing_ok=True)
        inner.unlink(missing_ok=True)


#: ZFS pool layouts -> (vdev args with {0}, {1}... for the device files, number of devices)
ZFS_LAYOUTS = {"single": ("{0}", 1), "mirror": ("mirror {0} {1}", 2), "raidz1": ("raidz1 {0} {1} {2}", 3),
               "raidz2": ("raidz2 {0} {1} {2} {3}", 4), "raidz3": ("raidz3 {0} {1} {2} {3} {4}", 5)}


def zfs_pool(out: Path, trees: dict[str, Path], layout: str, datasets: tuple) -> None:
    """A ZFS pool written by zfs-fuse (real ZFS code in userspace: pool version 23) over `out` (and out.dev1,
    out.dev2... for more devices), 64 MiB each. `datasets`: (name, tree or None, properties, snapshot or None);
    each tree is copied in through the FUSE mount (sparse files stay sparse); a snapshot is taken after the
    copy and then the live dataset changed (/etc/hostname rewritten, /etc/file-0000 removed). Finally every
    dataset is unmounted, set canmount=noauto and given its final mountpoint (so nothing is mounted on the
    host), and the pool exported. <out>.zdb is `zdb -C -u`'s account of it (the oracle for the vdev tree and
    the uberblock)."""
    vdevs, count = ZFS_LAYOUTS[layout]
    pool = "cb" + out.stem.replace("-", "").replace(".", "")[:20]
    paths = [out] + [out.parent / f"{out.stem}.dev{i}" for i in range(1, count)]
    for p in paths:
        _blank(p, 64 * MiB)
    zdb = make_pool(pool, vdevs.format(*paths).split(),
                    [(name, trees[tree] if tree else None, props, snap) for name, tree, props, snap in datasets],
                    out.parent / (out.stem + ".zfswork"))
    (out.parent / (out.name + ".zdb")).write_text(zdb)


def openzfs_pool(out: Path, trees: dict[str, Path], layout: str, datasets: tuple) -> list[Path]:
    """The host half of a pool OpenZFS makes (build() then runs openzfs.fill on all of them in one VM): device
    files (out, out.dev1...), 128 MiB each, GPT-partitioned as OpenZFS does a whole disk (partition 1, type
    Solaris /usr, from 1 MiB: the pool goes there; the VM has no udev for zpool to label disks itself).
    Returns the device images."""
    count = len([w for w in layout.split() if w.startswith("d")])
    paths = [out] + [out.parent / f"{out.stem}.dev{i}" for i in range(1, count)]
    for p in paths:
        _blank(p, 128 * MiB)
        _sh("sgdisk", "-n", "1:2048:0", "-t", "1:BF01", "-c", "1:zfs", p)
    return paths


def _openzfs_fill(out: Path, names: list[str], trees: dict[str, Path]) -> None:
    from tests.portable import openzfs

    jobs = []
    for name in names:
        fn, (layout, datasets), _ = _recipe(name)
        jobs.append(("cb" + name[:-4].replace("-", ""), layout, fn(out / name, trees, layout, datasets), datasets))
    openzfs.fill(jobs, {t: trees[t] for t in ("tree", "many")}, out)


def swap(out: Path, trees: dict[str, Path]) -> None:
    _blank(out, 8 * MiB)
    _sh("mkswap", "-L", "cbswap", "-U", UUID, out)


#: name -> (recipe, args[, kwargs]). Order matters only where one image copies another (gpt-backup from gpt-disk).
IMAGES = {
    "ext4-4k.img": (ext4, ("tree", 32 * MiB, "-O", "64bit", "-b", "4096")),
    "ext4-1k.img": (ext4, ("tree", 32 * MiB, "-b", "1024"), {"htree": True}),
    "ext4-2k-128.img": (ext4, ("tree", 32 * MiB, "-b", "2048", "-I", "128", "-O", "sparse_super2,^metadata_csum")),
    "ext4-64k.img": (ext4, ("tree", 64 * MiB, "-b", "65536")),
    "ext4-bigalloc.img": (ext4, ("tree", 64 * MiB, "-b", "4096", "-O", "bigalloc", "-C", "65536")),
    "ext4-metabg.img": (ext4, ("tree", 48 * MiB, "-b", "1024", "-g", "1024", "-O", "meta_bg,64bit,^resize_inode",
                               "-E", "num_backup_sb=0")),
    "ext4-inline.img": (ext4, ("tree", 32 * MiB, "-O", "inline_data", "-I", "512")),
    "ext4-gdtcsum.img": (ext4, ("tree", 32 * MiB, "-O", "^metadata_csum,uninit_bg,^64bit")),
    "ext4-casefold.img": (ext4, ("tree", 32 * MiB, "-O", "casefold,^has_journal", "-E", "encoding=utf8")),
    "ext4-many.img": (ext4, ("many", 64 * MiB, "-b", "1024", "-N", "12000"), {"htree": True}),
    "ext4-big.img": (ext4, ("big", 320 * MiB, "-b", "4096")),
    "ext3.img": (ext_plain, ("mkfs.ext3", "tree", 32 * MiB)),
    "ext2.img": (ext_plain, ("mkfs.ext2", "tree", 32 * MiB)),
    "ext2-nofiletype.img": (ext_plain, ("mkfs.ext2", "tree", 32 * MiB, "-O", "^filetype,^dir_index", "-b", "4096")),
    "ext2-big.img": (ext_plain, ("mkfs.ext2", "big", 320 * MiB, "-b", "1024")),
    "ext4-frag.img": (ext4_frag, ()),
    "ext4-dirty.img": (ext4_dirty, (True,)),
    "ext4-dirty-nocsum.img": (ext4_dirty, (False,)),
    "xfs-v5.img": (xfs, ("tree", 300 * MiB, "-i", "nrext64=0")),  # newer mkfs.xfs (6.13) default to nrext64
    "xfs-v4.img": (xfs, ("tree", 300 * MiB, "-m", "crc=0")),
    "xfs-v4-512.img": (xfs, ("tree", 300 * MiB, "-m", "crc=0", "-b", "size=512")),
    "xfs-1k.img": (xfs, ("tree", 300 * MiB, "-b", "size=1024")),
    "xfs-64k.img": (xfs, ("tree", 600 * MiB, "-b", "size=65536")),  # 6.13's smallest log: 124 MiB
    "xfs-dir16k.img": (xfs, ("tree", 300 * MiB, "-n", "size=16384", "-i", "size=2048")),
    "xfs-nrext64.img": (xfs, ("tree", 300 * MiB, "-i", "nrext64=1")),
    "xfs-many.img": (xfs, ("many", 300 * MiB)),
    "xfs-many-v4.img": (xfs, ("many", 300 * MiB, "-m", "crc=0", "-i", "size=256")),
    "xfs-big.img": (xfs_big, ()),
    "xfs-names.img": (names_fs, ("xfs",)),
    "ext4-names.img": (names_fs, ("ext4",)),
    "btrfs-names.img": (names_fs, ("btrfs",)),
    "zfs-names.img": (names_fs, ("zfs",)),
    "btrfs.img": (btrfs, ("tree", 200 * MiB)),
    "btrfs-zlib.img": (btrfs, ("tree", 200 * MiB, "--compress", "zlib")),
    "btrfs-lzo.img": (btrfs, ("tree", 200 * MiB, "--compress", "lzo")),
    "btrfs-zstd.img": (btrfs, ("tree", 200 * MiB, "--compress", "zstd:9")),
    "btrfs-xxhash-64k.img": (btrfs, ("tree", 200 * MiB, "--csum", "xxhash", "-n", "65536")),
    "btrfs-sha256.img": (btrfs, ("tree", 200 * MiB, "--csum", "sha256", "-m", "dup")),
    "btrfs-blake2.img": (btrfs, ("tree", 200 * MiB, "--csum", "blake2", "-M")),
    "btrfs-many.img": (btrfs, ("many", 200 * MiB)),
    "btrfs-mixed-dup.img": (btrfs, ("tree", 200 * MiB, "-M", "-d", "dup", "-m", "dup")),  # two copies of data
    "btrfs-big.img": (btrfs_convert, ()),
    "btrfs-subvol.img": (btrfs_subvol, ()),
    # filled by Linux (vmimages): the basic tree at /tree on every multi-device set, plus /frag on XFS
    "btrfs-raid1.img": (vm_fs, ("btrfs", 2, "-d", "raid1", "-m", "raid1")),
    "btrfs-raid10.img": (vm_fs, ("btrfs", 4, "-d", "raid10", "-m", "raid10")),
    "btrfs-raid5.img": (vm_fs, ("btrfs", 3, "-d", "raid5", "-m", "raid5")),
    "btrfs-raid6.img": (vm_fs, ("btrfs", 4, "-d", "raid6", "-m", "raid6")),
    "btrfs-raid0.img": (vm_fs, ("btrfs", 4, "-d", "raid0", "-m", "raid1c4")),
    "btrfs-raid1c3.img": (vm_fs, ("btrfs", 3, "-d", "raid1c3", "-m", "raid1c3")),
    "xfs-btree.img": (vm_fs, ("xfs", 1)),
    "gpt-disk.img": (gpt_disk, ()),
    "gpt-backup.img": (gpt_backup_only, ()),
    "gpt-multi.img": (gpt_multi, ()),
    "mbr-disk.img": (mbr_disk, ()),
    "vfat.img": (vfat, ()),
    "luks1.img": (luks, ("luks1",)),
    "luks2.img": (luks, ("luks2",)),
    "swap.img": (swap, ()),
    # every cipher and KDF the LUKS reader knows, each with a filesystem inside (tests/portable/test_luks.py)
    "luks1-xts-sha1.img": (luks_fs, ("luks1", "ext4", 24 * MiB, "aes-xts-plain64", 256, "sha1", "pbkdf2")),
    "luks1-essiv-sha256.img": (luks_fs, ("luks1", "ext4", 24 * MiB, "aes-cbc-essiv:sha256", 256, "sha256", "pbkdf2")),
    "luks1-xts-sha512.img": (luks_fs, ("luks1", "btrfs", 48 * MiB, "aes-xts-plain64", 512, "sha512", "pbkdf2")),
    "luks2-pbkdf2.img": (luks_fs, ("luks2", "ext4", 24 * MiB, "aes-xts-plain64", 512, "sha256", "pbkdf2", 512)),
    "luks2-argon2i.img": (luks_fs, ("luks2", "xfs", 300 * MiB, "aes-cbc-essiv:sha256", 256, "sha256", "argon2i",
                                    2048)),
    "luks2-argon2id.img": (luks_fs, ("luks2", "ext4", 24 * MiB, "aes-xts-plain64", 512, "sha512", "argon2id", 4096),
                           {"second_slot": True}),
    # ZFS pools by zfs-fuse (tests/portable/test_zfs.py): every classic layout; datasets for compression,
    # checksums, children with mountpoints, snapshots, a 10,000-entry (fat ZAP) directory
    "zfs-single.img": (zfs_pool, ("single", (
        ("", None, {"compression": "lzjb", "mountpoint": "/srv"}, None),
        ("ROOT", None, {"mountpoint": "none"}, None),
        ("ROOT/debian", "tree", {"mountpoint": "/", "checksum": "sha256"}, "installed"),  # its /boot: the next one
        ("ROOT/debian/boot", None, {"mountpoint": "/boot", "compression": "gzip-9", "checksum": "fletcher2"}, None),
        ("zle", "tree", {"compression": "zle", "checksum": "fletcher4"}, None),
        ("plain", "tree", {"compression": "off", "recordsize": "8K"}, None),
        ("many", "many", {"compression": "lzjb"}, None)))),
    "zfs-mirror.img": (zfs_pool, ("mirror", (("data", "tree", {"compression": "gzip"}, None),))),
    "zfs-raidz1.img": (zfs_pool, ("raidz1", (("data", "tree", {"compression": "lzjb"}, None),))),
    "zfs-raidz2.img": (zfs_pool, ("raidz2", (("data", "tree", {"compression": "gzip-1"}, None),))),
    "ext4-debian-cloud.img": (ext4_debian_cloud, ()),
    "zfs-raidz3.img": (zfs_pool, ("raidz3", (("data", "tree", {"compression": "off"}, None),))),
}
# Pools made by OpenZFS in a VM (tests/portable/openzfs.py): feature flags, lz4, zstd, embedded blocks, large
#: dnodes, system attributes; natively encrypted datasets (passphrase and raw key: openzfs.KEYS)
OPENZFS_IMAGES = {
    "openzfs.img": (openzfs_pool, ("d0", (
        ("", None, {}),
        ("lz4", "tree", {"compression": "lz4", "dnodesize": "auto", "xattr": "sa"}),
        ("zstd", "tree", {"compression": "zstd", "recordsize": "16K"}),
        ("sha512", "tree", {"compression": "gzip", "checksum": "sha512"}),
        ("many", "many", {"compression": "lz4"}),
        ("enc-pass", "tree", {"encryption": "aes-256-gcm", "keyformat": "passphrase",
                              "keylocation": "file:///cbkeys/pass"}),
        ("enc-raw", "tree", {"encryption": "aes-256-ccm", "keyformat": "raw", "keylocation": "file:///cbkeys/raw"}),
    ))),
    "openzfs-raidz2.img": (openzfs_pool, ("raidz2 d0 d1 d2 d3", (("data", "tree", {"compression": "lz4"}),))),
}
IMAGES.update(OPENZFS_IMAGES)
DEPENDS = {"gpt-backup.img": "gpt-disk.img"}


#: The OpenZFS pools cost a zfs-dkms build in a chroot (tests/portable/openzfs.py) on a machine without its
#: cache, so build() makes them only when CLOUDBOOT_OPENZFS=1 or (unless it is 0) when that cache exists.
OPENZFS_ENABLE = "CLOUDBOOT_OPENZFS"
OPENZFS_SKIP = ("OpenZFS fixture pools not built (zfs-dkms in a trixie chroot: about 30 min on a cold cache): "
                "run `make fixtures-openzfs`, or set CLOUDBOOT_OPENZFS=1 for `make test`")


def openzfs_wanted() -> bool:
    """Build the OpenZFS pools now? When asked to, or when the chroot they need is already cached."""
    from tests.portable import openzfs

    flag = os.environ.get(OPENZFS_ENABLE)
    if flag in ("0", "1"):
        return flag == "1"
    return (cache_dir() / "openzfs" / openzfs._key(vmimages_release()) / "done").exists()


def openzfs_built(out: Path) -> bool:
    """Are the OpenZFS pools among the images in `out`?"""
    return all((out / name).exists() for name in OPENZFS_IMAGES)


def _recipe(name: str):
    entry = IMAGES[name]
    return entry[0], entry[1], (entry[2] if len(entry) > 2 else {})


_KERNEL: list[str] = []


def vmimages_release() -> str:
    from tests.portable import vmimages

    return vmimages.kernel_release()


def _zfs_version() -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "zfs-fuse"], capture_output=True, text=True)
    return proc.stdout


def _key(name: str, versions: str) -> str:
    fn, args, kwargs = _recipe(name)
    parts = [inspect.getsource(fn), repr(args), repr(sorted(kwargs.items())), versions,
             inspect.getsource(protofile), inspect.getsource(_blank), inspect.getsource(imagecheck),
             inspect.getsource(_check), inspect.getsource(_aligned_sources), repr(KNOWN_DEFECTS.get(name))]
    parts += [inspect.getsource(f) for f in TREES.values()]
    if fn is names_fs:
        parts += [inspect.getsource(tree_names), repr(NAMES), repr(NAMES_LINK), inspect.getsource(_bytes_tree),
                  inspect.getsource(_xfs_names), inspect.getsource(_zdb_paths)]
        if args == ("zfs",):
            parts += [inspect.getsource(zfsfuse), _zfs_version()]
    if fn is openzfs_pool:
        from tests.portable import openzfs

        if not _KERNEL:
            _KERNEL.append(vmimages_release())
        parts += [_KERNEL[0], inspect.getsource(openzfs), inspect.getsource(_openzfs_fill)]
    if fn is vm_fs:  # what the kernel writes depends on the kernel
        from tests.portable import vmimages

        if not _KERNEL:
            _KERNEL.append(vmimages.kernel_release())
        parts += [_KERNEL[0], inspect.getsource(vmimages), inspect.getsource(_vm_fill), repr(VM_TREES)]
    if fn is luks_fs:  # the encrypting tools' versions too
        parts += [_sh("cryptsetup", "--version"), _sh("qemu-img", "--version"), inspect.getsource(_inner_fs)]
    if fn is zfs_pool:
        parts += [inspect.getsource(zfsfuse), repr(ZFS_LAYOUTS), _zfs_version()]
    if name in DEPENDS:
        parts.append(_key(DEPENDS[name], versions))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _trees(out: Path) -> dict[str, Path]:
    paths = {}
    for name, fn in TREES.items():
        root = out / name
        stamp = out / f"{name}.key"
        key = hashlib.sha256(inspect.getsource(fn).encode() + inspect.getsource(write_manifest).encode()).hexdigest()
        if not (stamp.exists() and stamp.read_text() == key and root.is_dir()):
            shutil.rmtree(root, ignore_errors=True)
            fn(root)
            write_manifest(root, out / f"{name}.manifest")
            stamp.write_text(key)
        paths[name] = root
    return paths


def build(names: list[str] | None = None, out: Path | None = None, jobs: int | None = None) -> Path:
    """Build (or reuse) the images and return their directory (what $CLOUDBOOT_TESTDATA points at)."""
    out = out or cache_dir() / "test-images"  # kept across checkouts: every image is keyed by its recipe
    out.mkdir(parents=True, exist_ok=True)
    trees = _trees(out)
    versions = _tool_versions()
    wanted = names or list(IMAGES)
    for name in list(wanted):
        if name in DEPENDS and DEPENDS[name] not in wanted:
            wanted.insert(0, DEPENDS[name])

    keys = {n: _key(n, versions) for n in wanted}  # hashes every recipe's sources: once per build

    def fresh(name: str) -> bool:
        stamp = out / f"{name}.key"
        return stamp.exists() and stamp.read_text() == keys[name] and (out / name).exists()

    def one(name: str) -> None:
        if fresh(name):
            return
        (out / f"{name}.key").unlink(missing_ok=True)
        fn, args, kwargs = _recipe(name)
        fn(out / name, trees, *args, **kwargs)
        (out / f"{name}.key").write_text(keys[name])

    def vm(names: list[str], fill) -> None:
        for name in names:
            (out / f"{name}.key").unlink(missing_ok=True)
        fill(out, names, trees)
        for name in names:
            (out / f"{name}.key").write_text(keys[name])

    in_vm = [n for n in wanted if _recipe(n)[0] is vm_fs and not fresh(n)]
    in_openzfs = [n for n in wanted if _recipe(n)[0] is openzfs_pool and not fresh(n)]
    if in_openzfs and not openzfs_wanted():  # stale ones go, so that their tests skip rather than read them
        print(f"test images: {', '.join(in_openzfs)} left out: {OPENZFS_SKIP}", file=sys.stderr)
        for name in in_openzfs:
            for p in [out / name, out / f"{name}.key", *out.glob(f"{name[:-4]}.dev*")]:
                p.unlink(missing_ok=True)
        in_openzfs = []
    first = [n for n in wanted if n in DEPENDS.values()]
    rest = [n for n in wanted if n not in first and n not in DEPENDS and _recipe(n)[0] not in (vm_fs, openzfs_pool)]
    with ThreadPoolExecutor(max_workers=jobs or max(2, os.cpu_count() or 2)) as pool:
        futures = [pool.submit(vm, in_vm, _vm_fill)] if in_vm else []
        futures += [pool.submit(vm, in_openzfs, _openzfs_fill)] if in_openzfs else []
        for f in futures + [pool.submit(one, n) for n in first + rest]:
            f.result()
        for f in [pool.submit(one, n) for n in wanted if n in DEPENDS]:
            f.result()
    return out


if __name__ == "__main__":  # python -m tests.portable.images [NAME... | --openzfs]
    if sys.argv[1:] == ["--openzfs"]:  # make fixtures-openzfs
        os.environ[OPENZFS_ENABLE] = "1"
        sys.argv[1:] = list(OPENZFS_IMAGES)
    print(build(sys.argv[1:] or None))
