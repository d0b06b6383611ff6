"""Assembling the init initramfs for one target arch (Path A's PID 1 on CPython).

Layout of the image (merged /usr, like the Debian it comes from):
  /init                                  Python script run by the kernel (shebang: the interpreter below)
  /usr/bin/python3.X                     Debian's interpreter; stdlib under /usr/lib/python3.X (pruned)
  /usr/lib/<triplet>/*.so*               shared libraries the interpreter and kept extensions need
  /usr/lib/cloudboot/                    cloudboot.init + the portable core (arches, diskfs, bootplan, ...)
  /usr/lib/modules/<release>/            kernel modules (uncompressed) + modules.dep for exactly those
  /etc/cloud-boot/initramfs.json         what went in: suite, package versions, modules, Python modules
  /bin /sbin /lib /lib64 -> usr/...      merged-/usr symlinks (the ELF interpreter path goes through them)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.image.output import check_output, install
from cloudboot.init import libzstd
from cloudboot.initramfs import compress, cpio, debian, kmods
from cloudboot.initramfs import python as pysel
from cloudboot.initramfs.pycompile import cache_path, compile_modules, upstream
from cloudboot.paths import MODULES_DIR, ROOT

#: The portable core packages shipped next to init (those present in firmware/modules/).
PORTABLE = ["arches", "diskfs", "bootplan", "oci", "compat", "cloudmeta", "netstack"]
IMAGE_LIBDIR = "usr/lib/cloudboot"
DIST = "usr/lib/python3/dist-packages"
#: Debian Python packages init uses (ECDSA for cosign, through cloudboot.init.signature; AES, PBKDF2 and Argon2
#: for LUKS, through diskfs.cryptocpython); only the modules reached from init's imports are shipped.
PY_PACKAGES = ["python3-cryptography", "python3-argon2", "python3-cffi-backend"]  # (cffi: virtual, named here)
#: Imported by compiled code, where the import scan cannot see it (cryptography's Rust bindings load cffi;
#: _ctypes loads ctypes._layout from Python 3.14 on, for every Structure, as the init's syscalls use), or looked
#: up by name (the UTF-16 codec of EFI variables, for Path C).
HIDDEN_IMPORTS = ["_cffi_backend", "ctypes._layout", "encodings.utf_16_le"]
#: Shared libraries the init loads by name through ctypes (package, soname): libzstd unpacks EFI zboot kernels
#: where the image's CPython has no compression.zstd (init.libzstd).
CTYPES_LIBRARIES = [("libzstd1", libzstd.SONAME)]
BUDGET_MIB = 20

INIT_SCRIPT = '''#!/usr/bin/python{version} -IBSu
"""cloud-boot init (PID 1): Debian's CPython running cloudboot.init (see /etc/cloud-boot/initramfs.json)."""
import os
import sys

sys.path[:0] = ["/{libdir}", "/{dist}"]
os.environ["CRYPTOGRAPHY_OPENSSL_NO_LEGACY"] = "1"  # OpenSSL's legacy provider (MD4, DES...) is not shipped
try:
    from cloudboot.init import preload

    preload.start()
    from cloudboot.init.main import main
except BaseException as exc:  # PID 1 must never exit, even if its own package is broken
    import code
    import time

    print("cloud-boot: FATAL: cannot import cloudboot.init: %r" % (exc,), flush=True)
    while True:
        try:
            code.interact(banner="cloud-boot rescue (init did not import)", local={{"exc": exc}})
        except BaseException:
            pass
        time.sleep(5)
