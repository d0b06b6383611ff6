"""Linux guests for boot tests: Debian's kernel for the arch (the one the init's initramfs is built for, from
the suite the `arches` table names) and a tiny busybox initrd whose /init prints a marker and /proc/cmdline,
then powers off. Downloaded once through the private apt config and cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.image.output import write_atomic
from cloudboot.initramfs import cpio, debian
from cloudboot.paths import cache_dir

MARKER = "CLOUDBOOT-TEST-INITRD-OK"


def marker_init(marker: str, label: str = "cmdline") -> str:
    """A busybox /init that prints `marker`, then `<label>: <its /proc/cmdline>`, and powers off (the tests'
    proof that a kernel they handed over really ran, with the command line it got)."""
    return f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "{marker}"
echo "{label}: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""


INIT = marker_init(MARKER)


@dataclass(frozen=True)
class Guest:
    """A kernel (EFI stub image) and a test initrd for one arch."""

    arch: str
    kernel: Path
    initrd: Path
    version: str


def busybox_initrd(arch: str, init: str, out: Path) -> Path:
    """Debian's busybox-static for `arch` with `init` as /init, as a newc cpio (our writer) at `out`; made
    again only when the package or the script changed."""
    archive = debian.Archive(arch)
    deb = archive.fetch(["busybox-static"])[0]
    key = deb.path.name + init
    stamp = out.with_suffix(".key")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    a = cpio.Archive()
    a.file("bin/busybox", archive.unpack(deb) / "usr/bin/busybox", 0o755)
    a.file("init", init.encode(), 0o755)
    a.dir("proc")
    a.dir("dev")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, a.to_bytes())
    stamp.write_text(key)
    return out


def guest(arch: str) -> Guest:
    """Kernel + test initrd for arch (any spelling), from the cache or downloaded now."""
    a = arches.get(arch)
    kernel, release = debian.kernel_image(a.name)
    return Guest(a.name, kernel, busybox_initrd(a.name, INIT, cache_dir() / "test-initrd" / a.name / "initrd.cpio"),
                 release)
