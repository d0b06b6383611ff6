"""`cloud-boot sign-artifact REF --key cosign.key`: a cosign signature (simple-signing, `sha256-<hex>.sig` tag)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.commands.push import oci_errors
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref


@oci_errors
def _run(args: argparse.Namespace) -> int:
    from cloudboot.registry.cosign import load_private_key, sign_artifact

    key = load_private_key(Path(args.key))
    ref = parse_ref(args.ref, args)
    digest, _ = sign_artifact(client_from_args(args), ref, key)
    print(f"{ref.name()}@{digest}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign-artifact", help="cosign-sign an artifact, plan or index in its registry")
    p.add_argument("ref")
    p.add_argument("--key", required=True,
                   help="cosign.key (password in $COSIGN_PASSWORD) or a plain PEM EC private key")
    add_registry_options(p)
    p.set_defaults(func=_run)
