"""`cloud-boot sign`: Authenticode-sign an EFI image (UKI or app) for Secure Boot."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.errors import CloudBootError


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CloudBootError(f"{what} {path}: {exc.strerror}") from None


def _run(args: argparse.Namespace) -> int:
    from cloudboot.commands.uki import write_atomic
    from cloudboot.image.authenticode import sign

    signed = sign(_read(args.image, "image"), str(args.image), _read(args.key, "--key"), _read(args.cert, "--cert"))
    write_atomic(args.output, signed)
    print(f"{args.output}: signed ({len(signed)} bytes)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="Authenticode-sign a PE32+ image (checked by sbverify in the tests)")
    p.add_argument("image", type=Path)
    p.add_argument("--key", type=Path, required=True, help="PEM RSA private key")
    p.add_argument("--cert", type=Path, required=True, help="PEM X.509 certificate")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_run)
