"""Compressing an initramfs the way the kernel can unpack it: zstd or lz4 (the `zstd`, `lz4` tools), xz or gzip
(Python).

All outputs are deterministic: zstd, lz4 and xz write no timestamp, and gzip's header mtime is set to 0. xz is
~7% smaller than zstd -19 on the init's image (7.43 -> 6.9 MiB on amd64) and slower to unpack; the cloud medium
uses it to keep each UKI with Debian's kernel within its size budget. lz4 is the other end: 1.8x zstd's size
and unpacked 2-3x faster. The kernel unpacks the initramfs while it starts and waits for it before it runs
/init: with our small cloud kernels under TCG, zstd kept /init waiting 0.1-0.17 s (arm64: 26 MB unpacked in
0.27-0.37 s) and lz4 not at all (0.13 s), so their initramfs is lz4 (OWN_KERNEL)."""

from __future__ import annotations

import gzip
import lzma
import shutil
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.run import run, which

METHODS = ("zstd", "lz4", "xz", "gzip", "none")
GZIP_MAGIC, ZSTD_MAGIC, XZ_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00"
#: the lz4 "legacy" format, the one the kernel's unlz4 reads (`lz4 -l`: 8 MiB blocks, no frame header)
LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
#: zstd's default level for initramfs images. Level 19 uses an 8 MiB window, well inside what the kernel's
#: unzstd accepts; --ultra levels (window up to 128 MiB) are never used.
ZSTD_LEVEL = 19
#: xz as the kernel's decoder wants it (Documentation/staging/xz.rst): CRC32 check, LZMA2 only; a 32 MiB
#: dictionary (what the kernel allocates while unpacking) covers the whole image, as preset 9's 64 MiB would.
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 32 << 20}]


def method_for(path: Path) -> str:
    """The compression an output file's name asks for (.zst -> zstd, .lz4 -> lz4, .xz -> xz, .gz -> gzip,
    .cpio -> none)."""
    name = path.name
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    if name.endswith(".lz4"):
        return "lz4"
    if name.endswith(".xz"):
        return "xz"
    if name.endswith(".gz"):
        return "gzip"
    if name.endswith(".cpio"):
        return "none"
    raise CloudBootError(f"{path}: cannot tell the compression from the name; end it in .cpio.zst, .cpio.lz4, "
                         ".cpio.xz, .cpio.gz or .cpio (or pass --compression)")


#: The --level each method takes: zstd's without --ultra (see ZSTD_LEVEL), lz4's (10-12: its HC mode), gzip's;
#: xz uses its fixed filters.
LEVELS = {"zstd": (1, 19), "lz4": (1, 12), "gzip": (1, 9)}
#: lz4's default: the smallest output it makes (its unpacking speed hardly depends on the level)
LZ4_LEVEL = 12
#: The compression of an initramfs for our cloud kernels (module docstring), in the medium and the test images;
#: also its file suffix (.cpio.lz4)
OWN_KERNEL = "lz4"


def check_level(method: str, level: int | None) -> None:
    """A CloudBootError unless `level` (None: the method's default) is one `method` takes."""
    if level is None:
        return
    if method not in LEVELS:
        raise CloudBootError(f"--level {level}: {method} takes no level (--level is for zstd, lz4 or gzip)")
    low, high = LEVELS[method]
    if not low <= level <= high:
        raise CloudBootError(f"--level {level}: {method} levels go from {low} to {high}")


def compress_file(src: Path, dest: Path, method: str, level: int | None = None) -> None:
    """Write `src` compressed with `method` to `dest` (replaced atomically by the caller's rename)."""
    check_level(method, level)
    if method == "zstd":
        zstd = which("zstd", "zstd-compressed initramfs images")
        run([zstd, "-q", "-f", f"-{level or ZSTD_LEVEL}", "-T0", "--check", src, "-o", dest], quiet=True)
    elif method == "lz4":
        lz4 = which("lz4", "lz4-compressed initramfs images")
        run([lz4, "-q", "-f", "-l", f"-{level or LZ4_LEVEL}", src, dest], quiet=True)
    elif method == "xz":
        with open(src, "rb") as fin, lzma.open(dest, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                               filters=XZ_FILTERS) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
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


def unlz4(data: bytes, what: str) -> bytes:
    """The content of lz4 legacy-format data (the `lz4` tool); CloudBootError naming `what` when it is corrupt."""
    lz4 = which("lz4", "reading lz4-compressed initramfs images")
    done = run([lz4, "-d", "-c", "-q"], input=data, capture=True, ok=None)
    if done.returncode:
        raise CloudBootError(f"{what}: bad lz4 data: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def decompress(data: bytes) -> bytes:
    """The cpio bytes inside a zstd, lz4, xz, gzip or uncompressed initramfs (by magic)."""
    if data[:2] == GZIP_MAGIC:
        return gzip.decompress(data)
    if data[:6] == XZ_MAGIC:
        try:
            return lzma.decompress(data, format=lzma.FORMAT_XZ)
        except lzma.LZMAError as exc:
            raise CloudBootError(f"initramfs: bad xz data: {exc}") from None
    if data[:4] == ZSTD_MAGIC:
        return unzstd(data, "initramfs")
    if data[:4] == LZ4_LEGACY_MAGIC:
        return unlz4(data, "initramfs")
    if data[:6] == b"070701":
        return data
    raise CloudBootError(f"not a zstd, lz4, xz, gzip or newc cpio image (starts with {data[:6]!r})")
