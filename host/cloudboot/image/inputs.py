"""The ESP contents the `iso` and `esp` verbs take on the command line: per-arch EFI apps and extra files."""

from __future__ import annotations

from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.image.output import read_input


def esp_inputs(efi: list[str], extra: list[str], defaults: dict[str, Path] | None = None,
               need_efi: bool = True) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(boot files, extra files) for an ESP from `--efi linux/ARCH=PATH` and `--extra SRC=DST` (plus
    `defaults` {arch: path} for arches not given), every file checked and none replacing another."""
    inputs = parse_efi_args(efi)
    for arch, path in (defaults or {}).items():
        inputs.setdefault(arch, path)
    if not (inputs or need_efi or extra):
        raise CloudBootError("nothing to put on the ESP (give --efi linux/<arch>=<path> and/or --extra SRC=DST)")
    files = extra_files(extra)
    boot = efi_files(inputs) if inputs or need_efi else {}
    merge(boot, files)
    return boot, files


def parse_efi_args(specs: list[str]) -> dict[str, Path]:
    """['linux/amd64=PATH', ...] -> {arch: path} (any spelling of the arch), with clear errors for every
    malformed piece."""
    out: dict[str, Path] = {}
    for spec in specs:
        platform, sep, path = spec.partition("=")
        if not sep or not path:
            raise CloudBootError(f"invalid --efi {spec!r} (want linux/<arch>=<path>)")
        os_name, slash, arch = platform.partition("/")
        if os_name != "linux" or not slash:
            raise CloudBootError(f"invalid --efi platform {platform!r} (want linux/<arch>)")
        name = arches.get(arch).name
        if name in out:
            raise CloudBootError(f"duplicate EFI input for {name}: {out[name]} and {path}")
        out[name] = Path(path)
    return out


def efi_files(inputs: dict[str, Path]) -> dict[str, bytes]:
    """{arch: path} -> {'EFI/BOOT/BOOT<ARCH>.EFI': bytes}, each checked to be a PE32+ EFI application whose
    machine is the arch's."""
    from cloudboot.image.pe import PeImage

    if not inputs:
        raise CloudBootError("no EFI inputs supplied (give --efi linux/<arch>=<path> or --from-build)")
    out = {}
    for arch, path in sorted(inputs.items()):
        if not path.is_file():
            raise CloudBootError(f"{path}: {'not a regular file' if path.exists() else 'no such file'} "
                                 f"(EFI input for {arch})")
        data = read_input(path, f"EFI input for {arch}")
        PeImage(data, str(path)).check_efi(arch)
        out[f"EFI/BOOT/{arches.get(arch).efi_name}"] = data
    return out


def extra_files(specs: list[str]) -> dict[str, bytes]:
    """['SRC=DST', ...] -> {DST: bytes of SRC}; DST is a path on the ESP ('/' or '\\' separated)."""
    from cloudboot.image.esp import normalize_path

    out: dict[str, bytes] = {}
    seen: dict[str, str] = {}
    for spec in specs:
        src, sep, dst = spec.partition("=")
        if not sep or not src or not dst:
            raise CloudBootError(f"invalid --extra {spec!r} (want SRC=DST, DST a path on the ESP)")
        norm = normalize_path(dst)
        if norm.upper() in seen:
            raise CloudBootError(f"--extra {spec!r}: {dst!r} is already given by "
                                 f"--extra {seen[norm.upper()]!r} (FAT names ignore case)")
        seen[norm.upper()] = spec
        out[norm] = read_input(Path(src), "--extra")
    return out


def merge(boot: dict[str, bytes], extra: dict[str, bytes]) -> dict[str, bytes]:
    """Boot files and extra files together; an extra file may not replace a boot file."""
    taken = {k.upper() for k in boot}
    for dest in extra:
        if dest.upper() in taken:
            raise CloudBootError(f"--extra destination {dest!r} would replace an EFI boot file")
    return {**boot, **extra}


def parse_size(text: str) -> int:
    """'64M', '1G', '33554432' -> bytes (K/M/G are powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = units.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in units else t
    if not digits.isdigit():
        raise CloudBootError(f"invalid size {text!r} (want e.g. 64M, 1G or a byte count)")
    return int(digits) * mult
