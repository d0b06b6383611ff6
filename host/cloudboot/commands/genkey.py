"""`cloud-boot genkey`: a self-signed RSA-2048 certificate and key for test Secure Boot databases."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_dir, add_verb, utf8_bytes


def _run(args: argparse.Namespace) -> int:
    """An RSA-2048 key (db.key, created mode 0600) and a self-signed CA certificate (db.crt, ten years) for
    test Secure Boot databases and `sign`. Existing files are kept unless --force."""
    from cloudboot.image.authenticode import self_signed

    utf8_bytes(args.cn, "--cn")
    key, cert = self_signed(args.cn, args.dir, force=args.force)
    print(f"{key}, {cert}: CN={args.cn}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "genkey", _run, "make a test signing key and self-signed certificate (db.key, db.crt)")
    p.add_argument("--cn", default="cloud-boot test db", help="certificate common name (1 to 64 characters)")
    add_dir(p, "where db.key and db.crt are written", default=".")
    p.add_argument("--force", action="store_true", help="replace an existing db.key and db.crt")
