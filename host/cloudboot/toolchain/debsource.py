"""Pinned Debian source packages: fetched once through a private apt config, sha256-checked, unpacked.

C code we build on but do not keep in the repository (MicroPython, libzstd) comes from here: `dpkg-source -x`
applies Debian's patches, and the three pinned files (.dsc, orig and debian tarballs) must match exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.run import run, which
from cloudboot.toolchain import apt


def sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpacked(package: str, version: str, suite: str, pinned: dict[str, str]) -> Path:
    """The unpacked tree of source package `package` at `version` from `suite`, whose files match `pinned`
    (file name -> sha256); downloaded and unpacked under the cache on first use."""
    root = cache_dir() / package / version
    tree = root / "src"
    if (tree / ".unpacked").exists():
        return tree
    dl = root / "dl"
    if not all((dl / n).is_file() and sha256(dl / n) == h for n, h in pinned.items()):
        apt.PrivateApt(f"{suite}-src", [suite], deb_src=True).source(f"{package}={version}", dl)
    for name, want in pinned.items():
        got = sha256(dl / name)
        if got != want:
            raise CloudBootError(f"{dl / name}: sha256 {got} does not match the pinned {want}")
    which("dpkg-source")
    if tree.exists():
        shutil.rmtree(tree)
    dsc = next(n for n in pinned if n.endswith(".dsc"))
    run(["dpkg-source", "--no-check", "-x", dl / dsc, tree], quiet=True)
    (tree / ".unpacked").write_text(version + "\n")
    return tree


def tree(package: str, version: str, suite: str, pinned: dict[str, str], env: str, marker: str) -> Path:
    """The source tree to build from: $env when set (checked for the file `marker`), else the pinned package."""
    if os.environ.get(env):
        path = Path(os.environ[env]).resolve()
        if not (path / marker).is_file():
            raise CloudBootError(f"{env}={path} is not a {package} source tree (no {marker})")
        return path
    return unpacked(package, version, suite, pinned)
