"""The per-arch pieces of a cloud medium's UKI, each cached by its inputs: the Debian kernel as `.linux`, and the
init's initramfs as `.initrd`.

A kernel that does not unpack itself (arm64's and riscv64's plain `Image`, 31-38 MB) is stored
zstd-compressed (-19, one frame; ~11 MB), which our stub unpacks before starting it (loader.kernel); an x86
bzImage and an EFI zboot image are kept as they are. The medium's initramfs leaves Debian's cryptography and argon2 out
unless a cosign key or `--luks` asks for them (signatures, LUKS and encrypted ZFS are all that use them), which
keeps each UKI under 20 MiB with Debian's generic kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from arches import Arch
from cloudboot.errors import CloudBootError
from cloudboot.initramfs import compress, debian
from cloudboot.kernel.build import Kernel as OwnKernel
from cloudboot.paths import build_dir, cache_dir
from cloudboot.run import run, which

ZSTD_LEVEL = 19
MIB = 1 << 20
#: initramfs images kept per arch (with and without a cosign key, older sources...), the least recently used go
KEEP = 4


@dataclass
class Kernel:
    """The kernel for `.linux`: the file to embed, Debian's image it came from, its release."""

    path: Path
    source: Path
    release: str
    compressed: bool


def self_unpacking(head: bytes) -> bool:
    """True for images that unpack themselves (x86 bzImage: 'HdrS' at 0x202; EFI zboot: 'zimg' at 4) or that are
    compressed already (gzip, zstd)."""
    return (head[0x202:0x206] == b"HdrS" or head[4:8] == b"zimg" or head[:2] == compress.GZIP_MAGIC
            or head[:4] == compress.ZSTD_MAGIC)


def kernel(arch: Arch, package: str | None, use_cache: bool = True, own: OwnKernel | None = None) -> Kernel:
    """Debian's kernel for `arch` (`package`: a release or linux-image-* name; None: the suite's current one),
    zstd-compressed when it does not unpack itself (cached under the download cache by its digest); or, with
    `own` (our built kernel), our kernel as it is (it unpacks itself)."""
    if own is not None:
        return Kernel(own.image, own.image, own.info["release"], False)
    image, release = debian.kernel_image(arch.debian, package)
    with open(image, "rb") as f:
        head = f.read(4096)
    if self_unpacking(head):
        return Kernel(image, image, release, False)
    h = hashlib.sha256()
    with open(image, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    out = cache_dir() / "medium" / "kernels" / f"{image.name}-{h.hexdigest()[:16]}.zst"
    if not (use_cache and out.is_file()):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        try:
            # -T0: multi-threaded zstd's output does not depend on the number of threads (reproducible).
            run([which("zstd", "compressing kernels for UKIs"), "-q", "-f", f"-{ZSTD_LEVEL}", "-T0", "--check",
                 str(image), "-o", str(tmp)])
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return Kernel(out, image, release, True)


@dataclass
class Initramfs:
    """A built (or cached) initramfs and the report `cloud-boot initramfs` prints for it."""

    path: Path
    report: str
    cached: bool


def initramfs(arch: Arch, package: str | None, cosign_key: Path | None, pem: bytes | None, crypto: bool,
              use_cache: bool = True, own: OwnKernel | None = None) -> Initramfs:
    """The init's initramfs for `arch`, cached under build/medium/<arch>/ by everything that goes into it: our
    sources, the kernel (Debian's modules' version, or our kernel's build key: `own`) and Python packages'
    versions, the cosign key, the crypto modules (`crypto`: for LUKS, implied by a key), SOURCE_DATE_EPOCH."""
    from cloudboot.initramfs.build import build, python_version, report, sources_key

    archive = debian.Archive(arch.debian)
    k = None if own else debian.fetch_kernel(archive, package)
    release, kernel_version = (own.info["release"], own.info["key"]) if own else (k.release, k.modules_deb.version)
    py = python_version(archive, None)
    py_version = archive.show(f"python{py}-minimal")["Version"]
    key = sources_key(arch.debian, release, kernel_version, py_version,
                      os.environ.get("SOURCE_DATE_EPOCH", ""), hashlib.sha256(pem or b"").hexdigest(),
                      "crypto" if crypto or pem else "")
    work = build_dir() / "medium" / arch.name
    work.mkdir(parents=True, exist_ok=True)
    # xz with Debian's kernel: 0.5 MiB smaller than zstd -19, what the 20 MiB budget needs; with ours the UKI
    # stays within 15 MiB in the faster-unpacking compress.OWN_KERNEL
    out = work / f"init-{key}.cpio.{compress.OWN_KERNEL if own else 'xz'}"
    stamp = out.with_suffix(".json")
    if use_cache and out.is_file() and stamp.is_file():
        out.touch()  # recently used: kept by the pruning below
        return Initramfs(out, json.loads(stamp.read_text())["report"], True)
    images = [p for p in work.glob("init-*.cpio.*") if p.suffix != ".json"]  # .xz, .lz4 (.zst of older builds)
    for old in sorted(images, key=lambda p: p.stat().st_mtime)[:-KEEP]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    res = build(arch.debian, out, kernel_package=package, cosign_key=cosign_key, cryptography=crypto or bool(pem),
                budget_mib=20, own_kernel=own.info if own else None)
    if res.kernel is not None and res.kernel.release != release:
        raise CloudBootError(f"internal error: initramfs built for kernel {res.kernel.release}, not {release}")
    text = report(res)
    stamp.write_text(json.dumps({"report": text}))
    return Initramfs(out, text, False)
