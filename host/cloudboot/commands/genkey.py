"""`cloud-boot genkey`: a self-signed RSA-2048 certificate and key for test Secure Boot databases."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from cloudboot.errors import CloudBootError


def _run(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from cloudboot.commands.uki import write_atomic

    if not args.output.is_dir():
        raise CloudBootError(f"{args.output}: not a directory")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, args.cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    write_atomic(args.output / "db.key", key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    write_atomic(args.output / "db.crt", cert.public_bytes(serialization.Encoding.PEM))
    (args.output / "db.key").chmod(0o600)
    print(f"{args.output / 'db.key'}, {args.output / 'db.crt'}: CN={args.cn}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("genkey", help="make a test signing key and self-signed certificate (db.key, db.crt)")
    p.add_argument("--cn", default="cloud-boot test db", help="certificate common name")
    p.add_argument("-o", "--output", type=Path, default=Path("."), help="directory for db.key and db.crt")
    p.set_defaults(func=_run)
