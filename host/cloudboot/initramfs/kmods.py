"""Kernel modules for the initramfs, taken from the Debian kernel package the image is built for.

Debian's packages carry the modules (xz- or zstd-compressed) but no modules.dep (depmod runs at install
time), so dependencies come from each module's own `.modinfo` section (`depends=`, written by modpost at
kernel build time). Modules built into the kernel (modules.builtin) are skipped. The result is stored
uncompressed (the whole initramfs is compressed anyway, and finit_module then needs no decompressor) with a
modules.dep in depmod's format for exactly what is shipped, which init reads back.
"""

from __future__ import annotations

import io
import lzma
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

from cloudboot.errors import CloudBootError
from cloudboot.init.modules import load_order, module_name

#: What init needs from the kernel: virtio disks/NICs/SCSI (virtio_pci is built in on 6.12+), efivarfs for EFI
#: variables, and FAT with the code pages a default vfat mount asks for (no modprobe in the initramfs to fetch
#: them): the init reads every target filesystem through diskfs, but Path C mounts the cache ESP to stage on it.
DEFAULT_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "efivarfs", "vfat", "nls_cp437",
                   "nls_ascii", "nls_iso8859_1", "nls_utf8"]


@dataclass
class ModuleSet:
    """The chosen modules: {relative path: uncompressed bytes}, modules.dep text, and what was built in."""

    release: str
    files: dict[str, bytes] = field(default_factory=dict)
    dep_text: str = ""
    builtin: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)


def modules_dir(tree: Path, release: str) -> Path:
    """usr/lib/modules/<release> (or lib/modules/<release>) inside an unpacked kernel package."""
    for base in ("usr/lib/modules", "lib/modules"):
        d = tree / base / release
        if (d / "kernel").is_dir():
            return d
    raise CloudBootError(f"no modules for {release} in {tree} (looked in usr/lib/modules and lib/modules)")


def decompress(path: Path) -> bytes:
    """A module file's ELF bytes (.ko, .ko.xz, .ko.zst, .ko.gz)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        from cloudboot.initramfs.compress import unzstd

        return unzstd(data, str(path))
    if path.name.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    return data


def modinfo(elf: bytes, where: str = "module") -> dict[str, str]:
    """The `.modinfo` key=value strings of a module (the first value of repeated keys)."""
    try:
        sec = ELFFile(io.BytesIO(elf)).get_section_by_name(".modinfo")
    except Exception as exc:  # noqa: BLE001 - pyelftools raises several types on bad input
        raise CloudBootError(f"{where}: not a valid ELF kernel module ({exc})") from None
    if sec is None:
        raise CloudBootError(f"{where}: no .modinfo section (not a kernel module?)")
    info: dict[str, str] = {}
    for item in sec.data().split(b"\0"):
        key, eq, value = item.decode(errors="replace").partition("=")
        if eq:
            info.setdefault(key, value)
    return info


def select(tree: Path, release: str, wanted: list[str], base: Path | None = None) -> ModuleSet:
    """The wanted modules and everything they depend on, from the unpacked kernel package at `tree`
    (`base`: the unpacked linux-base package holding modules.builtin, where the kernel is split that way)."""
    mdir = modules_dir(tree, release)
    index = {module_name(p.name): p for p in (mdir / "kernel").rglob("*.ko*")}
    builtin_file = mdir / "modules.builtin"
    if not builtin_file.exists() and base is not None:
        builtin_file = next((f for f in (base / d / release / "modules.builtin" for d in ("usr/lib/modules",
                                                                                         "lib/modules"))
                             if f.exists()), builtin_file)
    builtin = ({module_name(line.strip()) for line in builtin_file.read_text().splitlines() if line.strip()}
               if builtin_file.exists() else set())
    out = ModuleSet(release)
    deps: dict[str, list[str]] = {}
    elves: dict[str, bytes] = {}

    def add(name: str, needed_by: str | None) -> str | None:
        name = name.replace("-", "_")
        if name in builtin:
            if name not in out.builtin:
                out.builtin.append(name)
            return None
        path = index.get(name)
        if path is None:
            why = f" (needed by {needed_by})" if needed_by else ""
            raise CloudBootError(f"kernel module {name}{why} is neither built into {release} nor shipped in its "
                                 "package")
        rel = "kernel/" + path.relative_to(mdir / "kernel").as_posix()
        for ext in (".xz", ".zst", ".gz"):
            rel = rel.removesuffix(ext)
        if rel in deps:
            return rel
        deps[rel] = []
        elf = decompress(path)
        info = modinfo(elf, str(path))
        if info.get("vermagic", "").split(" ")[0] != release:
            raise CloudBootError(f"{path}: built for {info.get('vermagic', '?')!r}, not {release}")
        elves[rel] = elf
        for d in filter(None, info.get("depends", "").split(",")):
            dep = add(d, name)
            if dep:
                deps[rel].append(dep)
        return rel

    for name in wanted:
        add(name, None)
    out.order = load_order(deps)
    # depmod's format: each line lists all (transitive) dependencies, the one to load first last.
    lines = []
    for rel in sorted(deps):
        closure = [p for p in load_order(deps, [rel]) if p != rel]
        lines.append(f"{rel}: {' '.join(reversed(closure))}".rstrip())
    out.dep_text = "\n".join(lines) + "\n"
    out.files = {rel: elves[rel] for rel in sorted(deps)}
    return out
