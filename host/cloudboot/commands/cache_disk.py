"""`cloud-boot cache-disk PATH`: the Path C cache disk image (GPT, one FAT32 ESP named cloud-boot-cache)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from cloudboot.image import cachedisk

    what = cachedisk.make(args.path, args.size, args.force)
    if args.json:
        print(json.dumps({"status": what, **cachedisk.describe(args.path)}, indent=1))
    elif what == "exists":
        print(f"{args.path}: already a cache disk, left untouched")
    else:
        print(f"{args.path}: {what}: {args.size} MiB, GPT, FAT32 ESP {cachedisk.CACHE_NAME!r} with \\EFI\\Linux")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `cache-disk` verb."""
    p = sub.add_parser("cache-disk", help="make the disk image Path C stages targets on (cloudboot.exit=reboot)",
                       description="A GPT disk image with one FAT32 EFI System Partition named cloud-boot-cache "
                                   "holding \\EFI\\Linux (the original's make-cache-disk.sh). Attach it to the "
                                   "machine; the init stages targets there and boots them through a boot entry. "
                                   "An existing cache disk is left untouched; any other file is refused unless "
                                   "--force.")
    p.add_argument("path", type=Path, metavar="PATH", help="the image file to create")
    p.add_argument("--size", type=int, default=256, metavar="MiB", help="image size in MiB (default 256, at least 64)")
    p.add_argument("--force", action="store_true", help="replace a file that is not a cache disk")
    p.add_argument("--json", action="store_true", help="print the disk's layout as JSON")
    p.set_defaults(func=_run)
