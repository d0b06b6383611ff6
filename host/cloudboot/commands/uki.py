"""`cloud-boot uki`: a Unified Kernel Image: the stub (our firmware, or systemd's) plus kernel sections."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import add_output, add_verb, utf8_bytes
from cloudboot.errors import CloudBootError
from cloudboot.image.output import read_input, write_atomic


def _text_or_file(value: str, what: str) -> bytes:
    """ukify's convention: `@PATH` is a file's contents, anything else the text itself (both verbatim)."""
    if value.startswith("@"):
        return read_input(Path(value[1:]), what)
    return utf8_bytes(value, what)


def _section(spec: str) -> tuple[str, bytes]:
    name, sep, value = spec.partition(":")
    if not sep:
        raise CloudBootError(f"invalid --section {spec!r} (want NAME:TEXT or NAME:@PATH)")
    return name, _text_or_file(value, f"--section {name}")


def _run(args: argparse.Namespace) -> int:
    """A Unified Kernel Image: the stub (our firmware, or systemd's) with .linux, .initrd, .cmdline, ...
    sections, laid out as systemd's ukify does; text is stored verbatim."""
    from cloudboot.image.uki import UkiParts, build_uki

    parts = UkiParts(
        linux=read_input(args.linux, "--linux"), linux_name=str(args.linux),
        initrds=[read_input(p, "--initrd") for p in args.initrd],
        cmdline=_text_or_file(args.cmdline, "--cmdline") if args.cmdline is not None else None,
        osrel=read_input(args.osrel, "--osrel") if args.osrel else None,
        uname=utf8_bytes(args.uname, "--uname") if args.uname else None,
        devicetree=read_input(args.devicetree, "--devicetree") if args.devicetree else None,
        sbat=read_input(args.sbat, "--sbat") if args.sbat else None, sbat_name=str(args.sbat),
        extra=[_section(s) for s in args.section])
    image, names = build_uki(read_input(args.stub, "--stub"), str(args.stub), parts)
    write_atomic(args.output, image)
    print(f"{args.output}: {len(image)} bytes ({', '.join(names)})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `uki` verb."""
    p = add_verb(sub, "uki", _run, "build a Unified Kernel Image from a stub, a kernel and initrds")
    p.add_argument("--stub", type=Path, required=True, help="the EFI stub (e.g. build/firmware/BOOTX64.EFI)")
    p.add_argument("--linux", type=Path, required=True, help="the kernel image (.linux)")
    p.add_argument("--initrd", type=Path, action="append", default=[],
                   help="initrd (repeatable, concatenated)")
    p.add_argument("--cmdline", metavar="TEXT|@PATH", help="kernel command line (.cmdline)")
    p.add_argument("--osrel", type=Path, help="os-release file (.osrel; default names cloud-boot)")
    p.add_argument("--uname", help="kernel version (.uname)")
    p.add_argument("--devicetree", type=Path, help="device tree blob (.dtb)")
    p.add_argument("--sbat", type=Path, help="SBAT data, merged with the stub's and kernel's (.sbat)")
    p.add_argument("--section", action="append", default=[], metavar="NAME:TEXT|@PATH",
                   help="another section (repeatable; name of at most 8 characters)")
    add_output(p, "the UKI")
