"""Linux guests for boot tests: Debian's kernel for the arch (the one the init's initramfs is built for, from
the suite the `arches` table names) and a tiny busybox initrd whose /init prints a marker and /proc/cmdline,
then powers off. Downloaded once through the private apt config and cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.initramfs import debian
from cloudboot.initramfs.busybox import busybox_initrd
from cloudboot.paths import cache_dir

MARKER = "CLOUDBOOT-TEST-INITRD-OK"


def marker_init(marker: str, label: str = "cmdline", then: str = "") -> str:
    """A busybox /init that prints `marker`, then `<label>: <its /proc/cmdline>`, runs the shell lines `then`
    and powers off (the tests' proof that a kernel they handed over really ran, with the command line it got)."""
    return f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "{marker}"
echo "{label}: $(/bin/busybox cat /proc/cmdline)"
{then}/bin/busybox poweroff -f
"""


INIT = marker_init(MARKER)


@dataclass(frozen=True)
class Guest:
    """A kernel (EFI stub image) and a test initrd for one arch."""

    arch: str
    kernel: Path
    initrd: Path
    version: str


def guest(arch: str) -> Guest:
    """Kernel + test initrd for arch (any spelling), from the cache or downloaded now."""
    a = arches.get(arch)
    kernel, release = debian.kernel_image(a.name)
    return Guest(a.name, kernel, busybox_initrd(a.name, INIT, cache_dir() / "test-initrd" / a.name / "initrd.cpio"),
                 release)
