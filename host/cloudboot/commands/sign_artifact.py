"""`cloud-boot sign-artifact REF --cosign-key cosign.key`: a cosign signature (simple-signing, `sha256-<hex>.sig`
tag)."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_cosign_key, add_json, add_verb, print_result
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref


def _run(args: argparse.Namespace) -> int:
    """Sign the manifest REF names the way cosign does (a simple-signing payload under the sha256-<hex>.sig
    tag), so `cosign verify` and our init accept it; prints the signed REF@digest."""
    from cloudboot.registry.cosign import load_private_key, sign_artifact

    key = load_private_key(args.cosign_key)
    ref = parse_ref(args.ref, args)
    digest, _ = sign_artifact(client_from_args(args), ref, key)
    print_result(args, f"{ref.name()}@{digest}", {"ref": f"{ref.name()}@{digest}", "digest": digest})
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "sign-artifact", _run, "cosign-sign an artifact, plan or index in its registry")
    p.add_argument("ref", help="registry/repo:tag or registry/repo@digest")
    add_cosign_key(p, "cosign.key (its password in $COSIGN_PASSWORD) or a plain PEM EC private key", required=True)
    add_json(p)
    add_registry_options(p)
