"""`cloud-boot firmware`: build BOOT<ARCH>.EFI for one, several or all arches."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cloudboot.cliopts import add_arch, add_verb
from cloudboot.fwbuild import firmware


def _run(args: argparse.Namespace) -> int:
    """Cross-compile MicroPython's UEFI port with zig, freeze the Python modules, and convert the ELF into
    build/firmware/BOOT<ARCH>.EFI, for each arch asked; append the TLS roots and the cosign key."""
    key = firmware.cosign_key_section(args.cosign_key) if args.cosign_key else None
    cacerts = firmware.ca_section(args.ca_file)
    for arch in args.arch:
        t0 = time.monotonic()
        efi = firmware.build(arch, heap_mb=args.heap_mb)
        firmware.add_sections(efi, cacerts, key)
        print(f"{efi}: {efi.stat().st_size} bytes ({time.monotonic() - t0:.1f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "firmware", _run, "build the MicroPython UEFI firmware (BOOT<ARCH>.EFI)")
    add_arch(p, "the arches to build (default all)", many=True, default="all")
    p.add_argument("--heap-mb", type=int, default=firmware.DEFAULT_HEAP_MB,
                   help="initial GC heap in MiB (it grows on demand up to 2 GiB)")
    p.add_argument("--cosign-key", type=Path, metavar="PEM",
                   help="cosign.pub (ECDSA P-256): network boots verify plans and artifacts with it (.cosign "
                        "section; cloudboot.cosign=enforce|warn|off, default enforce)")
    p.add_argument("--ca-file", type=Path, action="append", default=[], metavar="PEM",
                   help="more TLS roots for https registries, besides Debian's ca-certificates (.cacerts section)")
