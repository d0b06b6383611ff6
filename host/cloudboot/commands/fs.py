"""`cloud-boot fs info|ls|cat|stat IMAGE[@PARTITION] [PATH]`: look inside disk images and filesystems (ext2/3/4,
XFS, btrfs, ZFS; under LUKS with --passphrase-file or --key-file) with the portable reader the firmware uses,
without mounting anything.

PARTITION is a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=; without it the whole image is the filesystem
(or, for `info`, the partition table is listed). For ZFS, IMAGE@POOL/DATASET[@SNAPSHOT] names the dataset
(default: the pool's bootfs, else its root) and --device adds the pool's other devices. Every failure is one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import stat as statmod
import sys
import time

from cloudboot import disksecrets
from cloudboot.errors import CloudBootError

CHUNK = 1 << 20


def _split(spec: str) -> tuple[str, str | None]:
    """IMAGE[@PARTITION] or IMAGE@POOL[/DATASET][@SNAPSHOT]: an existing path wins (image names may hold '@'),
    else the shortest prefix that exists (a ZFS name may hold '@' too), else split at the last '@'."""
    if os.path.exists(spec) or "@" not in spec:
        return spec, None
    for i, ch in enumerate(spec):
        if ch == "@" and os.path.exists(spec[:i]):
            return spec[:i], spec[i + 1:]
    image, _, part = spec.rpartition("@")
    return image, part


def _dataset(spec: str) -> str | None:
    """The ZFS dataset an IMAGE@... spec names (what follows '@' when it is no partition selector), or None."""
    part = _split(spec)[1]
    return part if part and "=" not in part and not part.isdigit() else None


def open_device(spec: str):
    """(device, description) for IMAGE[@PARTITION] (IMAGE@POOL/DATASET: the whole image)."""
    from diskfs.blockdev import FileDevice
    from diskfs.partition import find
    from diskfs.probe import resolve

    image, part = _split(spec)
    if not os.path.exists(image):
        raise CloudBootError(f"{image}: no such file")
    disk = FileDevice(image)
    if part is None or _dataset(spec):
        return disk, image
    kind = part.partition("=")[0]
    if kind in ("LABEL", "UUID"):
        dev, where = resolve([disk], part)
        if dev is None:
            raise CloudBootError(f"{image}: no filesystem with {part}")
        return dev, where
    if not part.isdigit() and kind not in ("PARTLABEL", "PARTUUID"):
        raise CloudBootError(f"{spec}: partition must be a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=")
    p = find(disk, part)
    if p is None:
        raise CloudBootError(f"{image}: no partition {part}")
    return p.device(disk), f"partition {p.number} of {image}"


def open_fs(args: argparse.Namespace):
    import diskfs
    from diskfs.blockdev import FileDevice

    dev, _ = open_device(args.image)
    options = {}
    if getattr(args, "subvol", None):
        options["subvol"] = int(args.subvol) if args.subvol.isdigit() else args.subvol
    devices = [FileDevice(p) for p in getattr(args, "device", None) or []]
    options.update(disksecrets.options(args.passphrase_file, args.key_file, args.luks_limit))
    if _dataset(args.image):  # a ZFS pool: on the images or, as OpenZFS puts it, in their partition 1
        from diskfs.zfslabel import member

        options["dataset"] = _dataset(args.image)
        if member(dev) is None:
            raise CloudBootError(f"{args.image}: {options['dataset']} is neither a partition (a number, LABEL=, UUID=, "
                                 "PARTLABEL=, PARTUUID=) nor a ZFS pool on the image")
        dev = member(dev)
        devices = [member(d) or d for d in devices]
    return diskfs.open(dev, devices=devices or None, **options)


def _kind(mode: int) -> str:
    return statmod.filemode(mode)


def _info(args: argparse.Namespace) -> int:
    import diskfs
    from diskfs.partition import read_table
    from diskfs.probe import probe

    dev, where = open_device(args.image)
    keyed = args.passphrase_file or args.key_file  # then a container is opened and what is inside described
    if diskfs.detect(dev) is None and _split(args.image)[1] is None and not keyed:
        table = read_table(dev)
        if not table.scheme:
            kind, label, uuid = probe(dev)
            print(f"{where}: {kind or 'nothing known'}" + (f" label {label!r} uuid {uuid}" if kind else ""))
            return 0
        print(f"{where}: {table.scheme} disk {table.disk_id}, {dev.size} bytes")
        for w in table.warnings:
            print(f"  warning: {w}")
        for p in table.partitions:
            kind, label, uuid = probe(p.device(dev))
            print(f"  {p.number:>3}  start {p.offset:>12}  size {p.size:>12}  {kind or '-':<10} label {label!r}"
                  f"  uuid {uuid or '-'}  partlabel {p.name!r}  partuuid {p.part_guid or '-'}")
        return 0
    fs = open_fs(args)
    for key, value in fs.info().items():
        print(f"{key}: {value}")
    if hasattr(fs, "subvolumes"):
        for sid, path in fs.subvolumes():
            print(f"subvolume {sid}: {path}")
    if hasattr(fs, "snapshots"):
        print(f"snapshots: {', '.join(fs.snapshots()) or '-'}")
    return 0


def _line(fs, name: str, st, path: str) -> str:
    text = f"{_kind(st.st_mode)} {st.st_nlink:>3} {st.st_uid:>5} {st.st_gid:>5} {st.st_size:>12} " \
           f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(st.st_mtime))} {name}"
    if statmod.S_ISLNK(st.st_mode):
        text += " -> " + fs.readlink(path)
    return text


def _ls(args: argparse.Namespace) -> int:
    fs = open_fs(args)
    path = args.path
    node = fs.lookup(path)
    if not node.is_dir():
        st = fs.stat(path, follow=True)
        print(_line(fs, path, st, path) if args.long else path)
        return 0
    for name in fs.listdir(path):
        full = path.rstrip("/") + "/" + name
        print(_line(fs, name, fs.stat(full), full) if args.long else name)
    return 0


def _cat(args: argparse.Namespace) -> int:
    fs = open_fs(args)
    out = sys.stdout.buffer
    buf = bytearray(CHUNK)
    try:
        with fs.open(args.path) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                out.write(buf if n == CHUNK else memoryview(buf)[:n])
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _stat(args: argparse.Namespace) -> int:
    fs = open_fs(args)
    st = fs.stat(args.path, follow=args.follow)
    print(f"path: {args.path}")
    print(f"type: {_kind(st.st_mode)[0].replace('-', 'f')}  mode: {_kind(st.st_mode)} ({st.st_mode:o})")
    print(f"inode: {st.st_ino}  links: {st.st_nlink}  uid: {st.st_uid}  gid: {st.st_gid}")
    print(f"size: {st.st_size}")
    print(f"mtime: {st.st_mtime} ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(st.st_mtime))})")
    if statmod.S_ISLNK(st.st_mode):
        print(f"target: {fs.readlink(args.path)}")
    return 0


def _guard(fn):
    """diskfs errors (and OS errors on the image) as one-line CloudBootErrors."""
    def run(args: argparse.Namespace) -> int:
        from diskfs.errors import FsError

        try:
            return fn(args)
        except FsError as exc:
            raise CloudBootError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except OSError as exc:
            raise CloudBootError(f"{args.image}: {exc}") from None
    return run


def register(sub: argparse._SubParsersAction) -> None:
    """The `fs` verb and its info/ls/cat/stat subcommands."""
    p = sub.add_parser("fs", help="look inside a disk image or filesystem (ext2/3/4, XFS, btrfs, ZFS, LUKS) "
                       "without mounting")
    verbs = p.add_subparsers(dest="fs_command", required=True, metavar="info|ls|cat|stat")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("image", help="IMAGE[@PARTITION]: a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=; "
                       "IMAGE@POOL/DATASET[@SNAPSHOT] for ZFS")
        q.add_argument("--device", action="append", metavar="IMAGE",
                       help="another device of a multi-device btrfs or ZFS pool (repeatable)")
        q.add_argument("--subvol", help="btrfs: a subvolume path (from the top level) or id instead of the default")
        q.add_argument("--passphrase-file", metavar="FILE", help="LUKS: the passphrase is this file's first line "
                       "('-': standard input)")
        q.add_argument("--key-file", metavar="FILE", help="LUKS: a key file (its exact bytes, as cryptsetup's)")
        q.add_argument("--luks-limit", action="append", metavar="NAME=N", help="raise a LUKS header limit: "
                       "max_iterations, max_memory_kib, max_time, max_threads, max_stripes (repeatable)")

    q = verbs.add_parser("info", help="the filesystem's type, label, UUID and layout, or the partition table")
    common(q)
    q.set_defaults(func=_guard(_info))
    q = verbs.add_parser("ls", help="list a directory")
    common(q)
    q.add_argument("path", nargs="?", default="/")
    q.add_argument("-l", "--long", action="store_true", help="mode, links, owner, size, mtime, link target")
    q.set_defaults(func=_guard(_ls))
    q = verbs.add_parser("cat", help="write a file's bytes to stdout")
    common(q)
    q.add_argument("path")
    q.set_defaults(func=_guard(_cat))
    q = verbs.add_parser("stat", help="an entry's inode fields")
    common(q)
    q.add_argument("path")
    q.add_argument("-L", "--follow", action="store_true", help="follow a final symlink")
    q.set_defaults(func=_guard(_stat))
