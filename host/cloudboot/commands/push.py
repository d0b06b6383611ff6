"""`cloud-boot push {artifact,plan,index,multi,modpack}`: put boot artifacts into an OCI registry; prints
REF@digest."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import (
    add_json,
    add_output,
    add_platform,
    add_verb,
    add_verb_group,
    platform_file_type,
    platform_ref_type,
    print_result,
    utf8_bytes,
)
from cloudboot.errors import CloudBootError
from cloudboot.registry.client import add_registry_options, client_from_args, parse_ref


def _pushed(args: argparse.Namespace, ref, digest: str) -> int:
    from cloudboot.registry.push import pinned

    print_result(args, pinned(ref, digest), {"ref": pinned(ref, digest), "digest": digest})
    return 0


def _artifact(args: argparse.Namespace) -> int:
    """One manifest whose layers are the given payloads, in the original's order and media types, and the
    command line as a text layer."""
    from cloudboot.registry.push import PAYLOADS, push_artifact

    ref = parse_ref(args.ref, args)
    if args.cmdline is not None:
        utf8_bytes(args.cmdline, "--cmdline")
    files = {flag: Path(getattr(args, flag)) for flag, _, _ in PAYLOADS if getattr(args, flag)}
    return _pushed(args, ref, push_artifact(client_from_args(args), ref, args.platform, files, args.cmdline))


def _plan(args: argparse.Namespace) -> int:
    """Check the plan in full, then push its HCL layer and its parsed form (so the firmware never parses
    HCL)."""
    from cloudboot.registry.push import push_plan

    ref = parse_ref(args.ref, args)
    return _pushed(args, ref, push_plan(client_from_args(args), ref, args.file))


def _index(args: argparse.Namespace) -> int:
    """An OCI index listing one manifest per platform (copied into the index's repository when it lives
    elsewhere), in the order given."""
    from cloudboot.registry.push import push_index

    ref = parse_ref(args.ref, args)
    entries = [(platform, parse_ref(child, args)) for platform, child in args.platform]
    if not entries:
        raise CloudBootError("push index: give at least one -p os/arch=REF")
    return _pushed(args, ref, push_index(client_from_args(args), ref, entries))


def _multi(args: argparse.Namespace) -> int:
    """One artifact per platform (`<tag>-<arch>`) from `--kernel linux/ARCH=FILE`-style options, then their
    index at REF."""
    from cloudboot.registry.push import PAYLOADS, pinned, push_multi

    ref = parse_ref(args.ref, args)
    if args.cmdline is not None:
        utf8_bytes(args.cmdline, "--cmdline")
    files: dict[str, dict[str, Path]] = {}
    for flag, _, _ in PAYLOADS:
        for platform, path in getattr(args, flag):
            if not path.is_file():
                raise CloudBootError(f"push multi: --{flag} {platform}={path}: no such file")
            if flag in files.setdefault(platform, {}):
                raise CloudBootError(f"push multi: --{flag} given twice for {platform}")
            files[platform][flag] = path
    digest, pushed = push_multi(client_from_args(args), ref, files, args.cmdline)
    if not args.json:
        for p in pushed:
            print(f"{p['platform']} {p['ref']}")
    print_result(args, pinned(ref, digest), {"ref": pinned(ref, digest), "digest": digest, "manifests": pushed})
    return 0


def _modpack(args: argparse.Namespace) -> int:
    """Pack a kernel's module tree into the modules cpio.gz an artifact's modules layer carries; with --push,
    push it as an artifact of its own."""
    from cloudboot.registry.modpack import build_modpack
    from cloudboot.registry.push import push_modpack

    build_modpack(args.src, args.output)
    if not args.push:
        print(args.output)
        return 0
    ref = parse_ref(args.push, args)
    return _pushed(args, ref, push_modpack(client_from_args(args), ref, args.output))


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verb_group(sub, "push", "push kernels, initrds, modules, plans and indexes to an OCI registry",
                           "Push boot artifacts, plans and multi-arch indexes (REFERENCE §3) and print what was "
                           "pushed as REF@digest.", "WHAT")

    a = add_verb(verbs, "artifact", _artifact, "a boot artifact: kernel/initrd/modules/... and cmdline layers")
    a.add_argument("ref", help="registry/repo:tag")
    add_platform(a, "the artifact's platform", required=True)
    for flag, title in (("kernel", "kernel image"), ("initrd", "initrd"),
                        ("modules", "modules cpio.gz (see push modpack)"), ("modloop", "Alpine modloop"),
                        ("apkovl", "Alpine apkovl"), ("squashfs", "Debian live squashfs")):
        a.add_argument(f"--{flag}", metavar="FILE", help=title)
    a.add_argument("--cmdline", metavar="TEXT", help="kernel command line (a raw text layer)")

    pl = add_verb(verbs, "plan", _plan, "a plan: the HCL file plus its parsed JSON form")
    pl.add_argument("ref", help="registry/repo:tag")
    pl.add_argument("file", type=Path, metavar="FILE", help="the plan (HCL)")

    ix = add_verb(verbs, "index", _index, "a multi-arch index over per-platform manifests")
    ix.add_argument("ref", help="registry/repo:tag")
    ix.add_argument("-p", "--platform", action="append", default=[], type=platform_ref_type, metavar="OS/ARCH=REF",
                    help="one per platform, in the order the index lists them (the arch in any spelling)")

    mu = add_verb(verbs, "multi", _multi, "one artifact per platform and their multi-arch index, in one command")
    mu.add_argument("ref", help="registry/repo:tag (the index; the artifacts go to tag-<arch>)")
    for flag, short, title in (("kernel", "-k", "kernel image"), ("initrd", "-i", "initrd"),
                               ("modules", "-m", "modules cpio.gz"), ("modloop", None, "Alpine modloop"),
                               ("apkovl", None, "Alpine apkovl"), ("squashfs", None, "Debian live squashfs")):
        mu.add_argument(*([short] if short else []), f"--{flag}", action="append", default=[],
                        type=platform_file_type, metavar="OS/ARCH=FILE",
                        help=f"{title} for a platform (repeatable; the arch in any spelling)")
    mu.add_argument("--cmdline", metavar="TEXT", help="kernel command line for every platform (a raw text layer)")

    mp = add_verb(verbs, "modpack", _modpack, "pack /lib/modules/VER into a modules cpio.gz (and push it)")
    mp.add_argument("src", type=Path, metavar="SRC", help="/lib/modules/<release>")
    add_output(mp, "the modules cpio.gz")
    mp.add_argument("--push", metavar="REF", help="also push it as an artifact with one modules layer")
    for q in (a, pl, ix, mu, mp):
        add_json(q)
        add_registry_options(q)
