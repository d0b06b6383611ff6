"""`cloud-boot firmware`: build BOOT<ARCH>.EFI for one, several or all arches."""

from __future__ import annotations

import argparse
import time

from cloudboot.cliopts import add_arch, add_verb
from cloudboot.fwbuild import firmware


def _run(args: argparse.Namespace) -> int:
    """Cross-compile MicroPython's UEFI port with zig, freeze the Python modules, and convert the ELF into
    build/firmware/BOOT<ARCH>.EFI, for each arch asked."""
    for arch in args.arch:
        t0 = time.monotonic()
        efi = firmware.build(arch, heap_mb=args.heap_mb)
        print(f"{efi}: {efi.stat().st_size} bytes ({time.monotonic() - t0:.1f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "firmware", _run, "build the MicroPython UEFI firmware (BOOT<ARCH>.EFI)")
    add_arch(p, "the arches to build (default all)", many=True, default="all")
    p.add_argument("--heap-mb", type=int, default=firmware.DEFAULT_HEAP_MB,
                   help="initial GC heap in MiB (it grows on demand up to 2 GiB)")
