"""`cloud-boot initramfs`: the amd64 image's contents checked from the outside (GNU cpio listing, ELF
dependencies, module vermagic and order, the manifest), its size budget, reproducibility, and the packed
interpreter actually running init's code (in a chroot of the unpacked image, when the host can run it)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from cloudboot.harness import trial
from cloudboot.init.modules import load_order, module_name, parse_dep
from cloudboot.initramfs import compress, cpio
from cloudboot.initramfs.build import build
from cloudboot.initramfs.pycompile import same_bytecode

ARCH = "amd64"


@pytest.fixture(scope="module")
def image() -> tuple[Path, dict[str, tuple[int, bytes]]]:
    path = trial.initramfs(ARCH)
    members = {name: (mode, data) for name, mode, data in cpio.read(compress.decompress(path.read_bytes()))}
    return path, members


def _manifest(members) -> dict:
    return json.loads(members["etc/cloud-boot/initramfs.json"][1])


def test_listing_and_layout(image) -> None:
    path, members = image
    listed = subprocess.run(["cpio", "-t", "--quiet"], input=compress.decompress(path.read_bytes()),
                            capture_output=True, check=True).stdout.decode().split()
    assert listed == list(members)
    m = _manifest(members)
    ver = m["python"]["version"]
    init = members["init"][1].decode()
    assert init.startswith(f"#!/usr/bin/python{ver} -IBSu\n")
    assert "from cloudboot.init.main import main" in init
    assert members["init"][0] & 0o111 and members[f"usr/bin/python{ver}"][0] & 0o111
    for link, target in (("bin", b"usr/bin"), ("lib", b"usr/lib"), ("lib64", b"usr/lib64")):
        assert members[link][1] == target
    assert members["usr/lib64/ld-linux-x86-64.so.2"][1] == b"../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    for ours in ("usr/lib/cloudboot/cloudboot/init/main.py", "usr/lib/cloudboot/diskfs/__init__.py",
                 "usr/lib/cloudboot/bootplan/discover.py", "usr/lib/cloudboot/compat/__init__.py"):
        assert ours in members, ours
    assert not [p for p in members if "/test/" in p or "tkinter" in p or "idlelib" in p]
    assert path.stat().st_size <= 20 << 20, "over the 20 MiB budget"


def test_every_elf_finds_its_libraries(image) -> None:
    _, members = image
    libdir = "usr/lib/x86_64-linux-gnu"
    elves = {p: d for p, (mode, d) in members.items() if d[:4] == b"\x7fELF" and not p.endswith(".ko")}
    assert any(p.startswith("usr/bin/python3.") for p in elves)
    needed_all = set()
    for p, data in elves.items():
        elf = ELFFile(io.BytesIO(data))
        assert elf["e_machine"] == "EM_X86_64", p
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                for tag in sec.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed_all.add(tag.needed)
                        assert f"{libdir}/{tag.needed}" in members, f"{p} needs {tag.needed}"
    assert {"libc.so.6", "libffi.so.8"} <= needed_all  # the interpreter, and _ctypes for init's syscalls


def test_libraries_loaded_by_name_come_with_theirs(tmp_path: Path) -> None:
    """CTYPES_LIBRARIES (what the init opens through ctypes, which no ELF file names) go in with what they need,
    as the interpreter's own libraries do; a name no package has is an error naming it."""
    from cloudboot.errors import CloudBootError
    from cloudboot.initramfs import python as pysel
    from cloudboot.initramfs.build import CTYPES_LIBRARIES

    assert ("libzstd1", "libzstd.so.1") in CTYPES_LIBRARIES
    libdir = "usr/lib/x86_64-linux-gnu"
    (tmp_path / libdir).mkdir(parents=True)
    for name in ("libzstd.so.1", "libc.so.6", "ld-linux-x86-64.so.2"):
        shutil.copy(Path("/", libdir, name).resolve(), tmp_path / libdir / name)
    fs = pysel.Rootfs([tmp_path])
    libs, _ = pysel.library_closure(fs, [], [libdir, "usr/lib"], ("libzstd.so.1",))
    assert sorted(libs) == [f"{libdir}/{n}" for n in ("ld-linux-x86-64.so.2", "libc.so.6", "libzstd.so.1")]
    assert pysel.library_closure(fs, [], [libdir, "usr/lib"]) == ({}, None)
    with pytest.raises(CloudBootError, match="shared library libnone.so.1 is in none of the packages"):
        pysel.library_closure(fs, [], [libdir, "usr/lib"], ("libnone.so.1",))


