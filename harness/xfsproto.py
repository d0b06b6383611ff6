"""mkfs.xfs protofiles: mkfs.xfs 6.1 (Debian 12) fills a new filesystem only from a protofile (`-p`), not
from a directory as mke2fs -d and mkfs.btrfs --rootdir do. Used by the init trial's target disks and the
test images."""

from __future__ import annotations

import os
from pathlib import Path


def protofile(tree: Path, out: Path, replace: dict[str, Path] | None = None) -> Path:
    """mkfs.xfs -p input describing `tree` (mkfs.xfs 6.1 cannot populate from a directory; hard links become
    copies). `replace` maps a path to another source file (for sparse files xfs_db finishes)."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]
    replace = replace or {}

    def walk(d: Path, depth: int, rel: str) -> None:
        for p in sorted(d.iterdir()):
            ind = " " * depth
            path = rel + "/" + p.name
            if p.is_symlink():
                lines.append(f"{ind}{p.name} l--777 0 0 {os.readlink(p)}")
            elif p.is_dir():
                lines.append(f"{ind}{p.name} d--755 0 0")
                walk(p, depth + 1, path)
                lines.append(f"{ind}$")
            else:
                lines.append(f"{ind}{p.name} ---644 0 0 {replace.get(path, p)}")

    walk(tree, 1, "")
    lines.append("$")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
