"""A pinned Debian build root (debootstrap + chroot) for what the host's own compilers cannot build.

The bootstrap kernels need one compiler for all four arches: clang/lld with a LoongArch backend. Debian 12's
LLVM 14 has none, and Debian 13's packages cannot be installed on Debian 12 (glibc), so kernels are built in
a minimal Debian 13 root holding LLVM 19 and the kernel's build tools. The same root on every host also makes
the same bits: a kernel built on Debian 12 and on Debian 13 is identical.

The root is made once under the cache (keyed by suite and package list; built in a temporary directory and
renamed, so a killed run leaves no half-made root) and each command runs in a fresh mount namespace (`unshare`)
that binds /dev, /proc and the caller's directories: the mounts cannot outlive the command.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.run import echo, run, which
from cloudboot.toolchain import apt

SUITE = "trixie"
LLVM = "19"
#: The kernel's build needs: LLVM (LLVM=-19), make, bc, flex/bison (Kconfig), libelf (x86's objtool), the
#: host compiler's C library, zstd/xz (compressed images), openssl headers (certificate tools), hexdump (EFI
#: zboot pads its payload to the size hexdump reads from the image header).
PACKAGES = [f"clang-{LLVM}", f"lld-{LLVM}", f"llvm-{LLVM}", "make", "bc", "flex", "bison", "libelf-dev",
            "libc6-dev", "libssl-dev", "zstd", "xz-utils", "cpio", "perl", "bsdextrautils"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
       "TZ": "UTC"}


def _key() -> str:
    return hashlib.sha256(f"{SUITE}\n{' '.join(PACKAGES)}".encode()).hexdigest()[:16]


def _path() -> Path:
    return cache_dir() / "buildroot" / f"{SUITE}-{_key()}"


def exists() -> bool:
    """Whether the build root has been made."""
    return (_path() / ".complete").exists()


def root() -> Path:
    """The build root, made on first use (about 2 minutes and 700 MB; root only: debootstrap, chroot)."""
    path = _path()
    if exists():
        return path
    if os.geteuid() != 0:
        raise CloudBootError(f"the {SUITE} build root ({path}) does not exist yet and making it needs root "
                             "(debootstrap, chroot): run this once as root")
    apt.system_install(["debootstrap"])
    tmp = path.with_name(path.name + ".tmp")
    unmount_below(tmp)  # an interrupted debootstrap may have left its /proc mounted in there
    shutil.rmtree(tmp, ignore_errors=True)
    debs = cache_dir() / "buildroot" / f"debootstrap-{SUITE}"
    debs.mkdir(parents=True, exist_ok=True)
    print(f"buildroot: making a {SUITE} root with {' '.join(PACKAGES)} in {path}", file=sys.stderr, flush=True)
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", f"--cache-dir={debs}",
         SUITE, tmp, apt.archive_uri()])
    (tmp / ".complete").write_text(" ".join(PACKAGES) + "\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def unmount_below(path: Path) -> None:
    """Unmount everything mounted at or below `path` (deepest first), so that removing it cannot reach into
    /proc or a bound host directory."""
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        run(["umount", "-l", point])


def versions(names: list[str]) -> dict[str, str]:
    """Installed versions of packages in the root (what a cache key must name besides the sources)."""
    status = (root() / "var/lib/dpkg/status").read_text()
    out = {}
    for block in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") in names:
            out[fields["Package"]] = fields.get("Version", "")
    missing = [n for n in names if n not in out]
    if missing:
        raise CloudBootError(f"the build root {root()} lacks {' '.join(missing)}")
    return out


def run_in(argv: list[str], binds: dict[str, tuple[Path, bool]], *, env: dict[str, str] | None = None,
           cwd: str = "/", quiet: bool = False) -> None:
    """Run argv inside the root with `binds` ({path inside: (host path, read-only?)}) mounted, in a mount
    namespace of its own, its output on ours (`quiet`: shown only when it fails); CloudBootError naming the
    command when it fails."""
    r = root()
    mounts = [f"mount --rbind /dev {shlex.quote(str(r / 'dev'))}",
              f"mount -t proc proc {shlex.quote(str(r / 'proc'))}"]
    for inside, (host, readonly) in binds.items():
        target = r / inside.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {shlex.quote(str(host))} {shlex.quote(str(target))}")
        if readonly:
            mounts.append(f"mount -o remount,bind,ro {shlex.quote(str(target))}")
    inner = ["env", "-i", *(f"{k}={v}" for k, v in {**ENV, **(env or {})}.items()), *argv]
    script = " && ".join(mounts + [f"cd {shlex.quote(str(r))} && exec chroot . sh -c "
                                   + shlex.quote(f"cd {shlex.quote(cwd)} && exec {shlex.join(inner)}")])
    shown = [f"({SUITE} build root, in {cwd})", *argv]
    echo(shown)  # the namespace and mount set-up is the same every time: not echoed
    # the build's own output goes with our progress lines to stderr (fd 2: sys.stderr may have no file under a
    # test's capture): a caller's stdout (--json) stays its result
    proc = subprocess.run([which("unshare"), "--mount", "--propagation", "private", "--", "sh", "-c", script],
                          stdout=subprocess.PIPE if quiet else 2, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "\n".join((proc.stdout or b"").decode(errors="replace").splitlines()[-30:])
        raise CloudBootError(f"command failed with status {proc.returncode}: {shlex.join(shown)}"
                             + (f"\n{tail}" if tail else ""))
