"""Debian's CPython for the target arch, pruned to what init imports.

* The interpreter is `python3.X-minimal` (the X the suite's `python3-minimal` depends on), its standard
  library `libpython3.X-minimal` + `libpython3.X-stdlib`, all from the kernel's suite.
* Python modules: the import closure of init, the portable core and the interpreter's start-up needs,
  found by reading `import` statements: in our code and Debian's packages (cryptography imports lazily
  what it needs at run time) every one, inside functions and `try` blocks too (over-approximating); in the
  standard library only those that run when a module is imported (module and class bodies, not function
  bodies nor `if __name__ == "__main__":`): its functions' lazy imports serve features init does not call
  (tarfile, zipfile, argparse for a module's command line...: 55 modules, 1.3 MB; the ones left out were
  reviewed for 3.13). Names that resolve to no file are built into the interpreter or absent on Linux.
* Shared libraries: the DT_NEEDED closure of the interpreter and of the extension modules kept, plus the
  dynamic loader (PT_INTERP), read from the ELF files themselves.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from cloudboot.errors import CloudBootError

#: Imported by the interpreter itself before any of our code runs (codec lookup is dynamic).
STARTUP = ["encodings", "encodings.aliases", "encodings.utf_8", "encodings.ascii", "encodings.latin_1",
           "encodings.idna", "encodings.utf_16", "encodings.utf_32", "os", "site", "stat", "posixpath",
           "genericpath", "_collections_abc", "_sitebuiltins", "codecs", "io", "abc"]
#: Never shipped even if some import statement names them: tests, GUIs, tooling and REPL extras that init
#: never reaches (each would only be imported by a code path it does not run).
EXCLUDE = {"test", "idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "ensurepip", "venv", "pydoc",
           "pydoc_data", "unittest", "doctest", "pdb", "sqlite3", "dbm", "curses", "_pyrepl", "xmlrpc",
           "wsgiref", "tomllib", "zoneinfo", "multiprocessing", "concurrent", "asyncio", "idle", "_pydecimal",
           "_pyio", "_pydatetime", "mailbox", "profile", "cProfile", "pstats", "trace", "timeit", "tabnanny",
           "__phello__", "__hello__", "_ctypes_test", "xxlimited", "xxsubtype", "readline", "rlcompleter",
           "_sqlite3", "_curses", "_curses_panel", "_dbm", "_sysconfigdata", "webbrowser",
           "distutils", "pyexpat", "xml", "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
           "_testsinglephase", "_testclinic", "_testimportmultiple", "_xxtestfuzz", "_testlimitedcapi",
           "_testclinic_limited", "_testexternalinspection", "_interpreters", "_interpchannels", "_interpqueues",
           "_lsprof", "_tkinter", "ossaudiodev", "nis", "crypt", "spwd", "_crypt",
           "bcrypt"}  # cryptography imports it only to load encrypted OpenSSH private keys
# (sysconfig itself ships: ctypes imports it from Python 3.14 on, reading its data only on Android/Cygwin.)

#: Our own code's directory in the image: never holds extension modules.
IMAGE_LIBDIR_HINT = "usr/lib/cloudboot"
#: The standard library's directory in the image (not dist-packages).
_STDLIB = re.compile(r"usr/lib/python3\.\d+/")
_IMPORT_LINE = re.compile(r"^[ \t]*import[ \t]+([\w \t,.]+)")
_FROM_LINE = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(.*)")


def _scan_imports(source: str) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of each import statement, by lines (for sources the host cannot parse).
    `import a, b` gives (0, '', ['a', 'b'])."""
    out = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].split("#")[0]
        i += 1
        m = _IMPORT_LINE.match(line)
        if m:
            out.append((0, "", [n.split(" as ")[0].strip() for n in m.group(1).split(",") if n.strip()]))
            continue
        m = _FROM_LINE.match(line)
        if not m:
            continue
        rest = m.group(2)
        if "(" in rest:
            while ")" not in rest and i < len(lines):
                rest += " " + lines[i].split("#")[0]
                i += 1
        names = [n.split(" as ")[0].strip() for n in rest.replace("(", " ").replace(")", " ").replace("\\", " ")
                 .split(",")]
        raw = m.group(1)
        level = len(raw) - len(raw.lstrip("."))
        out.append((level, raw.lstrip("."), [n for n in names if n and (n == "*" or n.isidentifier())]))
    return out


class Rootfs:
    """A merged view of unpacked Debian packages: path -> file on the host, symlinks resolved."""

    def __init__(self, trees: list[Path]) -> None:
        self.files: dict[str, Path] = {}
        for tree in trees:
            for p in sorted(tree.rglob("*")):
                rel = p.relative_to(tree).as_posix()
                if rel == ".done" or (p.is_dir() and not p.is_symlink()):
                    continue
                self.files.setdefault(rel, p)

    def resolve(self, path: str, depth: int = 0) -> tuple[str, Path]:
        """(canonical path, host file) of `path`, following symlinks (also of parent directories)."""
        if depth > 20:
            raise CloudBootError(f"{path}: too many levels of symbolic links")
        path = str(PurePosixPath("/", path))[1:]
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            host = self.files.get(head)
            if host is not None and host.is_symlink():
                target = host.readlink().as_posix()
                base = "" if target.startswith("/") else "/".join(parts[: i - 1])
                joined = _normpath(f"{base}/{target}/" + "/".join(parts[i:]))
                return self.resolve(joined, depth + 1)
            if head in ("lib", "lib64", "bin", "sbin") and host is None and i < len(parts):
                return self.resolve("usr/" + path, depth + 1)  # merged /usr
        host = self.files.get(path)
        if host is None:
            raise CloudBootError(f"/{path} is in none of the packages")
        return path, host

    def glob(self, pattern: str) -> list[str]:
        """Paths matching a glob pattern (PurePosixPath.match semantics, anchored)."""
        return sorted(p for p in self.files if PurePosixPath(p).match(pattern))


