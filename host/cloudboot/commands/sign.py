"""`cloud-boot sign`: Authenticode-sign an EFI image (UKI or app) for Secure Boot."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import add_output, add_verb


def _run(args: argparse.Namespace) -> int:
    """Add an Authenticode signature (PKCS#7, SHA-256) to a PE32+ image, as sbsign does, so firmware with the
    certificate in db boots it."""
    from cloudboot.image.authenticode import SIGN_MAX, sign
    from cloudboot.image.output import read_input, write_atomic

    signed = sign(read_input(args.image, "image", SIGN_MAX), str(args.image), read_input(args.key, "--key"),
                  read_input(args.cert, "--cert"))
    write_atomic(args.output, signed)
    print(f"{args.output}: signed ({len(signed)} bytes)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "sign", _run, "Authenticode-sign a PE32+ image (checked by sbverify in the tests)")
    p.add_argument("image", type=Path, help="the PE32+ image (UKI or EFI app)")
    p.add_argument("--key", type=Path, required=True, help="PEM RSA private key (e.g. genkey's db.key)")
    p.add_argument("--cert", type=Path, required=True, help="PEM X.509 certificate (e.g. genkey's db.crt)")
    add_output(p, "the signed image")
