"""`cloud-boot inspect`: what is inside a PE32+ (UKI or EFI app), like `ukify inspect` and
`sbverify --list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import add_json, add_verb, print_json
from cloudboot.untrusted import shown


def _run(args: argparse.Namespace) -> int:
    """What is inside a PE32+ image (UKI or EFI app): machine, subsystem, Authenticode signatures (and whether
    each matches the image, as sbverify checks it before asking about trust), and every section with its size and
    SHA-256 (and the text of the text sections), like `ukify inspect` and `sbverify --list`."""
    from cloudboot.image.describe import describe

    info = describe(args.file)
    if args.json:
        print_json(info)
        return 0
    print(f"{info['file']}: PE32+ {info['machine']}, subsystem {info['subsystem']} "
          f"({info['subsystem_name']}), {_signed(info['signatures'])}")
    for i, sig in enumerate(info["signatures"], 1):
        print(f"  signature {i} (type {sig['type']:#06x}): {sig['check']}")
        for c in sig["certificates"]:
            print(shown(f"    subject {c['subject']}, issuer {c['issuer']}, serial {c['serial']}"))
    for s in info["sections"]:
        print(f"  {shown(s['name']):<8} size {s['size']:>10}  vaddr {s['vaddr']:#010x}  "
              f"flags {s['characteristics']:#010x}  sha256 {s['sha256'][:16]}")
        if "text" in s:
            for line in s["text"].rstrip("\n").splitlines():
                print(f"           {line}")
    return 0


def _signed(sigs: list[dict]) -> str:
    """The header's word on the signatures: whether each matches the image (the signer is not judged: no trust
    store is asked)."""
    if not sigs:
        return "unsigned"
    bad = [str(i) for i, s in enumerate(sigs, 1) if s["matches"] is False]
    if bad:
        return f"signed, but signature {', '.join(bad)} does not match the image"
    if all(s["matches"] for s in sigs):
        return "signed (the signature matches the image; its signer is not checked against any db)"
    return "signed (not verified)"


def register(sub: argparse._SubParsersAction) -> None:
    """The `inspect` verb."""
    p = add_verb(sub, "inspect", _run, "show a PE32+/UKI's machine, sections and signatures")
    p.add_argument("file", type=Path, help="the PE32+ image")
    add_json(p)