def test_kernel_modules(image) -> None:
    _, members = image
    m = _manifest(members)
    release = m["kernel"]["release"]
    root = f"usr/lib/modules/{release}"
    deps = parse_dep(members[f"{root}/modules.dep"][1].decode())
    shipped = {p[len(root) + 1:] for p, (mode, _) in members.items()
               if p.startswith(root + "/kernel/") and mode & 0o170000 == 0o100000}
    assert set(deps) == shipped
    names = {module_name(p) for p in deps}
    # virtio devices, EFI variables, and FAT + code pages: Path C mounts the cache ESP (nothing else is mounted)
    assert {"virtio_blk", "virtio_net", "virtio_scsi", "efivarfs", "vfat", "fat", "nls_cp437"} <= names
    assert "virtio_pci" in m["modules"]["builtin"]  # built into Debian's 6.12+
    assert m["modules"]["load_order"] == load_order(deps)
    for rel in deps:
        data = members[f"{root}/{rel}"][1]
        modinfo = ELFFile(io.BytesIO(data)).get_section_by_name(".modinfo").data()
        assert f"vermagic={release} ".encode() in modinfo, rel


def test_manifest_and_bytecode(image) -> None:
    _, members = image
    m = _manifest(members)
    ver = m["python"]["version"]
    assert m["arch"] == ARCH and m["suite"] == "trixie"
    assert m["python"]["packages"][f"python{ver}-minimal"]
    assert m["python"]["packages"]["libc6"]
    assert m["kernel"]["package"].startswith("linux-")
    assert {"ctypes", "code", "cloudboot.init.main", "diskfs", "bootplan.discover"} <= set(m["python"]["modules"])
    assert m["cryptography"] == m["python"]["packages"]["python3-cryptography"]  # shipped for cosign
    assert m["cosign_key"] is None  # no key given: init does not check signatures
    rust = [p for p in members if p.startswith("usr/lib/python3/dist-packages/cryptography/hazmat/bindings/_rust")]
    assert rust and any(p.startswith("usr/lib/python3/dist-packages/_cffi_backend.") for p in members)
    # trixie's amd64 interpreter compiles for itself: the target's very release
    assert m["python"]["bytecode"].endswith("(unchecked-hash pycs); stdlib and packages as bytecode only")
    tag = f"cpython-{ver.replace('.', '')}"
    ours = members[f"usr/lib/cloudboot/cloudboot/init/__pycache__/main.{tag}.pyc"][1]  # beside its source
    stdlib = members[f"usr/lib/python{ver}/os.pyc"][1]  # sourceless: no os.py, no __pycache__
    assert f"usr/lib/python{ver}/os.py" not in members and "usr/lib/cloudboot/cloudboot/init/main.py" in members
    for pyc in (ours, stdlib):
        assert int.from_bytes(pyc[4:8], "little") == 0b01  # PEP 552: hash-based, unchecked
    # only what runs when a library module is imported: tarfile (shutil's lazy import) is not shipped, nor
    # http.client (the init talks HTTP through netstack); our own lazy imports are followed (ssl, for https)
    assert "tarfile" not in m["python"]["modules"] and "http.client" not in m["python"]["modules"]
    assert "ssl" in m["python"]["modules"]
    # ...while Debian's packages keep their lazy imports too (cryptography's ECDSA needs this one)
    assert "cryptography.hazmat.backends" in m["python"]["modules"]


@pytest.mark.parametrize("arch", ["arm64", "riscv64", "loong64"])
def test_every_arch_is_byte_compiled(arch: str) -> None:
    """Each arch's init ships bytecode: under emulation, compiling ~250 modules at each boot cost riscv64 5 s.
    The ports (sid's riscv64, loong64) often build a bug-fix release behind amd64's compiler: then the pycs
    sit beside their sources, which the target compiles should their magic number differ after all."""
    members = {n: d for n, _, d in cpio.read(compress.decompress(trial.initramfs(arch).read_bytes()))}
    m = _manifest({k: (0, v) for k, v in members.items()})
    ver, note = m["python"]["version"], m["python"]["bytecode"]
    assert note.startswith("byte-compiled with Debian's "), note
    tag = f"cpython-{ver.replace('.', '')}"
    if note.endswith("beside their sources"):
        assert f"usr/lib/python{ver}/os.py" in members and f"usr/lib/python{ver}/__pycache__/os.{tag}.pyc" in members
    else:
        assert f"usr/lib/python{ver}/os.pyc" in members and f"usr/lib/python{ver}/os.py" not in members