main()
'''


@dataclass
class Result:
    """What was built: output path, sizes and the manifest written into the image."""

    output: Path
    compressed: int
    uncompressed: int
    breakdown: dict[str, tuple[int, int]] = field(default_factory=dict)  # category -> (files, bytes)
    manifest: dict = field(default_factory=dict)
    kernel: debian.Kernel | None = None


def python_version(archive: debian.Archive, wanted: str | None) -> str:
    """3.X: the one asked for, else the one the suite's python3-minimal depends on."""
    if wanted:
        return wanted
    for dep in archive.depends("python3-minimal"):
        if dep.startswith("python3.") and dep.endswith("-minimal"):
            return dep.removeprefix("python").removesuffix("-minimal")
    raise CloudBootError(f"cannot tell the Python version of {archive.suite}: python3-minimal depends on "
                         f"{archive.depends('python3-minimal')}")


def sources_key(*extra: str) -> str:
    """A short hash of everything of ours that goes into an initramfs (init, this builder, the portable core)
    and of `extra` (arch, options...): what caches of built images are keyed by."""
    h = hashlib.sha256()
    dirs = [ROOT / "host/cloudboot/init", ROOT / "host/cloudboot/initramfs"] + [MODULES_DIR / p for p in PORTABLE]
    for d in dirs:
        for p in sorted(d.rglob("*.py")) if d.is_dir() else []:
            h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()[:16]


def _portable_roots() -> list[str]:
    names = []
    for pkg in PORTABLE:
        d = MODULES_DIR / pkg
        if not (d / "__init__.py").is_file():
            continue
        for py in sorted(d.rglob("*.py")):
            rel = py.relative_to(MODULES_DIR).with_suffix("").as_posix().replace("/", ".")
            names.append(rel.removesuffix(".__init__"))
    return names


def _init_roots() -> list[str]:
    d = ROOT / "host/cloudboot/init"
    return ["cloudboot"] + [f"cloudboot.init.{p.stem}".removesuffix(".__init__") for p in sorted(d.glob("*.py"))]


class Builder:
    """Collects every file of the image into a cpio.Archive, remembering each one's category."""

    def __init__(self) -> None:
        self.archive = cpio.Archive()
        self.category: dict[str, str] = {}

    def file(self, path: str, data: bytes | Path, mode: int, category: str) -> None:
        self.archive.file(path, data, mode)
        self.category[cpio.normalize(path)] = category

    def breakdown(self) -> dict[str, tuple[int, int, int]]:
        """category -> (files, bytes, zlib-compressed bytes as a relative weight)."""
        out: dict[str, list[int]] = {}
        for e in self.archive.members():
            if e.data is None:
                continue
            cat = self.category.get(e.path, "layout (dirs, links)")
            row = out.setdefault(cat, [0, 0, 0])
            data = e.data.read_bytes() if isinstance(e.data, Path) else e.data
            row[0] += 1
            row[1] += len(data)
            row[2] += len(zlib.compress(data, 1))
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def add_python(b: Builder, archive: debian.Archive, ver: str, module_roots: list[str], own: list[tuple[str, Path]],
               packages: list[str]) -> tuple[list[debian.Deb], list[str], list[str], str, str]:
    """Debian's python`ver` into `b`: the interpreter, the import closure of `module_roots` (searched in `own`
    (image dir, host dir) first, then the stdlib and `packages`), byte-compiled, and every shared library they
    need. Once byte-compiled by the target's own release, the stdlib and Debian's packages ship as bytecode
    only (`name.pyc` where the source was: the sourceless form Python imports; a quarter smaller compressed);
    our own code keeps its sources next to its pycs, for readable tracebacks at the rescue prompt, and so does
    everything when the compiler was another bug-fix release of 3.X (pycompile). Returns (debs, module names,
    extension names, upstream version, bytecode note)."""
    roots = [f"python{ver}-minimal", f"libpython{ver}-minimal", f"libpython{ver}-stdlib", *packages,
             *(package for package, _ in CTYPES_LIBRARIES)]
    debs = archive.fetch(archive.closure(roots))
    trees = [archive.unpack(d) for d in debs]
    fs = pysel.Rootfs(trees)
    interp_path, interp_host = fs.resolve(f"usr/bin/python{ver}")
    b.file(interp_path, interp_host, 0o755, "python interpreter")
    stdlib = f"usr/lib/python{ver}"
    search = list(own)
    search += [(stdlib, t / stdlib) for t in trees if (t / stdlib).is_dir()]
    search += [(DIST, t / DIST) for t in trees if (t / DIST).is_dir()]
    dynload = {}
    for t in trees:
        for so in sorted((t / stdlib / "lib-dynload").glob("*.so")):
            dynload[so.name.split(".")[0]] = so
    py_files, extensions, names = pysel.module_closure(module_roots, search, dynload)
    pyver = upstream(next(d.version for d in debs if d.name == roots[0]))
    pycs, bytecode_note, sourceless = compile_modules(archive.suite, ver, pyver, py_files)
    for path, host in sorted(py_files.items()):
        ours = path.startswith(IMAGE_LIBDIR)
        category = "cloud-boot (init + portable core)" if ours else "python stdlib"
        pyc = pycs.get(cache_path(path, ver))
        if ours or pyc is None or not sourceless:
            b.file(path, host, 0o644, category)
            if pyc is not None:
                b.file(cache_path(path, ver), pyc, 0o644, category)
        else:
            b.file(path.removesuffix(".py") + ".pyc", pyc, 0o644, category)
    if pycs:
        bytecode_note += "; stdlib and packages as bytecode only" if sourceless else "; beside their sources"
    for key, host in sorted(extensions.items()):
        path = key if "/" in key else f"{stdlib}/lib-dynload/{host.name}"
        b.file(path, host, 0o644, "python extension modules")
    add_libraries(b.archive, fs, [interp_host, *extensions.values()], interp_path, archive.arch,
                  lambda path: b.category.__setitem__(cpio.normalize(path), "shared libraries"),
                  named=tuple(soname for _, soname in CTYPES_LIBRARIES))
    return debs, names, sorted(extensions), pyver, bytecode_note


def add_libraries(out: cpio.Archive, fs: pysel.Rootfs, elves: list[Path], what: str, arch: str,
                  note=lambda path: None, named: tuple[str, ...] = ()) -> None:
    """Every shared library `elves` need (transitively) from `fs` into `out`, those `named` with theirs, and the
    ELF interpreter with a link from its PT_INTERP path under usr/ (`what` names the program in errors;
    `note(path)` is told each file added)."""
    libc = fs.glob("usr/lib/*/libc.so.6")
    if not libc:
        raise CloudBootError(f"libc6 for {arch} has no usr/lib/<triplet>/libc.so.6")
    libdir = libc[0].rpartition("/")[0]
    libs, pt_interp = pysel.library_closure(fs, elves, [libdir, "usr/lib"], named)
    if not pt_interp:
        raise CloudBootError(f"{what} has no ELF interpreter (PT_INTERP)")
    loader_canon, loader_host = fs.resolve(pt_interp)
    for path, host in sorted(libs.items()):
        if path != loader_canon:
            out.file(path, host, 0o644)
            note(path)
    out.file(loader_canon, loader_host, 0o755)
    note(loader_canon)
    loader_link = "usr/" + pt_interp.lstrip("/")
    if loader_link != loader_canon:
        out.symlink(loader_link, os.path.relpath("/" + loader_canon, "/" + loader_link.rpartition("/")[0]))


def build(arch: str, output: Path, *, kernel_package: str | None = None, python: str | None = None,
          extra_modules: list[str] | None = None, compression: str | None = None, level: int | None = None,
          budget_mib: float = BUDGET_MIB, cosign_key: Path | None = None, cryptography: bool = True,
          own_kernel: dict | None = None) -> Result:
    """Build the initramfs for `arch` into `output`; returns sizes and the manifest. `cosign_key`: a PEM
    public key installed as /etc/cosign.pub (init then checks signatures, cloudboot.cosign=enforce default).
    `cryptography=False` leaves Debian's cryptography and argon2 out (1.2 MiB compressed): what checks
    signatures and opens LUKS, so only for images without `cosign_key` (the cloud medium's unless built with
    --luks, to fit its UKI size budget). `own_kernel`: the build record (`cloudboot.kernel.build`) of our kernel
    the image is for, which has everything built in: no modules are shipped."""
    if cosign_key and not cryptography:
        raise CloudBootError("an initramfs with a cosign key needs cryptography to check signatures")
    if own_kernel and (extra_modules or kernel_package):
        raise CloudBootError("our kernels have every driver built in: --module and --kernel-package apply to "
                             "Debian's kernel only")
    arch = arches.get(arch).debian
    method = compression or compress.method_for(output)
    check_output(output)
    archive = debian.Archive(arch)
    kernel = None if own_kernel else debian.fetch_kernel(archive, kernel_package)
    ver = python_version(archive, python)
    b = Builder()
    own = [(IMAGE_LIBDIR, ROOT / "host"), (IMAGE_LIBDIR, MODULES_DIR)]
    module_roots = pysel.STARTUP + HIDDEN_IMPORTS + _init_roots() + _portable_roots()
    debs, names, extensions, pyver, bytecode_note = add_python(b, archive, ver, module_roots, own,
                                                               PY_PACKAGES if cryptography else [])

    # --- kernel modules (none for our kernels)
    if kernel is None:
        wanted, mods = [], kmods.ModuleSet(own_kernel["release"])
        kernel_info = {"release": own_kernel["release"], "package": f"cloud-boot {own_kernel['variant']} kernel",
                       "version": f"{own_kernel['linux']} {own_kernel['key'][:16]}"}
    else:
        ktree = archive.unpack(kernel.modules_deb)
        wanted = list(dict.fromkeys(kmods.DEFAULT_MODULES + (extra_modules or [])))
        mods = kmods.select(ktree, kernel.release, wanted,
                            archive.unpack(kernel.base_deb) if kernel.base_deb else None)
        mod_root = f"usr/lib/modules/{kernel.release}"
        for rel, data in mods.files.items():
            b.file(f"{mod_root}/{rel}", data, 0o644, "kernel modules")
        b.file(f"{mod_root}/modules.dep", mods.dep_text.encode(), 0o644, "kernel modules")
        kernel_info = {"release": kernel.release, "package": kernel.modules_deb.name,
                       "version": kernel.modules_deb.version}

    # --- init, layout, manifest
    b.file("init", INIT_SCRIPT.format(version=ver, libdir=IMAGE_LIBDIR, dist=DIST).encode(), 0o755,
           "cloud-boot (init + portable core)")
    for d, mode in (("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("run", 0o755), ("tmp", 0o1777),
                    ("root", 0o700), ("etc", 0o755), ("usr/sbin", 0o755)):
        b.archive.dir(d, mode)
    # What exists in /dev before init mounts devtmpfs over it: the console, and a *file* /dev/urandom. CPython
    # seeds its str hash at start-up; before the kernel's CRNG is ready getrandom() says EAGAIN and CPython
    # reads /dev/urandom, which then runs the kernel's jitter-entropy loop (1-3 s under emulation). A fixed
    # seed for PID 1 (what PYTHONHASHSEED, ignored under -I, would give) avoids that stall; everything else
    # (os.urandom, ssl) uses the real device once devtmpfs is mounted.
    b.archive.device("dev/console", "c", 5, 1, 0o600)
    b.archive.device("dev/null", "c", 1, 3, 0o666)
    seed = hashlib.sha256(b"cloud-boot init hash seed").digest() * 8
    b.file("dev/urandom", seed, 0o444, "layout (dirs, links)")
    for link in ("bin", "sbin", "lib", "lib64"):
        if link == "lib64" and not any(p.startswith("usr/lib64/") for p in b.archive.entries):
            continue
        b.archive.symlink(link, f"usr/{link}")
    versions = {d.name: d.version for d in debs}
    key_pem = None
    if cosign_key:
        try:
            key_pem = Path(cosign_key).read_bytes()
        except OSError as exc:
            raise CloudBootError(f"{cosign_key}: {exc.strerror}") from None
        if b"-----BEGIN PUBLIC KEY-----" not in key_pem:
            raise CloudBootError(f"{cosign_key}: not a PEM public key (cosign.pub)")
        b.file("etc/cosign.pub", key_pem, 0o644, "layout (dirs, links)")
    manifest = {
        "arch": arch, "suite": archive.suite,
        "kernel": kernel_info,
        "python": {"version": ver, "upstream": pyver, "packages": versions, "modules": names,
                   "extensions": sorted(extensions), "bytecode": bytecode_note},
        "modules": {"load_order": mods.order, "builtin": mods.builtin, "requested": wanted},
        "cryptography": versions.get("python3-cryptography"),
        "cosign_key": hashlib.sha256(key_pem).hexdigest() if key_pem else None,
        "source_date_epoch": b.archive.mtime,
    }
    b.file("etc/cloud-boot/initramfs.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(),
           0o644, "layout (dirs, links)")

    # --- write, compress, account
    fd, tmp_raw = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".cpio")
    tmp_out = tmp_raw + ".out"
    try:
        with os.fdopen(fd, "wb") as f:
            raw_size = b.archive.write(f)
        compress.compress_file(Path(tmp_raw), Path(tmp_out), method, level)
        size = os.path.getsize(tmp_out)
        if method != "none" and size > budget_mib * (1 << 20):  # the budget is for what a bootloader loads
            raise CloudBootError(f"{output}: {size / (1 << 20):.1f} MiB compressed is over the {budget_mib:g} MiB "
                                 "budget")
        install(tmp_out, output)
    finally:
        for p in (tmp_raw, tmp_out):
            Path(p).unlink(missing_ok=True)
    weights = b.breakdown()
    total_w = sum(w for _, _, w in weights.values()) or 1
    breakdown = {k: (n, raw, round(size * w / total_w)) for k, (n, raw, w) in weights.items()}
    return Result(output, size, raw_size, breakdown, manifest, kernel)


def report(res: Result) -> str:
    """The size breakdown and versions as printed by `cloud-boot initramfs`."""
    m = res.manifest
    lines = [f"{res.output}: {res.compressed} bytes ({res.compressed / (1 << 20):.2f} MiB compressed, "
             f"{res.uncompressed / (1 << 20):.2f} MiB as cpio) for {m['arch']} ({m['suite']})",
             f"  kernel {m['kernel']['release']} ({m['kernel']['package']} {m['kernel']['version']}), "
             f"Python {m['python']['version']} "
             f"({m['python']['packages'].get('python' + m['python']['version'] + '-minimal', '?')})",
             f"  {'part':<36} {'files':>6} {'bytes':>11} {'~compressed':>12}"]
    for cat, (n, raw, est) in sorted(res.breakdown.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {cat:<36} {n:>6} {raw:>11} {est:>12}")
    lines.append(f"  modules: {' '.join(kmods.module_name(p) for p in m['modules']['load_order'])}"
                 f" (built in: {' '.join(m['modules']['builtin']) or 'none'})")
    lines.append(f"  python modules: {len(m['python']['modules'])}, {m['python']['bytecode']}")
    lines.append(f"  cryptography {m['cryptography'] or 'absent'}; cosign key: "
                 f"{'sha256 ' + m['cosign_key'][:16] if m.get('cosign_key') else 'none (signatures not checked)'}")
    return "\n".join(lines)
