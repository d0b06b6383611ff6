"""`cloud-boot deps`: install or check every external part (idempotent, safe to re-run)."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_verb


def _run(args: argparse.Namespace) -> int:
    """Install what building and testing need, once (Debian packages, MicroPython and libzstd source, zig,
    QEMU >= 9 and EDK2 for every arch); later runs only check. Safe to re-run."""
    from cloudboot.toolchain.setup import ensure_all

    ensure_all(firmware_tests=not args.no_qemu)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "deps", _run, "install/check the toolchain: MicroPython source, zig, QEMU, EDK2")
    p.add_argument("--no-qemu", action="store_true",
                   help="only what building needs: skip QEMU, EDK2 and the MicroPython unix port (tests)")