def _normpath(path: str) -> str:
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    return "/".join(out)


def _main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`"""
    t = node.test if isinstance(node, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and len(t.comparators) == 1 and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__")


def _import_nodes(tree: ast.AST, at_import_only: bool) -> list[ast.AST]:
    """Import statements of a module; with `at_import_only` just those that run when it is imported."""
    if not at_import_only:
        return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        todo.extend(node.orelse if _main_guard(node) else ast.iter_child_nodes(node))
    return out


def imports_of(source: str, module: str, is_package: bool, at_import_only: bool = False) -> set[str]:
    """Absolute names of every module an import statement in `source` may load (and each `from X import y`
    also as X.y, in case y is a submodule); with `at_import_only`, of the statements that run when the
    module is imported (not in function bodies, not under `if __name__ == "__main__":`)."""
    names: set[str] = set()
    pkg = module if is_package else module.rpartition(".")[0]

    def absolute(level: int, name: str) -> str:
        if not level:
            return name
        base = pkg.split(".") if pkg else []
        if level > 1:
            base = base[: len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    try:
        tree = ast.parse(source)
        for node in _import_nodes(tree, at_import_only):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = absolute(node.level, node.module or "")
                if base:
                    names.add(base)
                names.update(f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*")
    except SyntaxError:  # newer syntax than the host's Python: fall back to a line scan
        for level, mod, items in _scan_imports(source):
            if not mod and not level:
                names.update(items)
                continue
            base = absolute(level, mod)
            if base:
                names.add(base)
            names.update(f"{base}.{n}" if base else n for n in items if n != "*")
    return names


@dataclass
class PythonSelection:
    """Files to ship: {path in the image: host file}, split by kind for the size breakdown."""

    version: str
    interpreter: str
    modules: dict[str, Path] = field(default_factory=dict)
    extensions: dict[str, Path] = field(default_factory=dict)
    libraries: dict[str, Path] = field(default_factory=dict)
    loader: tuple[str, str] = ("", "")  # (PT_INTERP path, canonical path)
    module_names: list[str] = field(default_factory=list)


def find_module(name: str, roots: list[tuple[str, Path]], dynload: dict[str, Path]) -> tuple[str, Path, bool] | None:
    """(image path, host file, is_package) for module `name` in the search roots (image dir, host dir)."""
    rel = name.replace(".", "/")
    for image_dir, host_dir in roots:
        pkg = host_dir / rel / "__init__.py"
        if pkg.is_file():
            return f"{image_dir}/{rel}/__init__.py", pkg, True
        mod = host_dir / f"{rel}.py"
        if mod.is_file():
            return f"{image_dir}/{rel}.py", mod, False
        if image_dir != IMAGE_LIBDIR_HINT:  # an extension module in a package dir (cryptography's _rust.abi3.so)
            parent, _, leaf = rel.rpartition("/")
            where = host_dir / parent if parent else host_dir
            for so in sorted(where.glob(f"{leaf}.*so")) if where.is_dir() else []:
                return (f"{image_dir}/{parent}/{so.name}" if parent else f"{image_dir}/{so.name}"), so, False
    if "." not in name and name in dynload:
        return "", dynload[name], False
    return None


def module_closure(roots: list[str], search: list[tuple[str, Path]], dynload: dict[str, Path],
                   exclude: set[str] = EXCLUDE) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """Import closure from `roots`: ({image path: file} of .py files, {name or image path: .so} of extensions
    (top-level ones by name, for lib-dynload; those inside packages by their image path), names)."""
    py: dict[str, Path] = {}
    ext: dict[str, Path] = {}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] in exclude or not name:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
        found = find_module(name, search, dynload)
        if found is None:
            continue
        image_path, host, is_pkg = found
        if not image_path or image_path.endswith(".so"):
            ext[image_path or name] = host
            continue
        py[image_path] = host
        todo.extend(imports_of(host.read_text(encoding="utf-8", errors="replace"), name, is_pkg,
                               at_import_only=_STDLIB.match(image_path) is not None))
    names = sorted(n for n in seen if find_module(n, search, dynload))
    return py, ext, names


def _elf(path: Path) -> tuple[list[str], str | None]:
    """(DT_NEEDED names, PT_INTERP) of an ELF file."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        interp = None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
        needed = []
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                needed += [t.needed for t in sec.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return needed, interp


def library_closure(fs: Rootfs, elves: list[Path], libdirs: list[str],
                    named: tuple[str, ...] = ()) -> tuple[dict[str, Path], str | None]:
    """{image path: host file} of every shared library the ELF files need (transitively), and of those `named`
    (loaded by name at run time, through ctypes) with theirs; and PT_INTERP."""
    libs: dict[str, Path] = {}
    interp = None
    todo = list(elves)
    done: set[str] = set()
    pending = list(named)
    while todo or pending:
        needed, pt_interp = (pending, None) if pending else _elf(todo.pop())
        pending = []
        interp = interp or pt_interp
        for name in needed:
            if name in done:
                continue
            done.add(name)
            for d in libdirs:
                try:
                    canon, host = fs.resolve(f"{d}/{name}")
                except CloudBootError:
                    continue
                libs[f"{d}/{name}"] = host
                todo.append(host)
                break
            else:
                raise CloudBootError(f"shared library {name} is in none of the packages (looked in "
                                     f"{', '.join('/' + d for d in libdirs)})")
    return libs, interp
