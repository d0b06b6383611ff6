"""A FAT ESP image holding given files, made with mtools (no root, no loop devices)."""

from __future__ import annotations

from pathlib import Path

from cloudboot.run import run, which


def make_esp(image: Path, files: dict[str, Path], size_mb: int = 64) -> Path:
    """Create `image` (FAT, `size_mb`) with each destination path -> source file copied in."""
    which("mkfs.vfat", "building an ESP image")
    which("mcopy", "building an ESP image")
    image.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", "ESP", image, str(size_mb * 1024)], quiet=True)
    dirs: set[str] = set()
    for dest in files:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    for d in sorted(dirs, key=len):
        run(["mmd", "-i", image, f"::/{d}"], quiet=True)
    for dest, src in files.items():
        run(["mcopy", "-i", image, src, f"::/{dest.strip('/')}"], quiet=True)
    return image
