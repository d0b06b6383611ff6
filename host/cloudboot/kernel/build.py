"""Build one bootstrap kernel: (arch, variant) -> an EFI-bootable image, cached by everything that makes it.

The cache key covers the source package's version and checksums, the fragments' bytes, the build root's LLVM
version and make's environment; a hit is returned at once. A build runs out of tree (`O=`) in the build root
with the source bound read-only; its result goes into a fresh directory renamed into place only when the image
is there, so an interrupted build leaves nothing a later run could take for a result.

Reproducible: the timestamp is the source package's changelog date (Debian's SOURCE_DATE_EPOCH for that
package; the environment's is not used: `cloud-boot build` sets it to the last commit's time, which would
rebuild the kernel on every commit), user, host and build number are fixed, and the paths inside the root
are always /src and /out.
"""

from __future__ import annotations

import email.utils
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.kernel import config
from cloudboot.paths import cache_dir
from cloudboot.toolchain import buildroot, debsource

SUITE = "trixie"
DEB_VERSION = "6.12.107-1"
PINNED = {
    "linux_6.12.107-1.dsc": "00f5874a383295a3237321cf59a0f172495084f16cb3dac24ee5aae6649d809a",
    "linux_6.12.107.orig.tar.xz": "efc76d3c78a5d65f42724118c437d11db1c9f6309a5f024ee9a8b1978fdc6919",
    "linux_6.12.107-1.debian.tar.xz": "d8c003ecac7c54f59c69dc61258f93d937dce90e70f53bb5a34dd58db13028ed",
}
TOOLS = [f"clang-{buildroot.LLVM}", f"lld-{buildroot.LLVM}", f"llvm-{buildroot.LLVM}"]


@dataclass
class Kernel:
    """A built kernel: its image, its .config, and what the build recorded (key, sizes, seconds)."""

    image: Path
    config: Path
    info: dict


def source() -> Path:
    """The unpacked `linux` source package (Debian's patches applied); LINUX_DIR= uses another tree."""
    return debsource.tree("linux", DEB_VERSION, SUITE, PINNED, "LINUX_DIR", "Kbuild")


def epoch(tree: Path) -> int:
    """The date of the source package's newest changelog entry: the kernel's clock."""
    with open(tree / "debian/changelog", encoding="utf-8") as f:
        for line in f:
            if line.startswith(" -- ") and "  " in line[4:]:
                return int(email.utils.parsedate_to_datetime(line.rsplit("  ", 1)[1].strip()).timestamp())
    raise CloudBootError(f"{tree}/debian/changelog: no dated entry")


def make_env(arch: arches.Arch, variant: str, stamp: int) -> dict[str, str]:
    """make's environment: the arch, LLVM, the release suffix and what makes the build reproducible."""
    return {"ARCH": arch.linux_arch, "LLVM": f"-{buildroot.LLVM}", "LOCALVERSION": f"-cloud-boot-{variant}",
            "KBUILD_BUILD_TIMESTAMP": time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(stamp)),
            "KBUILD_BUILD_USER": "cloud-boot", "KBUILD_BUILD_HOST": "cloud-boot", "KBUILD_BUILD_VERSION": "1",
            "SOURCE_DATE_EPOCH": str(stamp)}


def cache_key(arch: arches.Arch, variant: str, fragments: list[Path], env: dict[str, str],
              tools: dict[str, str]) -> str:
    """sha256 over every input that changes the image."""
    h = hashlib.sha256()
    h.update(f"{arch.name} {variant} linux={DEB_VERSION} {sorted(PINNED.items())}\n".encode())
    h.update(json.dumps([env, tools], sort_keys=True).encode())
    if os.environ.get("LINUX_DIR"):
        h.update(f"LINUX_DIR={source()}".encode())  # a tree of the user's: keyed by where it is
    for p in fragments:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _inputs(arch_name: str, variant: str) -> tuple:
    """(arch, fragments, source tree, timestamp, tools, make's environment, cache key, result directory)."""
    arch = arches.get(arch_name)
    frags = config.fragments(arch, variant)
    tree = source()
    stamp = epoch(tree)
    tools = buildroot.versions(TOOLS)
    env = make_env(arch, variant, stamp)
    key = cache_key(arch, variant, frags, env, tools)
    return arch, frags, tree, stamp, tools, env, key, cache_dir() / "kernel" / f"{arch.name}-{variant}-{key[:16]}"


