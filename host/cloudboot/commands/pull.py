"""`cloud-boot pull REF -d DIR`: resolve the platform's manifest, check cosign, fetch every layer verified."""

from __future__ import annotations

import argparse
import sys

from cloudboot.cliopts import add_cosign_key, add_dir, add_json, add_platform, add_verb, positive, print_result
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref


def _run(args: argparse.Namespace) -> int:
    """Resolve the platform's manifest (through an index if there is one), check its cosign signature as
    --cosign says, and download every layer into DIR, named by its title. Layers are staged next to DIR and
    moved into place only when every one verified (a failed pull leaves DIR as it was); titles that are not
    plain file names, or that two layers share, are refused; a file already in DIR is replaced only with
    --force."""
    from cloudboot.registry.pull import pull_layers

    verifier = None
    if args.cosign_key:
        from cloudboot.registry.cosign import Verifier

        verifier = Verifier.from_file(args.cosign_key)
    policy = args.cosign or ("enforce" if verifier else "off")
    res = pull_layers(client_from_args(args), parse_ref(args.ref, args), args.platform, args.dir, verifier=verifier,
                      policy=policy, max_size=args.max_size, force=args.force,
                      log=lambda m: print(f"cloud-boot: {m}", file=sys.stderr))
    signed = "signature verified" if res["verified"] else "signature not checked"
    text = "\n".join([f"{res['ref']}: {len(res['files'])} layer(s), {signed}"]
                     + [str(args.dir / name) for name in res["files"]])
    print_result(args, text, res)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "pull", _run, "download an artifact's layers (verified digests, optional cosign check)")
    p.add_argument("ref", help="registry/repo:tag or registry/repo@digest")
    add_dir(p, "where the layers go (named by their titles)")
    add_platform(p, "the manifest picked from an index (default linux/amd64); when given, a reference to one "
                    "manifest must be for it too (its config's os and architecture)")
    add_cosign_key(p, "cosign public key (cosign.pub, PEM); enables --cosign enforce unless told otherwise")
    p.add_argument("--cosign", choices=["enforce", "warn", "off"], help="signature policy")
    p.add_argument("--max-size", type=positive(int), default=4 << 30, help="cap per layer in bytes (default 4 GiB)")
    p.add_argument("--force", action="store_true", help="replace files of DIR that layers have the names of")
    add_json(p)
    add_registry_options(p)
