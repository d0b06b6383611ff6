"""`cloud-boot fs info|ls|cat|stat IMAGE[@PARTITION] [PATH]`: look inside disk images (raw, qcow2, UDIF) and
filesystems (ext2/3/4, XFS, btrfs, ZFS; under LUKS with --passphrase-file or --key-file) with the portable
reader the firmware uses, without mounting anything.

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
from cloudboot.cliopts import add_json, add_verb, add_verb_group, print_json
from cloudboot.errors import CloudBootError

CHUNK = 1 << 20


def open_fs(args: argparse.Namespace):
    import diskfs
    from cloudboot.diskimage import open_image
    from cloudboot.diskimage.address import open_target

    target = open_target(args.image, datasets=True)
    options = disksecrets.options(args.passphrase_file, args.key_file, args.luks_limit)
    if getattr(args, "subvol", None):
        options["subvol"] = int(args.subvol) if args.subvol.isdigit() else args.subvol
    devices = [open_image(p) for p in getattr(args, "device", None) or []]
    if target.dataset:  # a ZFS pool: its other devices, like this one, on the images or in their partition 1
        from diskfs.zfslabel import member

        options["dataset"] = target.dataset
        devices = [member(d) or d for d in devices]
    return diskfs.open(target.device, devices=devices or None, **options)


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
    from cloudboot.diskimage.address import open_target, split

    target = open_target(args.image, datasets=True)
    dev, where = target.device, target.where
    keyed = args.passphrase_file or args.key_file  # then a container is opened and what is inside described
    whole_disk = diskfs.detect(dev) is None and split(args.image)[1] is None and not keyed
    image = target.disk.info()
    if whole_disk:
        info = _table(dev, where)
    else:
        fs = open_fs(args)
        info = dict(fs.info())
        if hasattr(fs, "subvolumes"):
            info["subvolumes"] = [{"id": sid, "path": path} for sid, path in fs.subvolumes()]
        if hasattr(fs, "snapshots"):
            info["snapshots"] = list(fs.snapshots())
    if image["format"] != "raw":
        info["image"] = image
    if args.json:
        print_json(info)
    elif whole_disk and "partitions" in info:
        print(f"{where}: {_image_line(image)}{info['table']} disk {info['disk_id']}, {info['size']} bytes")
        for w in info["warnings"]:
            print(f"  warning: {w}")
        for p in info["partitions"]:
            print(f"  {p['number']:>3}  start {p['start']:>12}  size {p['size']:>12}  {p['type'] or '-':<10} "
                  f"label {p['label']!r}  uuid {p['uuid'] or '-'}  partlabel {p['partlabel']!r}  "
                  f"partuuid {p['partuuid'] or '-'}")
    elif whole_disk:
        print(f"{where}: {_image_line(image)}{info['type']} label {info['label']!r} uuid {info['uuid']}")
    else:
        if image["format"] != "raw":
            print(f"image: {_image_line(image)[:-2]}")
        for key, value in info.items():
            if key not in ("subvolumes", "snapshots", "image"):
                print(f"{key}: {value}")
        for sv in info.get("subvolumes", []):
            print(f"subvolume {sv['id']}: {sv['path']}")
        if "snapshots" in info:
            print(f"snapshots: {', '.join(info['snapshots']) or '-'}")
    return 0


def _image_line(image: dict) -> str:
    """'qcow2 image (v3, 64 MiB virtual, backing base.qcow2), ' or '' for a raw image."""
    if image["format"] == "raw":
        return ""
    facts = [f"v{image['version']}"] if "version" in image else [image.get("variant", "")]
    facts.append(f"{image['virtual_size']} bytes virtual")
    if image.get("backing_file"):
        facts.append(f"backing {image['backing_file']}")
    return f"{image['format']} image ({', '.join(facts)}), "


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
    verbs = add_verb_group(sub, "fs", "look inside a disk image or filesystem (ext2/3/4, XFS, btrfs, ZFS, LUKS) "
                           "without mounting",
                           "Read disk images with the portable reader the firmware uses (no mount, no root). "
                           "IMAGE[@PARTITION] names a whole image or one partition: a number, LABEL=, UUID=, "
                           "PARTLABEL= or PARTUUID=; IMAGE@POOL/DATASET[@SNAPSHOT] names a ZFS dataset. LUKS "
                           "opens with --passphrase-file or --key-file.", "info|ls|cat|stat")
    q = {}
    for name, func, summary in (("info", _info, "a filesystem's type, label, UUID and layout, or a partition table"),
                                ("ls", _ls, "list a directory"), ("cat", _cat, "write a file's bytes to stdout"),
                                ("stat", _stat, "an entry's inode fields")):
        q[name] = add_verb(verbs, name, func, summary)
        q[name].add_argument("image", help="IMAGE[@PARTITION]: a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=; "
                                           "IMAGE@POOL/DATASET[@SNAPSHOT] for ZFS")
        q[name].add_argument("--device", action="append", metavar="IMAGE",
                             help="another device of a multi-device btrfs or ZFS pool (repeatable)")
        q[name].add_argument("--subvol", help="btrfs: a subvolume path (from the top level) or id instead of the "
                                              "default")
        q[name].add_argument("--passphrase-file", metavar="FILE", help="LUKS or encrypted ZFS: the passphrase is "
                                                                      "this file's first line ('-': standard input)")
        q[name].add_argument("--key-file", metavar="FILE", help="LUKS or encrypted ZFS: a key file, its exact "
                                                               "bytes (cryptsetup's key file; ZFS's raw or hex key)")
        q[name].add_argument("--luks-limit", action="append", metavar="NAME=N",
                             help="raise a LUKS header limit: max_iterations, max_memory_kib, max_time, "
                                  "max_threads, max_stripes (repeatable)")
        if name != "cat":
            add_json(q[name])
    q["ls"].add_argument("path", nargs="?", default="/", help="the directory (default /)")
    q["ls"].add_argument("-l", "--long", action="store_true", help="mode, links, owner, size, mtime, link target")
    q["cat"].add_argument("path", help="the file")
    q["stat"].add_argument("path", help="the entry")
    q["stat"].add_argument("-L", "--follow", action="store_true", help="follow a final symlink")