def is_cached(arch_name: str, variant: str) -> bool:
    """Whether build() would return at once (the build root exists and holds this kernel's inputs' result)."""
    return buildroot.exists() and (_inputs(arch_name, variant)[-1] / "build.json").is_file()


@contextmanager
def _one_build_at_a_time() -> Iterator[None]:
    """Hold the cache's kernel-build lock: builds share the source tree, the build root and the object
    directories, so a second one (another `make kernel`, or a test beside the tests' background build) waits."""
    lock = cache_dir() / "kernel" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"kernel: waiting for the build that holds {lock}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def build(arch_name: str, variant: str, *, jobs: int | None = None, rebuild: bool = False) -> Kernel:
    """The (arch, variant) kernel from the cache, or built into it (printing each step). `rebuild`: build from
    scratch (a clean object directory) even when cached, and fail unless the result is bit-identical to the
    cached image."""
    if not rebuild and buildroot.exists():  # a cached kernel does not wait for another's build
        final = _inputs(arch_name, variant)[-1]
        if (final / "build.json").is_file():
            return _result(final)
    with _one_build_at_a_time():
        return _build(arch_name, variant, jobs, rebuild)


def _build(arch_name: str, variant: str, jobs: int | None, rebuild: bool) -> Kernel:
    arch, frags, tree, stamp, tools, env, key, final = _inputs(arch_name, variant)
    wanted = config.settings(frags)
    cached = _result(final) if (final / "build.json").is_file() else None
    if cached and not rebuild:
        return cached
    # Objects are kept per arch, variant, source and compiler: a changed fragment recompiles only what it
    # touches (Kconfig tracks each option's users). A new source or compiler gets a directory of its own.
    objs = cache_dir() / "kernel" / "objects" / f"{arch.name}-{variant}-{DEB_VERSION}-{tools[TOOLS[0]]}"
    if rebuild:
        shutil.rmtree(objs, ignore_errors=True)
    objs.mkdir(parents=True, exist_ok=True)
    work = final.with_name(final.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for p in frags:
        shutil.copyfile(p, work / p.name)
    binds = {"/src": (tree, True), "/out": (objs, False), "/work": (work, False)}
    make = ["make", "-C", "/src", "O=/out", "-s"]
    t0 = time.monotonic()
    print(f"kernel: {arch.name} {variant}: tinyconfig + {' '.join(p.name for p in frags)} "
          f"(linux {DEB_VERSION}, clang {tools[TOOLS[0]]})", file=sys.stderr, flush=True)  # stdout is the result's
    buildroot.run_in([*make, "tinyconfig"], binds, env=env, quiet=True)
    buildroot.run_in(["/src/scripts/kconfig/merge_config.sh", "-m", "-O", "/out", "/out/.config",
                      *(f"/work/{p.name}" for p in frags)], binds, env=env, cwd="/work", quiet=True)
    buildroot.run_in([*make, "olddefconfig"], binds, env=env, quiet=True)
    missing = config.dropped(wanted, (objs / ".config").read_text())
    if missing:
        raise CloudBootError(f"{arch.name} {variant}: the kernel's .config ({objs / '.config'}) does not hold "
                             f"{len(missing)} fragment line(s):\n  " + "\n  ".join(missing))
    t1 = time.monotonic()
    buildroot.run_in([*make, f"-j{jobs or os.cpu_count() or 1}", Path(arch.linux_image).name], binds, env=env)
    image = objs / arch.linux_image
    if not image.is_file():
        raise CloudBootError(f"{arch.name} {variant}: the build ended without {arch.linux_image}")
    digest = debsource.sha256(image)
    if cached and cached.info["sha256"] != digest:
        raise CloudBootError(f"{arch.name} {variant}: not reproducible: this build's image has sha256 {digest}, the "
                             f"cached one ({cached.image}) {cached.info['sha256']}")
    shutil.copyfile(image, work / "vmlinuz")
    shutil.copyfile(objs / ".config", work / "config")
    info = {"arch": arch.name, "variant": variant, "key": key, "linux": DEB_VERSION,
            "release": (objs / "include/config/kernel.release").read_text().strip(), "tools": tools,
            "source_date_epoch": stamp, "size": image.stat().st_size, "config_seconds": round(t1 - t0, 1),
            "build_seconds": round(time.monotonic() - t1, 1), "sha256": digest,
            "identical_to_cached": bool(cached)}
    (work / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return _result(final)


def _result(d: Path) -> Kernel:
    return Kernel(d / "vmlinuz", d / "config", json.loads((d / "build.json").read_text()))
