"""Build the minimal C "hello" EFI app (bench/hello/hello.c) with the firmware's own toolchain."""

from __future__ import annotations

from pathlib import Path

import arches
from cloudboot.fwbuild import elf2efi
from cloudboot.fwbuild.cross import BASE_CFLAGS, BASE_LDFLAGS
from cloudboot.paths import ROOT
from cloudboot.run import run
from cloudboot.toolchain import zig

SOURCE = ROOT / "bench" / "hello" / "hello.c"


def build_hello(arch: str, out_dir: Path) -> Path:
    """Compile, link (static PIE) and convert hello.c for `arch`; returns the .efi path."""
    a = arches.get(arch)
    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / f"hello-{a.name}.elf"
    efi = out_dir / f"hello-{a.name}.efi"
    run([zig.zig_exe(), "cc", "-target", f"{a.name}-freestanding", *BASE_CFLAGS, *a.cflags, "-Os",
         *BASE_LDFLAGS, "-o", elf, SOURCE], quiet=True)
    elf2efi.convert(elf, efi)
    return efi
