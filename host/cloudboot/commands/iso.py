"""`cloud-boot iso`: one hybrid image that boots on every arch given, from CD-ROM or as a disk."""

from __future__ import annotations

import argparse
from pathlib import Path

import arches


def _run(args: argparse.Namespace) -> int:
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.image.inputs import esp_inputs, parse_size
    from cloudboot.image.iso import build_iso
    from cloudboot.image.output import write_atomic

    built = {a.name: firmware_dir() / a.efi_name for a in arches.ARCHES} if args.from_build else None
    boot, extra = esp_inputs(args.efi, args.extra, built)
    image, layout = build_iso(boot, extra, parse_size(args.esp_size) if args.esp_size else None)
    out = Path(args.output)
    write_atomic(out, image)
    print(f"{out}: {len(image)} bytes, {', '.join(p.rpartition('/')[2] for p in boot)}; ESP {layout['esp_size']} bytes "
          f"(FAT{layout['fat_type']}) at offset {layout['esp_offset']} (El Torito image = GPT partition 2)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `iso` verb."""
    p = sub.add_parser("iso", help="build a hybrid ISO/GPT image booting the given EFI apps on each arch",
                       description="ISO9660 (Joliet, Rock Ridge) with a UEFI El Torito image that is "
                                   "also GPT partition 2 (the ESP), and a protective MBR with 0x55AA.")
    p.add_argument("--efi", action="append", default=[], metavar="linux/ARCH=PATH",
                   help="an EFI application for an arch (amd64/x86_64, arm64/aarch64, riscv64, "
                        "loong64/loongarch64; repeatable); it becomes \\EFI\\BOOT\\BOOT<ARCH>.EFI")
    p.add_argument("--from-build", action="store_true",
                   help="every arch not given with --efi: build/firmware/BOOT<ARCH>.EFI")
    p.add_argument("--extra", action="append", default=[], metavar="SRC=DST",
                   help="another file for the ESP, e.g. uki.efi=EFI/Linux/cloud-boot.efi (repeatable)")
    p.add_argument("--esp-size", metavar="SIZE",
                   help="ESP size (e.g. 64M; default: files x 3/2 + 8M, rounded up to 16M)")
    p.add_argument("-o", "--output", default="build/boot.iso", help="output image (default build/boot.iso)")
    p.set_defaults(func=_run)
