"""`cloud-boot esp`: a FAT EFI System Partition image (per-arch boot files plus any other files), no root."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from cloudboot.image.esp import build_esp, fat_info
    from cloudboot.image.inputs import esp_inputs, parse_size
    from cloudboot.image.output import write_atomic

    boot, extra = esp_inputs(args.efi, args.extra, need_efi=False)
    files = {**boot, **extra}
    image = build_esp(files, parse_size(args.size) if args.size else None, label=args.label)
    write_atomic(args.output, image)
    info = fat_info(image)
    print(f"{args.output}: {len(image)} bytes, FAT{info.fat_type} ({info.clusters} clusters of "
          f"{info.cluster_size} bytes), {len(files)} files")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `esp` verb."""
    p = sub.add_parser("esp", help="build a FAT ESP image with \\EFI\\BOOT\\BOOT<ARCH>.EFI files and extras",
                       description="FAT16 below 512 MiB, FAT32 from there "
                                   "(firmware types FAT by cluster count).")
    p.add_argument("--efi", action="append", default=[], metavar="linux/ARCH=PATH",
                   help="an EFI application for an arch (repeatable): \\EFI\\BOOT\\BOOT<ARCH>.EFI")
    p.add_argument("--extra", action="append", default=[], metavar="SRC=DST",
                   help="another file (repeatable)")
    p.add_argument("--size", help="image size (e.g. 64M; default: files x 3/2 + 8M, rounded up to 16M)")
    p.add_argument("--label", default="ESP", help="volume label (default ESP)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_run)
