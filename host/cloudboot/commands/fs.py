"""`cloud-boot fs info|ls|cat|stat IMAGE[@PARTITION] [PATH]`: look inside disk images and filesystems (ext2/3/4,
XFS, btrfs) with the portable reader the firmware uses, without mounting anything.

PARTITION is a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=; without it the whole image is the filesystem
(or, for `info`, the partition table is listed). Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import stat as statmod
import sys
import time

from cloudboot.cliopts import add_json, add_verb, add_verb_group, print_json
from cloudboot.errors import CloudBootError

CHUNK = 1 << 20


def _split(spec: str) -> tuple[str, str | None]:
    """IMAGE[@PARTITION]: an existing path wins (image names may hold '@'), else split at the last '@'."""
    if os.path.exists(spec) or "@" not in spec:
        return spec, None
    image, _, part = spec.rpartition("@")
    return image, part


def open_device(spec: str):
    """(device, description) for IMAGE[@PARTITION]."""
    from diskfs.blockdev import FileDevice
    from diskfs.partition import find
    from diskfs.probe import resolve

    image, part = _split(spec)
    if not os.path.exists(image):
        raise CloudBootError(f"{image}: no such file")
    disk = FileDevice(image)
    if part is None:
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
    return diskfs.open(dev, devices=devices or None, **options)


def _table(dev, where: str) -> dict:
    """A disk's partition table and what each partition holds; CloudBootError when the image is neither a
    partitioned disk nor a filesystem (or container) we recognise."""
    from diskfs.partition import read_table
    from diskfs.probe import probe

    table = read_table(dev)
    if not table.scheme:
        kind, label, uuid = probe(dev)
        if not kind:
            raise CloudBootError(f"{where}: not a disk image: no partition table, and no filesystem or container "
                                 "that diskfs recognises")
        return {"device": where, "type": kind, "label": label, "uuid": uuid}
    parts = []
    for p in table.partitions:
        kind, label, uuid = probe(p.device(dev))
        parts.append({"number": p.number, "start": p.offset, "size": p.size, "type": kind, "label": label,
                      "uuid": uuid, "partlabel": p.name, "partuuid": p.part_guid})
    return {"device": where, "table": table.scheme, "disk_id": table.disk_id, "size": dev.size,
            "warnings": list(table.warnings), "partitions": parts}


def _info(args: argparse.Namespace) -> int:
    """A filesystem's superblock facts, or (for a whole disk) its partition table with what each partition
    holds. An image that is neither is an error."""
    import diskfs

    dev, where = open_device(args.image)
    whole_disk = diskfs.detect(dev) is None and _split(args.image)[1] is None
    if whole_disk:
        info = _table(dev, where)
    else:
        fs = open_fs(args)
        info = dict(fs.info())
        if hasattr(fs, "subvolumes"):
            info["subvolumes"] = [{"id": sid, "path": path} for sid, path in fs.subvolumes()]
    if args.json:
        print_json(info)
    elif whole_disk and "partitions" in info:
        print(f"{where}: {info['table']} disk {info['disk_id']}, {info['size']} bytes")
        for w in info["warnings"]:
            print(f"  warning: {w}")
        for p in info["partitions"]:
            print(f"  {p['number']:>3}  start {p['start']:>12}  size {p['size']:>12}  {p['type'] or '-':<10} "
                  f"label {p['label']!r}  uuid {p['uuid'] or '-'}  partlabel {p['partlabel']!r}  "
                  f"partuuid {p['partuuid'] or '-'}")
    elif whole_disk:
        print(f"{where}: {info['type']} label {info['label']!r} uuid {info['uuid']}")
    else:
        for key, value in info.items():
            if key != "subvolumes":
                print(f"{key}: {value}")
        for sv in info.get("subvolumes", []):
            print(f"subvolume {sv['id']}: {sv['path']}")
    return 0


def _entry(fs, name: str, path: str, follow: bool = False) -> dict:
    """An entry's inode fields, as `stat` and `ls --json` give them."""
    st = fs.stat(path, follow=follow)
    out = {"name": name, "type": statmod.filemode(st.st_mode)[0].replace("-", "f"),
           "mode": statmod.filemode(st.st_mode), "mode_octal": f"{st.st_mode:o}", "inode": st.st_ino,
           "links": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size, "mtime": st.st_mtime}
    if statmod.S_ISLNK(st.st_mode):
        out["target"] = fs.readlink(path)
    return out


def _line(e: dict) -> str:
    text = f"{e['mode']} {e['links']:>3} {e['uid']:>5} {e['gid']:>5} {e['size']:>12} " \
           f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(e['mtime']))} {e['name']}"
    return text + (" -> " + e["target"] if "target" in e else "")


def _ls(args: argparse.Namespace) -> int:
    """List a directory (or name one file), like ls(1)."""
    fs = open_fs(args)
    path = args.path
    if not fs.lookup(path).is_dir():
        entries = [_entry(fs, path, path, follow=True)]
    else:
        names = fs.listdir(path)
        entries = [_entry(fs, n, path.rstrip("/") + "/" + n) for n in names] if args.long or args.json else \
            [{"name": n} for n in names]
    if args.json:
        print_json(entries)
        return 0
    for e in entries:
        print(_line(e) if args.long else e["name"])
    return 0


def _cat(args: argparse.Namespace) -> int:
    """Write a file's bytes to stdout (symlinks followed)."""
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
    """An entry's type, mode, inode, links, owner, size and mtime."""
    e = _entry(open_fs(args), args.path, args.path, follow=args.follow)
    if args.json:
        print_json(e)
        return 0
    print(f"path: {args.path}")
    print(f"type: {e['type']}  mode: {e['mode']} ({e['mode_octal']})")
    print(f"inode: {e['inode']}  links: {e['links']}  uid: {e['uid']}  gid: {e['gid']}")
    print(f"size: {e['size']}")
    print(f"mtime: {e['mtime']} ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(e['mtime']))})")
    if "target" in e:
        print(f"target: {e['target']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `fs` verb and its info/ls/cat/stat subcommands."""
    verbs = add_verb_group(sub, "fs", "look inside a disk image or filesystem (ext2/3/4, XFS, btrfs) without mounting",
                           "Read disk images with the portable reader the firmware uses (no mount, no root). "
                           "IMAGE[@PARTITION] names a whole image or one partition: a number, LABEL=, UUID=, "
                           "PARTLABEL= or PARTUUID=.", "info|ls|cat|stat")
    q = {}
    for name, func, summary in (("info", _info, "a filesystem's type, label, UUID and layout, or a partition table"),
                                ("ls", _ls, "list a directory"), ("cat", _cat, "write a file's bytes to stdout"),
                                ("stat", _stat, "an entry's inode fields")):
        q[name] = add_verb(verbs, name, func, summary)
        q[name].add_argument("image", help="IMAGE[@PARTITION]: a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=")
        q[name].add_argument("--device", action="append", metavar="IMAGE",
                             help="another device of a multi-device btrfs (repeatable)")
        q[name].add_argument("--subvol", help="btrfs: a subvolume path (from the top level) or id instead of the "
                                              "default")
        if name != "cat":
            add_json(q[name])
    q["ls"].add_argument("path", nargs="?", default="/", help="the directory (default /)")
    q["ls"].add_argument("-l", "--long", action="store_true", help="mode, links, owner, size, mtime, link target")
    q["cat"].add_argument("path", help="the file")
    q["stat"].add_argument("path", help="the entry")
    q["stat"].add_argument("-L", "--follow", action="store_true", help="follow a final symlink")