def test_same_bytecode_within_final_releases_of_one_minor() -> None:
    assert same_bytecode("3.14.10", "3.14.9") and same_bytecode("3.13.5", "3.13.5")
    assert not same_bytecode("3.14.0", "3.13.5")
    assert not same_bytecode("3.14.0~rc2", "3.14.0")  # a pre-release: only the very same one
    assert not same_bytecode("3.15.0~a1", "3.15.0~a2") and same_bytecode("3.15.0~a1", "3.15.0~a1")


def test_reproducible(image, tmp_path: Path) -> None:
    path, _ = image
    again = tmp_path / "again.cpio"
    build(ARCH, again)  # same sources, same SOURCE_DATE_EPOCH, no compression
    assert again.read_bytes() == compress.decompress(path.read_bytes())


@pytest.mark.skipif(os.geteuid() != 0 or os.uname().machine != "x86_64", reason="needs root and an x86_64 host")
def test_packed_interpreter_runs_init_code(image, tmp_path: Path) -> None:
    path, members = image
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["cpio", "-i", "--quiet", "--make-directories", "--no-absolute-filenames"], cwd=root,
                   input=compress.decompress(path.read_bytes()), check=True, capture_output=True)
    # a disk image for disk mode, made by mkfs, seen from inside the chroot
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot/vmlinuz-6.1.0-1-amd64").write_bytes(b"MZ kernel")
    (tree / "boot/initrd.img-6.1.0-1-amd64").write_bytes(b"initrd")
    with open(root / "tmp/disk.img", "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "CHROOT", "-d", str(tree), str(root / "tmp/disk.img")],
                   check=True, capture_output=True)
    script = """
import sys
sys.path.insert(0, "/usr/lib/cloudboot")
from cloudboot.init import cmdline, disk, kexec, linux, main, modules, rescue
cmd = cmdline.parse('cloudboot.disk=LABEL=CHROOT cloudboot.cmdline="console=ttyS0 x=1"')
cmdline.check(cmd)
t = disk.prepare(cmd, "/tmp/run", disks_fn=lambda: ["/tmp/disk.img"])
print("kernel", open(t.kernel, "rb").read(), "cmdline", t.cmdline)
print("pid via ctypes", linux.libc().getpid() > 0)
def interact(banner, env):
    raise StopIteration
rescue.fatal("test reason", {}, interact)
import hashlib, zlib, struct, binascii
print("sha256", hashlib.sha256(b"").hexdigest()[:12])
print("modules", sorted(m for m in sys.modules if m.startswith(("cloudboot", "diskfs", "bootplan")))[:3])
"""
    ver = _manifest(members)["python"]["version"]
    proc = subprocess.run(["chroot", str(root), f"/usr/bin/python{ver}", "-IBSu", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # no GRUB files on the disk: root=UUID=<its fs> ro, then the operator's cloudboot.cmdline
    assert re.search(r"kernel b'MZ kernel' cmdline root=UUID=[0-9a-f-]{36} ro console=ttyS0 x=1", proc.stdout)
    assert "pid via ctypes True" in proc.stdout
    assert "FATAL: test reason" in proc.stdout
    assert "sha256 e3b0c44298fc" in proc.stdout


def test_cli_bad_input(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cloudboot", "initramfs", *args], capture_output=True, text=True)

    p = cli("--arch", "sparc64", "-o", str(tmp_path / "x.cpio.zst"))
    assert p.returncode == 2 and "argument --arch: unknown architecture 'sparc64'" in p.stderr
    p = cli("--arch", "amd64", "-o", str(tmp_path / "x.img"))
    assert p.returncode == 1 and "cannot tell the compression from the name" in p.stderr
    p = cli("--arch", "amd64", "-o", str(tmp_path / "nodir" / "x.cpio"))
    assert p.returncode == 1 and "does not exist" in p.stderr
    p = cli("--arch", "amd64", "--kernel-package", "0.0.1-bogus-amd64", "-o", str(tmp_path / "x.cpio"))
    assert p.returncode == 1 and "no kernel package linux-image-0.0.1-bogus-amd64 in Debian trixie" in p.stderr
    assert "--kernel-package takes a release such as 6." in p.stderr
    assert shutil.which("cpio")
