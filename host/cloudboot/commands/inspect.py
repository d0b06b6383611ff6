"""`cloud-boot inspect`: what is inside a PE32+ (UKI or EFI app), like `ukify inspect` and
`sbverify --list`."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from cloudboot.image.output import read_input

#: Sections `ukify inspect` shows by default (True: as text); we show every section, with text for these.
UKIFY_SECTIONS = {".linux": False, ".initrd": False, ".ucode": False, ".splash": False, ".dtb": False,
                  ".dtbauto": False, ".hwids": False, ".cmdline": True, ".osrel": True, ".uname": True,
                  ".pcrpkey": True, ".pcrsig": True, ".sbat": True, ".sbom": False, ".profile": True}


def describe(path: Path) -> dict:
    """Machine, subsystem, signatures and sections (size and SHA-256 of what the loader maps, as ukify reports
    them, and the text of the text sections)."""
    from cloudboot.image.authenticode import signatures
    from cloudboot.image.pe import SUBSYSTEMS, PeImage

    pe = PeImage(read_input(path, "file"), str(path))
    pe.check_sections()
    sections = []
    for s in pe.sections():
        data = pe.section_data(s)
        entry = {"name": s.name, "size": len(data), "vaddr": s.vaddr, "vsize": s.vsize,
                 "file_offset": s.raw_offset, "raw_size": s.raw_size, "characteristics": s.characteristics,
                 "sha256": hashlib.sha256(data).hexdigest()}
        if UKIFY_SECTIONS.get(s.name):
            entry["text"] = data.rstrip(b"\0").replace(b"\0", b"\\0").decode("utf-8", "replace")
        sections.append(entry)
    sigs = signatures(pe)
    return {"file": str(path), "machine": pe.arch, "subsystem": pe.subsystem,
            "subsystem_name": SUBSYSTEMS.get(pe.subsystem, "not EFI"), "size_of_image": pe.size_of_image,
            "checksum": pe.checksum, "signed": bool(sigs), "signatures": sigs, "sections": sections}


def _run(args: argparse.Namespace) -> int:
    info = describe(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['file']}: PE32+ {info['machine']}, subsystem {info['subsystem']} "
          f"({info['subsystem_name']}), {'signed' if info['signed'] else 'unsigned'}")
    for i, sig in enumerate(info["signatures"], 1):
        print(f"  signature {i} (type {sig['type']:#06x}):")
        for c in sig["certificates"]:
            print(f"    subject {c['subject']}, issuer {c['issuer']}, serial {c['serial']}")
    for s in info["sections"]:
        print(f"  {s['name']:<8} size {s['size']:>10}  vaddr {s['vaddr']:#010x}  "
              f"flags {s['characteristics']:#010x}  sha256 {s['sha256'][:16]}")
        if "text" in s:
            for line in s["text"].rstrip("\n").splitlines():
                print(f"           {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `inspect` verb."""
    p = sub.add_parser("inspect", help="show a PE32+/UKI's machine, sections and signatures")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)
