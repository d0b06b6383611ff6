"""Byte-compiling the initramfs's Python modules ahead of time, so PID 1 does not compile ~200 modules on
every boot (seconds under emulation).

.pyc files depend on the Python version, not on the machine, so the compiler is Debian's interpreter of the
same version for the *host* arch (from the same suite), run in place from its unpacked packages through its
own dynamic loader (no chroot, no root). The files are unchecked-hash pycs (PEP 552: the interpreter uses
them without looking at the source's timestamp, and the bytes do not depend on when they were built), with
the image's paths recorded for tracebacks. The host's interpreter may be a later bug-fix release than the
target's (sid's python3.X reaches riscv64 and the ports after amd64): final releases of one 3.X share the bytecode
format (its magic number is frozen from the first release candidate on; CPython 3.5.3 broke that rule once),
so then the pycs go beside their sources: were a magic number to differ after all, the target would compile
that source instead of failing to import it. When the host's arch has no such interpreter, or its bytecode
may differ from the target's, the image ships sources only (and says so).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.initramfs import debian
from cloudboot.initramfs import python as pysel
from cloudboot.run import run
from cloudboot.toolchain import apt

COMPILER = r"""
import importlib.util, json, py_compile, sys
jobs = json.load(open(sys.argv[1]))
for src, dfile, out in jobs:
    py_compile.compile(src, cfile=out, dfile=dfile, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
print(importlib.util.MAGIC_NUMBER.hex(), sys.version.split()[0])
"""


def cache_path(image_path: str, version: str) -> str:
    """Where CPython `version` looks for a source's pyc: `d/x.py` -> `d/__pycache__/x.cpython-3XY.pyc`."""
    d, _, name = image_path.rpartition("/")
    return f"{d}/__pycache__/{name.removesuffix('.py')}.cpython-{version.replace('.', '')}.pyc"


def upstream(version: str) -> str:
    """3.13.5 from Debian's 3.13.5-2+deb13u5."""
    return version.split(":")[-1].split("-")[0]


def same_bytecode(host: str, target: str) -> bool:
    """Whether upstream versions `host` and `target` (Debian's spelling: 3.14.0~rc2 for a pre-release) write
    the same .pyc format: equal, or final releases of the same 3.X."""
    if host == target:
        return True
    finals = all(v.replace(".", "").isdigit() for v in (host, target))  # 3.14.0~rc2 is not
    return finals and host.split(".")[:2] == target.split(".")[:2]


class Compiler:
    """The host-arch interpreter of a given Python version from a suite, ready to run."""

    def __init__(self, suite: str, version: str, target_upstream: str) -> None:
        self.version = version
        host = apt.host_arch()
        try:
            archive = debian.Archive(host, suite)
        except arches.ArchError:
            raise CloudBootError(f"no Debian Python for the host arch {host!r} to byte-compile with") from None
        roots = [f"python{version}-minimal", f"libpython{version}-minimal", f"libpython{version}-stdlib"]
        debs = archive.fetch(archive.closure(roots))
        ver = next(d.version for d in debs if d.name == roots[0])
        self.upstream = upstream(ver)
        if not same_bytecode(self.upstream, target_upstream):
            raise CloudBootError(f"host Python {self.upstream} ({host}) may write other bytecode than the "
                                 f"target's {target_upstream}")
        self.fs = pysel.Rootfs([archive.unpack(d) for d in debs])
        _, self.python = self.fs.resolve(f"usr/bin/python{version}")
        libc = self.fs.glob("usr/lib/*/libc.so.6")[0].rpartition("/")[0]
        libs, interp = pysel.library_closure(self.fs, [self.python], [libc, "usr/lib"])
        if not interp:
            raise CloudBootError(f"{self.python}: no ELF interpreter")
        self.loader = self.fs.resolve(interp)[1]
        self.libpath = ":".join(sorted({str(p.parent) for p in libs.values()}))

    def compile(self, jobs: list[tuple[Path, str]], workdir: Path) -> dict[str, Path]:
        """{image path of the .pyc: file} for (source file, image path of the source) jobs."""
        home = workdir / "home"
        stdlib = f"usr/lib/python{self.version}"
        for path in self.fs.files:
            if path.startswith(stdlib + "/"):
                dest = home / "lib" / path[len("usr/lib/"):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    dest.symlink_to(self.fs.files[path].resolve())
        out: dict[str, Path] = {}
        spec = []
        for n, (src, image_path) in enumerate(jobs):
            pyc = cache_path(image_path, self.version)
            target = workdir / "out" / f"{n}.pyc"
            spec.append((str(src), "/" + image_path, str(target)))
            out[pyc] = target
        (workdir / "out").mkdir(parents=True, exist_ok=True)
        (workdir / "jobs.json").write_text(json.dumps(spec))
        (workdir / "compile.py").write_text(COMPILER)
        env = {"PYTHONHOME": str(home), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
        cmd = [str(self.loader), "--library-path", self.libpath, str(self.python), "-S", "-B",
               str(workdir / "compile.py"), str(workdir / "jobs.json")]
        try:
            run(cmd, env=env, quiet=True)
        except CloudBootError as exc:
            raise CloudBootError(f"byte-compiling with {self.python.name} failed: {exc}") from None
        return out


def compile_modules(suite: str, version: str, target_upstream: str,
                    sources: dict[str, Path]) -> tuple[dict[str, bytes], str, bool]:
    """({image path of each .pyc: bytes}, note, whether the pycs may ship without their sources: compiled by
    the target's very release) for the image's .py files; ({}, why not, False) when impossible."""
    try:
        compiler = Compiler(suite, version, target_upstream)
        with tempfile.TemporaryDirectory(prefix="cloudboot-pyc-") as tmp:
            files = compiler.compile([(host, path) for path, host in sorted(sources.items())], Path(tmp))
            result = {path: f.read_bytes() for path, f in files.items()}
            shutil.rmtree(tmp, ignore_errors=True)
        exact = compiler.upstream == target_upstream
        return result, (f"byte-compiled with Debian's {compiler.upstream} for {apt.host_arch()} "
                        "(unchecked-hash pycs)"), exact
    except (CloudBootError, OSError) as exc:
        return {}, f"sources only, not byte-compiled: {exc}", False

