"""`cloud-boot uki`: a Unified Kernel Image: the stub (our firmware, or systemd's) plus kernel sections."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from cloudboot.errors import CloudBootError

DEFAULT_OSREL = "ID=cloud-boot\nNAME=cloud-boot\nVERSION_ID=1\n"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CloudBootError(f"{what} {path}: {exc.strerror}") from None


def write_atomic(out: Path, data: bytes) -> None:
    """Write `out` through a temporary file and a rename: never a half-written output."""
    if not out.parent.is_dir():
        raise CloudBootError(f"{out}: the directory {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(args: argparse.Namespace) -> int:
    from cloudboot.image.pe import PeImage

    stub = PeImage(_read(args.stub, "--stub"), str(args.stub))
    kernel = _read(args.linux, "--linux")
    if kernel[:2] == b"MZ":
        k = PeImage(kernel, str(args.linux))
        if k.machine != stub.machine:
            raise CloudBootError(f"{args.linux}: kernel machine {k.machine:#06x} does not match the stub's "
                                 f"{stub.machine:#06x}")
    osrel = _read(args.osrel, "--osrel") if args.osrel else DEFAULT_OSREL.encode()
    sections = [(".osrel", osrel)]
    if args.cmdline is not None:
        sections.append((".cmdline", args.cmdline.encode() + b"\n"))
    if args.uname:
        sections.append((".uname", args.uname.encode() + b"\n"))
    if args.sbat:
        sections.append((".sbat", _read(args.sbat, "--sbat")))
    sections.append((".linux", kernel))
    if args.initrd:
        sections.append((".initrd", b"".join(_read(p, "--initrd") for p in args.initrd)))
    image = stub.append_sections(sections)
    write_atomic(args.output, image)
    print(f"{args.output}: {len(image)} bytes ({', '.join(n for n, _ in sections)})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("uki", help="build a Unified Kernel Image from a stub, a kernel and initrds")
    p.add_argument("--stub", type=Path, required=True, help="the EFI stub (e.g. build/firmware/BOOTX64.EFI)")
    p.add_argument("--linux", type=Path, required=True, help="the kernel image")
    p.add_argument("--initrd", type=Path, action="append", default=[], help="initrd (repeatable, concatenated)")
    p.add_argument("--cmdline", help="kernel command line (.cmdline)")
    p.add_argument("--osrel", type=Path, help="os-release file (.osrel; default names cloud-boot)")
    p.add_argument("--uname", help="kernel version (.uname)")
    p.add_argument("--sbat", type=Path, help="SBAT data (.sbat)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_run)
