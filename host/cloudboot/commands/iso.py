"""`cloud-boot iso`: one hybrid image that boots on every arch given, from CD-ROM or as a disk."""

from __future__ import annotations

import argparse

import arches
from cloudboot.cliopts import add_esp_options, add_output, add_verb


def _run(args: argparse.Namespace) -> int:
    """One image that boots the given EFI apps on each arch from CD-ROM or as a disk: ISO9660 (Joliet, Rock
    Ridge) with a UEFI El Torito image that is also GPT partition 2 (the ESP), and a protective MBR."""
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.image.inputs import esp_inputs, parse_size
    from cloudboot.image.iso import build_iso
    from cloudboot.image.output import write_atomic

    built = {a.name: firmware_dir() / a.efi_name for a in arches.ARCHES} if args.from_build else None
    boot, extra = esp_inputs(args.efi, args.extra, built)
    image, layout = build_iso(boot, extra, parse_size(args.esp_size) if args.esp_size else None)
    write_atomic(args.output, image)
    print(f"{args.output}: {len(image)} bytes, {', '.join(p.rpartition('/')[2] for p in boot)}; ESP "
          f"{layout['esp_size']} bytes (FAT{layout['fat_type']}) at offset {layout['esp_offset']} (El Torito "
          "image = GPT partition 2)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `iso` verb."""
    p = add_verb(sub, "iso", _run, "build a hybrid ISO/GPT image booting the given EFI apps on each arch")
    add_esp_options(p)
    p.add_argument("--from-build", action="store_true",
                   help="every arch not given with --efi: build/firmware/BOOT<ARCH>.EFI")
    add_output(p, "the hybrid image", default="build/boot.iso")
