"""`cloud-boot push {artifact,plan,index,modpack}`: put boot artifacts into an OCI registry; prints REF@digest."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from cloudboot.cliopts import add_platform, platform_ref_type
from cloudboot.errors import CloudBootError
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref
from oci.errors import OciError


def oci_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Registry failures (OciError) become CloudBootError: one line, exit status 1."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except OciError as exc:
            raise CloudBootError(str(exc)) from None

    return wrapped


@oci_errors
def _artifact(args: argparse.Namespace) -> int:
    from cloudboot.registry.push import PAYLOADS, pinned, push_artifact

    ref = parse_ref(args.ref, args)
    files = {flag: Path(getattr(args, flag)) for flag, _, _ in PAYLOADS if getattr(args, flag)}
    for path in files.values():
        if not path.is_file():
            raise CloudBootError(f"push artifact: {path}: no such file")
    digest = push_artifact(client_from_args(args), ref, args.platform, files, args.cmdline)
    print(pinned(ref, digest))
    return 0


@oci_errors
def _plan(args: argparse.Namespace) -> int:
    from cloudboot.registry.push import pinned, push_plan

    ref = parse_ref(args.ref, args)
    print(pinned(ref, push_plan(client_from_args(args), ref, Path(args.file))))
    return 0


@oci_errors
def _index(args: argparse.Namespace) -> int:
    from cloudboot.registry.push import pinned, push_index

    ref = parse_ref(args.ref, args)
    entries = [(platform, parse_ref(child, args)) for platform, child in args.platform]
    if not entries:
        raise CloudBootError("push index: give at least one -p os/arch=REF")
    print(pinned(ref, push_index(client_from_args(args), ref, entries)))
    return 0


@oci_errors
def _modpack(args: argparse.Namespace) -> int:
    import oci
    from cloudboot.registry.modpack import build_modpack
    from cloudboot.registry.push import canonical_json, manifest_json, pinned, push_bytes, push_file

    out = Path(args.output)
    build_modpack(Path(args.src), out)
    if not args.push:
        print(out)
        return 0
    ref = parse_ref(args.push, args)
    client = client_from_args(args)
    config = push_bytes(client, ref, canonical_json({"created": None}), oci.MT_CONFIG)
    layer = push_file(client, ref, out, oci.MT_MODULES, {oci.ANN_TITLE: "modules", oci.ANN_SOURCE_BASENAME: out.name})
    print(pinned(ref, client.push_manifest(ref, manifest_json(config, [layer]), oci.MT_OCI_MANIFEST)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="push kernels, initrds, modules, plans and indexes to an OCI registry")
    verbs = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    a = verbs.add_parser("artifact", help="a boot artifact: kernel/initrd/modules/... and cmdline layers")
    a.add_argument("ref", help="registry/repo:tag")
    add_platform(a, "the artifact's platform", required=True)
    for flag, title, _ in (("kernel", "kernel image", 0), ("initrd", "initrd", 0),
                           ("modules", "modules cpio.gz (see push modpack)", 0), ("modloop", "Alpine modloop", 0),
                           ("apkovl", "Alpine apkovl", 0), ("squashfs", "Debian live squashfs", 0)):
        a.add_argument(f"--{flag}", metavar="FILE", help=title)
    a.add_argument("--cmdline", metavar="TEXT", help="kernel command line (a raw text layer)")
    add_registry_options(a)
    a.set_defaults(func=_artifact)

    pl = verbs.add_parser("plan", help="a plan: the HCL file plus its parsed JSON form")
    pl.add_argument("ref")
    pl.add_argument("--file", "-f", required=True, help="plan.hcl")
    add_registry_options(pl)
    pl.set_defaults(func=_plan)

    ix = verbs.add_parser("index", help="a multi-arch index over per-platform manifests")
    ix.add_argument("ref")
    ix.add_argument("-p", "--platform", action="append", default=[], type=platform_ref_type, metavar="OS/ARCH=REF",
                    help="one per platform, in the order the index lists them (the arch in any spelling)")
    add_registry_options(ix)
    ix.set_defaults(func=_index)

    mp = verbs.add_parser("modpack", help="pack /lib/modules/VER into a modules cpio.gz (and push it)")
    mp.add_argument("--src", required=True, help="/lib/modules/<release>")
    mp.add_argument("-o", "--output", required=True, help="out.cpio.gz")
    mp.add_argument("--push", metavar="REF", help="also push it as an artifact with one modules layer")
    add_registry_options(mp)
    mp.set_defaults(func=_modpack)
