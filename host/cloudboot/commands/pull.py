"""`cloud-boot pull REF -o DIR`: resolve the platform's manifest, check cosign, fetch every layer verified."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cloudboot.cliopts import add_platform
from cloudboot.commands.push import oci_errors
from cloudboot.errors import CloudBootError
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref
from oci.ref import parse_platform


@oci_errors
def _run(args: argparse.Namespace) -> int:
    from oci.pull import resolve_verified

    verifier = None
    if args.key:
        from cloudboot.registry.cosign import Verifier

        verifier = Verifier.from_file(Path(args.key))
    policy = args.cosign or ("enforce" if verifier else "off")
    os_, arch, variant = parse_platform(args.platform)
    ref = parse_ref(args.ref, args)
    client = client_from_args(args)
    manifest, pinned, top, verified = resolve_verified(
        client, ref, os_, arch, verifier, policy, log=lambda m: print(f"cloud-boot: {m}", file=sys.stderr))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, layer in enumerate(manifest["layers"]):
        title = (layer.get("annotations") or {}).get("org.opencontainers.image.title") or f"layer{i}"
        name = Path(title).name
        if name in ("", ".", ".."):
            raise CloudBootError(f"{pinned}: layer {i} has an unusable title {title!r}")
        client.fetch_blob_to_path(pinned, layer["digest"], str(out / name), size=layer["size"],
                                  max_size=args.max_size)
        files.append(name)
    print(json.dumps({"ref": str(pinned), "signed_digest": top, "verified": verified, "files": files}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="download an artifact's layers (verified digests, optional cosign check)")
    p.add_argument("ref")
    p.add_argument("-o", "--output", required=True, help="directory for the layers (named by their titles)")
    add_platform(p, "the manifest picked from an index (default linux/amd64)", default="linux/amd64")
    p.add_argument("--key", help="cosign public key (PEM); enables --cosign enforce unless told otherwise")
    p.add_argument("--cosign", choices=["enforce", "warn", "off"], help="signature policy")
    p.add_argument("--max-size", type=int, default=4 << 30, help="cap per layer in bytes (default 4 GiB)")
    add_registry_options(p)
    p.set_defaults(func=_run)
