"""MicroPython 1.25.0 from Debian's `micropython` source package: fetched, sha256-checked, unpacked, built.

The `+ds` tarball has no git metadata and empty submodules; `dpkg-source -x` applies Debian's quilt patches
that make it buildable (fixed mpversion, no micropython-lib requirement). `MICROPY_DIR=` uses another tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from cloudboot.paths import build_dir
from cloudboot.run import run, which
from cloudboot.toolchain import debsource

VERSION = "1.25.0"
DEB_VERSION = "1.25.0+ds-1"
SUITE = "trixie"
#: The three files of the source package, pinned (the .dsc itself also carries their checksums).
PINNED = {
    "micropython_1.25.0+ds.orig.tar.xz": "7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea",
    "micropython_1.25.0+ds-1.debian.tar.xz": "87cd89f7900c86b963885dabe25acf3e5348815993f1500278ad8f6464465af4",
    "micropython_1.25.0+ds-1.dsc": "8c7c406be88a6f3bc19e694eb0bbc5841112243fdf2b5a296e000d8fdc5f3c34",
}


def source_dir() -> Path:
    """The MicroPython tree to build from: MICROPY_DIR, or the pinned Debian source unpacked in the cache."""
    return debsource.tree("micropython", DEB_VERSION, SUITE, PINNED, "MICROPY_DIR", "py/mpconfig.h")


def _jobs() -> str:
    return str(os.cpu_count() or 2)


def mpy_cross() -> Path:
    """Build (once) and return mpy-cross from the same tree as the firmware."""
    src = source_dir()
    exe = src / "mpy-cross" / "build" / "mpy-cross"
    if not exe.is_file():
        which("make")
        run(["make", "-C", src / "mpy-cross", f"-j{_jobs()}"], quiet=True)
    return exe


def unix_port() -> Path:
    """Build (once) the unix port used to run the portable modules' tests under MicroPython."""
    src = source_dir()
    out = build_dir() / "micropython-unix"
    exe = out / "obj" / "micropython"
    if exe.is_file():
        return exe
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.py"
    manifest.write_text("# nothing frozen: tests import the portable modules from MICROPYPATH\n")
    run(["make", "-C", src / "ports/unix", f"-j{_jobs()}", f"BUILD={out / 'obj'}", "PROG=micropython",
         "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0", "MICROPY_SSL_AXTLS=0", "MICROPY_SSL_MBEDTLS=0",
         "MICROPY_PY_FFI=0", f"FROZEN_MANIFEST={manifest}"], quiet=True)
    return exe
