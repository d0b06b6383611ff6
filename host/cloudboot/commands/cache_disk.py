"""`cloud-boot cache-disk -o FILE`: the Path C cache disk image (GPT, one FAT32 ESP named cloud-boot-cache)."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_json, add_output, add_verb, print_json


def _run(args: argparse.Namespace) -> int:
    """A GPT disk image with one FAT32 EFI System Partition named cloud-boot-cache holding \\EFI\\Linux (the
    original's make-cache-disk.sh). Attach it to the machine; with cloudboot.exit=reboot the init stages
    targets there and boots them through a boot entry. An existing cache disk is left untouched; any other
    file is refused unless --force. The image file is raw (default) or qcow2 (--format qcow2: only what is
    written takes room). It is written under a temporary name and renamed into place."""
    from cloudboot.image import cachedisk

    what = cachedisk.make(args.output, args.size, args.force, args.format)
    if args.json:
        print_json({"status": what, **cachedisk.describe(args.output)})
    elif what == "exists":
        print(f"{args.output}: already a cache disk, left untouched")
    else:
        print(f"{args.output}: {what}: {args.format}, {args.size} MiB, GPT, FAT32 ESP {cachedisk.CACHE_NAME!r} "
              "with \\EFI\\Linux")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `cache-disk` verb."""
    p = add_verb(sub, "cache-disk", _run, "make the disk image Path C stages targets on (cloudboot.exit=reboot)")
    p.add_argument("--size", type=int, default=256, metavar="MiB", help="image size in MiB (default 256, at least 64)")
    p.add_argument("--format", choices=["raw", "qcow2"], default="raw",
                   help="the image file's format (default raw)")
    p.add_argument("--force", action="store_true", help="replace a file that is not a cache disk (in this format)")
    add_output(p, "the cache disk image")
    add_json(p)
