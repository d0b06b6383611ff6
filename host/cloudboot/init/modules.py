"""Kernel modules in dependency order: modules.dep as depmod writes it, loaded with finit_module(2).

The builder (cloudboot.initramfs.kmods) writes a modules.dep for exactly the modules it ships, in depmod's
format (`path: dep dep ...`, paths relative to /lib/modules/<release>); this module reads it back, orders
it (dependencies first, each module once) and loads every module. The host side uses the same ordering code.
"""

from __future__ import annotations

import errno
import os

from cloudboot.init.errors import InitError
from cloudboot.init.log import log


def module_name(path: str) -> str:
    """The kernel's name for a module file: basename without .ko[.xz|.zst|.gz], '-' as '_'."""
    base = path.rsplit("/", 1)[-1]
    for ext in (".xz", ".zst", ".gz"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    if base.endswith(".ko"):
        base = base[:-3]
    return base.replace("-", "_")


def parse_dep(text: str) -> dict[str, list[str]]:
    """modules.dep -> {module path: [dependency paths]}; InitError on a malformed line."""
    deps: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path, colon, rest = line.partition(":")
        if not colon or not path.strip():
            raise InitError(f"modules.dep line {n}: {line!r} has no 'module:' part")
        deps[path.strip()] = rest.split()
    return deps


def load_order(deps: dict[str, list[str]], wanted: list[str] | None = None) -> list[str]:
    """Module paths so that each comes after everything it depends on (wanted: those and their deps; default
    all). InitError on a dependency cycle or a dependency modules.dep does not list."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = in progress, 2 = done

    def visit(path: str, chain: tuple[str, ...]) -> None:
        if state.get(path) == 2:
            return
        if state.get(path) == 1:
            raise InitError("modules.dep has a dependency cycle: " + " -> ".join((*chain, path)))
        if path not in deps:
            raise InitError(f"modules.dep: {chain[-1] if chain else '?'} needs {path}, which it does not list")
        state[path] = 1
        for d in deps[path]:
            visit(d, (*chain, path))
        state[path] = 2
        order.append(path)

    for path in sorted(deps) if wanted is None else wanted:
        visit(path, ())
    return order


def loaded() -> set[str]:
    """Names of the modules the kernel has loaded (/proc/modules)."""
    try:
        with open("/proc/modules") as f:
            return {line.split()[0] for line in f if line.strip()}
    except OSError:
        return set()


def load_all(moddir: str, finit=None) -> list[str]:
    """Load every module in `moddir`/modules.dep, dependencies first; return the names loaded now.

    A module that is already loaded (EEXIST) is fine; any other failure is logged and the rest still load
    (a missing driver shows up later as a clear 'device not found' with what was seen)."""
    if finit is None:
        from cloudboot.init.linux import finit_module as finit
    dep_file = os.path.join(moddir, "modules.dep")
    try:
        with open(dep_file) as f:
            deps = parse_dep(f.read())
    except FileNotFoundError:
        log(f"modules: no {dep_file}; not loading any")
        return []
    done = []
    for path in load_order(deps):
        name = module_name(path)
        try:
            fd = os.open(os.path.join(moddir, path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log(f"modules: {name}: {exc.strerror} ({path})")
            continue
        try:
            finit(fd)
            done.append(name)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                log(f"modules: {name} failed: {exc}")
        finally:
            os.close(fd)
    return done
