"""Reference tools the tests compare our output with, when Debian ships them only in a newer suite."""

from __future__ import annotations

from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.toolchain import apt


def ukify() -> Path:
    """systemd's ukify script (trixie's arch-independent systemd-ukify, unpacked in the cache)."""
    root = cache_dir() / "oracles" / "systemd-ukify"
    script = root / "usr/lib/systemd/ukify"
    if not script.is_file():
        debs = apt.PrivateApt("trixie", ["trixie"]).download(["systemd-ukify"], cache_dir() / "oracles" / "debs")
        for deb in debs:
            if deb.name.startswith("systemd-ukify_"):
                apt.extract_deb(deb, root)
    if not script.is_file():
        raise CloudBootError(f"systemd-ukify did not provide {script}")
    return script
