"""Filesystem images made by the real mkfs tools, built once and cached under build/test-images by recipe.

Portable tests find them through $CLOUDBOOT_TESTDATA (set by tests/conftest.py), on CPython and MicroPython."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from cloudboot.paths import build_dir

VERSION = "7"  # bump when a recipe changes


def _sh(*cmd: str, cwd: Path | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def _tree(root: Path) -> None:
    (root / "boot").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(bytes(i * 7 % 256 for i in range(3_000_000)))
    (root / "boot/vmlinuz-6.12.117-amd64").write_bytes(bytes(i * 11 % 256 for i in range(1_500_000)))
    (root / "boot/initrd.img-6.12.117-amd64").write_bytes(b"070701" + bytes(100_000))
    (root / "vmlinuz").symlink_to("boot/vmlinuz-6.12.117-amd64")
    (root / "etc/long-link").symlink_to("/boot/" + "x" * 80)  # a slow symlink (target > 60 bytes)
    (root / "etc/hostname").write_text("cloud-boot\n")
    for i in range(400):  # enough entries for an htree directory
        (root / "etc" / f"file-{i:04d}").write_text(f"{i}\n")
    with open(root / "etc/sparse", "wb") as f:
        f.seek(5_000_000)
        f.write(b"end")


def _protofile(tree: Path, out: Path) -> Path:
    """mkfs.xfs -p input describing `tree` (mkfs.xfs on Debian 12 cannot populate from a directory)."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]

    def walk(d: Path, depth: int) -> None:
        for p in sorted(d.iterdir()):
            ind = " " * depth
            if p.is_symlink():
                lines.append(f"{ind}{p.name} l--777 0 0 {os.readlink(p)}")
            elif p.is_dir():
                lines.append(f"{ind}{p.name} d--755 0 0")
                walk(p, depth + 1)
                lines.append(f"{ind}$")
            else:
                lines.append(f"{ind}{p.name} ---644 0 0 {p}")

    walk(tree, 1)
    lines.append("$")
    out.write_text("\n".join(lines) + "\n")
    return out


def build() -> Path:
    """The directory holding every test image (built now if the cache is stale)."""
    out = build_dir() / "test-images"
    stamp = out / "stamp"
    key = hashlib.sha256((VERSION + Path(__file__).read_text()).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return out
    shutil.rmtree(out, ignore_errors=True)
    tree = out / "tree"
    _tree(tree)
    for name, mkfs in {"ext4-4k.img": ["mkfs.ext4", "-O", "64bit", "-b", "4096"],
                       "ext4-1k.img": ["mkfs.ext4", "-b", "1024"],
                       "ext3.img": ["mkfs.ext3"], "ext2.img": ["mkfs.ext2"]}.items():
        img = out / name
        with open(img, "wb") as f:
            f.truncate(32 << 20)
        _sh(*mkfs, "-q", "-F", "-L", name.split(".")[0].upper(), "-U", "01234567-89ab-cdef-0123-456789abcdef",
            "-d", str(tree), str(img))
    proto = _protofile(tree, out / "xfs.proto")
    for name, opts in {"xfs-v5.img": [], "xfs-v4.img": ["-m", "crc=0"]}.items():
        img = out / name
        with open(img, "wb") as f:
            f.truncate(300 << 20)  # XFS's minimum size
        _sh("mkfs.xfs", "-q", "-f", *opts, "-L", name.split(".")[0].upper(), "-p", str(proto), str(img))
    btrfs = out / "btrfs.img"
    with open(btrfs, "wb") as f:
        f.truncate(200 << 20)
    _sh("mkfs.btrfs", "-q", "-f", "-L", "BTRFS", "--rootdir", str(tree), str(btrfs))
    vfat = out / "vfat.img"
    _sh("mkfs.vfat", "-C", "-n", "CBESP", "-i", "1234ABCD", str(vfat), "8192")
    luks = out / "luks2.img"
    with open(luks, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--label", "cbcrypt",
                    "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", str(luks), "-"], input=b"secret",
                   check=True, capture_output=True)
    # A fragmented file: fill with small files, delete every other one, then write a big file into the holes.
    # The filesystem is only just big enough, so the big file can only go into the 4 KiB holes: its extent
    # tree gets an index level.
    frag = out / "ext4-frag.img"
    with open(frag, "wb") as f:
        f.truncate(3900 << 10)
    small = out / "small"
    small.mkdir()
    for i in range(600):
        (small / f"s{i:03d}").write_bytes(bytes([i % 256]) * 4096)
    _sh("mkfs.ext4", "-q", "-F", "-b", "1024", "-N", "700", "-O", "^has_journal", "-d", str(small), str(frag))
    (out / "rm.cmds").write_text("".join(f"rm /s{i:03d}\n" for i in range(0, 600, 2)))
    _sh("debugfs", "-w", "-f", str(out / "rm.cmds"), str(frag))
    (out / "big.bin").write_bytes(bytes(i * 13 % 251 for i in range(1_000_000)))
    _sh("debugfs", "-w", "-R", f"write {out / 'big.bin'} big.bin", str(frag))
    # needs_recovery set: must be refused, not read stale
    dirty = out / "ext4-dirty.img"
    shutil.copyfile(out / "ext4-4k.img", dirty)
    _sh("debugfs", "-w", "-R", "feature needs_recovery", str(dirty))
    # A GPT disk with the ext4 filesystem in partition 2
    disk = out / "gpt-disk.img"
    with open(disk, "wb") as f:
        f.truncate(48 << 20)
    _sh("sgdisk", "-n", "1:2048:+4M", "-t", "1:ef00", "-c", "1:EFI", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root",
        str(disk))
    part = out / "ext4-1k.img"
    with open(disk, "r+b") as f, open(part, "rb") as src:
        f.seek((2048 + 8192) * 512)
        f.write(src.read()[: (48 << 20) - (2048 + 8192) * 512 - 34 * 512])
    stamp.write_text(key)
    return out
