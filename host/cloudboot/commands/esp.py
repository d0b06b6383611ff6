"""`cloud-boot esp`: a FAT EFI System Partition image (per-arch boot files plus any other files), no root."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_esp_options, add_output, add_verb


def _run(args: argparse.Namespace) -> int:
    """A FAT EFI System Partition image holding the given EFI apps as \\EFI\\BOOT\\BOOT<ARCH>.EFI and any other
    files; FAT16 below 512 MiB, FAT32 from there (firmware types FAT by cluster count)."""
    from cloudboot.image.esp import build_esp, fat_info, fat_label
    from cloudboot.image.inputs import esp_inputs, parse_size
    from cloudboot.image.output import write_atomic

    fat_label(args.label)  # before any input is read
    boot, extra = esp_inputs(args.efi, args.extra, need_efi=False)
    files = {**boot, **extra}
    image = build_esp(files, parse_size(args.esp_size) if args.esp_size else None, label=args.label)
    write_atomic(args.output, image)
    info = fat_info(image)
    print(f"{args.output}: {len(image)} bytes, FAT{info.fat_type} ({info.clusters} clusters of "
          f"{info.cluster_size} bytes), {len(files)} files")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `esp` verb."""
    p = add_verb(sub, "esp", _run, "build a FAT ESP image with \\EFI\\BOOT\\BOOT<ARCH>.EFI files and extras")
    add_esp_options(p)
    p.add_argument("--label", default="ESP", help="volume label: 1 to 11 ASCII characters, stored upper case "
                   "(default ESP)")
    add_output(p, "the ESP image")
