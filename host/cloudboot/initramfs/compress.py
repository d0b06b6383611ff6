"""Compressing an initramfs the way the kernel can unpack it: zstd (the `zstd` tool) or gzip (Python).

Both outputs are deterministic: zstd writes no timestamp, and gzip's header mtime is set to 0."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.run import run, which

METHODS = ("zstd", "gzip", "none")
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
#: zstd's default level for initramfs images. Level 19 uses an 8 MiB window, well inside what the kernel's
#: unzstd accepts; --ultra levels (window up to 128 MiB) are never used.
ZSTD_LEVEL = 19


def method_for(path: Path) -> str:
    """The compression an output file's name asks for (.zst -> zstd, .gz -> gzip, .cpio -> none)."""
    name = path.name
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    if name.endswith(".gz"):
        return "gzip"
    if name.endswith(".cpio"):
        return "none"
    raise CloudBootError(f"{path}: cannot tell the compression from the name; end it in .cpio.zst, .cpio.gz "
                         "or .cpio (or pass --compression)")


def compress_file(src: Path, dest: Path, method: str, level: int | None = None) -> None:
    """Write `src` compressed with `method` to `dest` (replaced atomically by the caller's rename)."""
    if method == "zstd":
        zstd = which("zstd", "zstd-compressed initramfs images")
        run([zstd, "-q", "-f", f"-{level or ZSTD_LEVEL}", "-T0", "--check", src, "-o", dest], quiet=True)
    elif method == "gzip":
        with open(src, "rb") as fin, open(dest, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level or 9, mtime=0) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
    elif method == "none":
        shutil.copyfile(src, dest)
    else:
        raise CloudBootError(f"unknown compression {method!r}; use one of {', '.join(METHODS)}")


def unzstd(data: bytes, what: str) -> bytes:
    """The content of the zstd frames in `data` (python-zstandard, no external tool); CloudBootError naming
    `what` when they are corrupt or cut short."""
    import zstandard

    out = []
    while data:
        d = zstandard.ZstdDecompressor().decompressobj()
        try:
            out.append(d.decompress(data))
        except zstandard.ZstdError as exc:
            raise CloudBootError(f"{what}: bad zstd data: {exc}") from None
        if not d.eof:
            raise CloudBootError(f"{what}: zstd data cut short")
        data = d.unused_data
    return b"".join(out)


def decompress(data: bytes) -> bytes:
    """The cpio bytes inside a zstd, gzip or uncompressed initramfs (by magic)."""
    if data[:2] == GZIP_MAGIC:
        return gzip.decompress(data)
    if data[:4] == ZSTD_MAGIC:
        return unzstd(data, "initramfs")
    if data[:6] == b"070701":
        return data
    raise CloudBootError(f"not a zstd, gzip or newc cpio image (starts with {data[:6]!r})")
