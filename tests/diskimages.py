"""Disk image fixtures (qcow2 and UDIF) made from the filesystem test images (tests/portable/images.py) by the real
tools: `qemu-img convert` (plain, zlib- and zstd-compressed, version 2, extended L2), `qemu-img create -b` and
`qemu-io` for backing chains, pydmg (the apple-dmg crate) for a UDZO image it lays out itself, and
tests/udifwrite.py for the UDIF variants no tool here writes. Each is rebuilt only when its recipe, its source
image or qemu-img's version changes (a key stored next to it), under ~/.cache/cloud-boot/test-images/diskimages.

`build()` returns the directory; `raw(name)` the raw disk an image must read as.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import subprocess
from pathlib import Path

from tests.udifwrite import write as udif_write

SOURCES = {"multi": "gpt-multi.img", "ext4": "ext4-4k.img", "ext4-1k": "ext4-1k.img"}


def seven_zip() -> str:
    """7-Zip's command (an oracle for UDIF, lzfse and xz chunks included): `7zz` in Debian 12's `7zip`, `7z` in
    Debian 13's, where 7-Zip took p7zip's names."""
    for name in ("7zz", "7z"):
        if shutil.which(name):
            return name
    raise RuntimeError("7-Zip (7zz or 7z) is missing: install Debian's 7zip (make deps does)")


def _sh(*cmd) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def convert(out: Path, src: Path, *opts: str) -> None:
    _sh("qemu-img", "convert", "-O", "qcow2", *opts, src, out)


def chain(out: Path, src: Path) -> None:
    """base (zlib-compressed) <- mid (relative backing name, data written over it) <- top (extended L2, zeroed
    and written ranges, a subcluster write); `<name>.raw` is qemu-img's own reading of the top."""
    base, mid = out.with_name(out.stem + "-base.qcow2"), out.with_name(out.stem + "-mid.qcow2")
    convert(base, src, "-c")
    _sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", mid)
    _sh("qemu-io", "-c", "write -P 0xa5 28M 192k", "-c", "write -P 0x5a 29M 4k", mid)  # free blocks of the fs
    _sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", mid.name, "-F", "qcow2", out)
    _sh("qemu-io", "-c", "write -z 28736k 64k", "-c", "write -P 0x33 29700k 2k", "-c", "write -P 0x44 30M 3k", out)
    _sh("qemu-img", "convert", "-O", "raw", out, out.with_suffix(".raw"))


def pydmg_udzo(out: Path, src: Path) -> None:
    """pydmg's own UDZO image of a FAT32 filesystem (an MBR disk), and dmg2img's reading of it."""
    import pydmg

    tree = out.with_name(out.stem + ".tree")
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "boot").mkdir(parents=True)
    (tree / "boot/vmlinuz").write_bytes(bytes(i * 7 % 251 for i in range(300_000)))
    (tree / "hello.txt").write_text("hello from pydmg\n")
    pydmg.create_dmg(source_dir=tree, output_path=out, volume_label="PYDMG", total_sectors=131072)
    shutil.rmtree(tree)
    _sh("dmg2img", "-s", out, out.with_suffix(".raw"))


def udif(out: Path, src: Path, kind: str) -> None:
    udif_write(src, out, kind)


#: name -> (recipe, source key, extra args). Raw reference: the source image, or `<name>.raw` when written.
IMAGES = {
    "multi.qcow2": (convert, "multi", ()),
    "multi-zlib.qcow2": (convert, "multi", ("-c",)),
    "multi-zstd.qcow2": (convert, "multi", ("-c", "-o", "compression_type=zstd")),
    "multi-v2.qcow2": (convert, "multi", ("-o", "compat=0.10")),
    "multi-xl2.qcow2": (convert, "multi", ("-o", "extended_l2=on,cluster_size=128k")),
    "ext4.qcow2": (convert, "ext4", ()),
    "ext4-zstd.qcow2": (convert, "ext4", ("-c", "-o", "compression_type=zstd")),
    "ext4-xl2.qcow2": (convert, "ext4", ("-o", "extended_l2=on,cluster_size=64k")),
    "ext4-512.qcow2": (convert, "ext4", ("-o", "cluster_size=512")),
    "chain.qcow2": (chain, "ext4-1k", ()),
    "pydmg.dmg": (pydmg_udzo, "ext4", ()),
    **{f"multi-{k}.dmg": (udif, "multi", (k,)) for k in ("UDRW", "UDZO")},
    **{f"ext4-{k}.dmg": (udif, "ext4", (k,)) for k in ("UDRW", "UDRO", "UDZO", "UDBZ", "ULFO", "ULMO")},
}
WRITTEN_RAW = {"chain.qcow2", "pydmg.dmg"}


def _versions() -> str:
    return _sh("qemu-img", "--version").splitlines()[0]


def build(testdata: str) -> Path:
    """Build (or reuse) every image; returns their directory."""
    out = Path(testdata) / "diskimages"
    out.mkdir(exist_ok=True)
    common = _versions() + inspect.getsource(_sh) + inspect.getsource(udif_write)
    for name, (fn, source, args) in IMAGES.items():
        src = Path(testdata) / SOURCES[source]
        stamp = out / f"{name}.key"
        src_key = (Path(testdata) / f"{SOURCES[source]}.key").read_text()
        key = hashlib.sha256("\n".join([common, inspect.getsource(fn), repr(args), src_key]).encode()).hexdigest()
        if stamp.exists() and stamp.read_text() == key and (out / name).exists():
            continue
        stamp.unlink(missing_ok=True)
        (out / name).unlink(missing_ok=True)
        fn(out / name, src, *args)
        stamp.write_text(key)
    return out


def copy_chain(diskimages: Path, dst: Path) -> Path:
    """The chain's three files copied into `dst` (the top names the others relative to itself)."""
    for part in ("chain.qcow2", "chain-mid.qcow2", "chain-base.qcow2"):
        shutil.copyfile(diskimages / part, dst / part)
    return dst / "chain.qcow2"


def raw(testdata: str, name: str) -> Path:
    """The raw disk the image `name` must read as."""
    if name in WRITTEN_RAW:
        return Path(testdata) / "diskimages" / (Path(name).stem + ".raw")
    return Path(testdata) / SOURCES[IMAGES[name][1]]
