"""The real `cosign` CLI (for interoperability tests): the system's, else Debian trixie's package unpacked into
the cache through a private APT configuration (bookworm has no cosign; the binary is static Go)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cloudboot.paths import cache_dir
from cloudboot.toolchain.apt import PrivateApt, extract_deb

SUITE = "trixie"


def cosign_exe() -> Path:
    """Path of a cosign binary, downloading Debian's package once if the system has none."""
    found = shutil.which("cosign")
    if found:
        return Path(found)
    root = cache_dir() / "cosign" / SUITE
    exe = root / "usr" / "bin" / "cosign"
    if exe.exists():
        return exe
    debs = PrivateApt(f"{SUITE}-cosign", [SUITE]).download(["cosign"], cache_dir() / "cosign" / "debs")
    for deb in debs:
        if deb.name.startswith("cosign_"):
            extract_deb(deb, root)
    if not exe.exists():
        from cloudboot.errors import CloudBootError

        raise CloudBootError(f"cosign: Debian {SUITE}'s package did not provide usr/bin/cosign")
    return exe
