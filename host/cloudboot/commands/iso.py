"""`cloud-boot iso`: one hybrid image that boots on every arch given, from CD-ROM or as a disk."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.commands.uki import write_atomic
from cloudboot.errors import CloudBootError

#: Platform names and aliases -> our arch names.
PLATFORMS = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64",
             "riscv64": "riscv64", "loong64": "loongarch64", "loongarch64": "loongarch64"}


def parse_efi_args(specs: list[str]) -> dict[str, Path]:
    """['linux/amd64=PATH', ...] -> {arch: path}, with clear errors for every malformed piece."""
    out: dict[str, Path] = {}
    for spec in specs:
        platform, sep, path = spec.partition("=")
        if not sep or not path:
            raise CloudBootError(f"invalid --efi {spec!r} (want linux/<arch>=<path>)")
        os_name, slash, arch = platform.partition("/")
        if os_name != "linux" or not slash:
            raise CloudBootError(f"invalid --efi platform {platform!r} (want linux/<arch>)")
        if arch not in PLATFORMS:
            raise CloudBootError(f"unsupported arch {arch!r} (allowed: amd64, arm64, riscv64, loong64/loongarch64)")
        name = PLATFORMS[arch]
        if name in out:
            raise CloudBootError(f"duplicate EFI input for {name}: {out[name]} and {path}")
        out[name] = Path(path)
    if not out:
        raise CloudBootError("no EFI inputs supplied (give --efi linux/<arch>=<path> or --from-build)")
    return out


def _run(args: argparse.Namespace) -> int:
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.harness.pe import check_efi
    from cloudboot.harness.profiles import profile
    from cloudboot.image.iso import build_iso

    inputs = parse_efi_args(args.efi) if args.efi else {}
    if args.from_build:
        for arch in PLATFORMS.values():
            inputs.setdefault(arch, firmware_dir() / profile(arch).efi_name)
    if not inputs:
        parse_efi_args([])
    efi_files = {}
    for arch, path in sorted(inputs.items()):
        if not path.is_file():
            raise CloudBootError(f"{path}: no such file (EFI input for {arch})")
        check_efi(path, arch)
        efi_files[f"EFI/BOOT/{profile(arch).efi_name}"] = path.read_bytes()
    extra = {}
    for spec in args.extra:
        src, sep, dst = spec.partition("=")
        if not sep or not dst:
            raise CloudBootError(f"invalid --extra {spec!r} (want SRC=DST, DST a path on the ESP)")
        try:
            extra[dst.lstrip("/").replace("\\", "/")] = Path(src).read_bytes()
        except OSError as exc:
            raise CloudBootError(f"--extra {src}: {exc.strerror}") from None
    image, layout = build_iso(efi_files, extra)
    out = Path(args.output)
    write_atomic(out, image)
    print(f"{out}: {len(image)} bytes, arches {', '.join(sorted(inputs))}; ESP {layout['esp_size']} bytes at "
          f"offset {layout['esp_offset']} (El Torito image = GPT partition 2)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("iso", help="build a hybrid ISO/GPT image booting the given EFI apps on each arch")
    p.add_argument("--efi", action="append", default=[], metavar="linux/ARCH=PATH",
                   help="an EFI application for an arch (amd64, arm64, riscv64, loong64; repeatable)")
    p.add_argument("--from-build", action="store_true", help="take every arch's build/firmware/BOOT<ARCH>.EFI")
    p.add_argument("--extra", action="append", default=[], metavar="SRC=DST", help="another file for the ESP")
    p.add_argument("-o", "--output", default="build/boot.iso", help="output image (default build/boot.iso)")
    p.set_defaults(func=_run)
