"""`cloud-boot inspect`: what is inside a PE32+ (UKI or EFI app), like `ukify inspect`."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from cloudboot.errors import CloudBootError

TEXT_SECTIONS = {".cmdline", ".uname", ".osrel", ".sbat"}
MACHINES = {0x8664: "x86_64", 0xAA64: "aarch64", 0x5064: "riscv64", 0x6264: "loongarch64"}


def describe(path: Path) -> dict:
    """Machine, subsystem, signature and sections (with the text of the text sections)."""
    from cloudboot.image.pe import PeImage

    try:
        pe = PeImage(path.read_bytes(), str(path))
    except OSError as exc:
        raise CloudBootError(f"{path}: {exc.strerror}") from None
    sections = []
    for s in pe.sections():
        data = pe.section_data(s)
        entry = {"name": s.name, "size": s.vsize, "vaddr": s.vaddr, "characteristics": s.characteristics,
                 "sha256": hashlib.sha256(data).hexdigest()}
        if s.name in TEXT_SECTIONS:
            entry["text"] = data.decode("utf-8", "replace")
        sections.append(entry)
    return {"file": str(path), "machine": MACHINES.get(pe.machine, hex(pe.machine)), "subsystem": pe.subsystem,
            "signed": pe.signature_size() > 0, "sections": sections}


def _run(args: argparse.Namespace) -> int:
    info = describe(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['file']}: PE32+ {info['machine']}, subsystem {info['subsystem']}, "
          f"{'signed' if info['signed'] else 'unsigned'}")
    for s in info["sections"]:
        print(f"  {s['name']:<8} size {s['size']:>10}  vaddr {s['vaddr']:#010x}  flags {s['characteristics']:#010x}")
        if "text" in s:
            for line in s["text"].rstrip("\n").splitlines():
                print(f"           {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show a PE32+/UKI's machine, sections and signature")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)
