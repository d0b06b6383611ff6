"""What is inside a PE32+ image (UKI or EFI app), as `ukify inspect` and `sbverify --list` show it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cloudboot.image.output import map_input

#: Sections `ukify inspect` shows by default (True: as text); we show every section, with text for these.
UKIFY_SECTIONS = {".linux": False, ".initrd": False, ".ucode": False, ".splash": False, ".dtb": False,
                  ".dtbauto": False, ".hwids": False, ".cmdline": True, ".osrel": True, ".uname": True,
                  ".pcrpkey": True, ".pcrsig": True, ".sbat": True, ".sbom": False, ".profile": True}


def describe(path: Path) -> dict:
    """Machine, subsystem, signatures (each checked against the image: authenticode_verify) and sections (size
    and SHA-256 of what the loader maps, as ukify reports them, and the text of the text sections)."""
    from cloudboot.image.authenticode import signatures
    from cloudboot.image.pe import SUBSYSTEMS, PeImage

    pe = PeImage(map_input(path, "file"), str(path))
    pe.check_sections()
    sections = []
    for s in pe.sections():
        data = pe.section_view(s)
        entry = {"name": s.name, "size": len(data), "vaddr": s.vaddr, "vsize": s.vsize,
                 "file_offset": s.raw_offset, "raw_size": s.raw_size, "characteristics": s.characteristics,
                 "sha256": hashlib.sha256(data).hexdigest()}
        if UKIFY_SECTIONS.get(s.name):
            entry["text"] = bytes(data).rstrip(b"\0").replace(b"\0", b"\\0").decode("utf-8", "replace")
        sections.append(entry)
    sigs = signatures(pe, verify=True)
    return {"file": str(path), "machine": pe.arch, "subsystem": pe.subsystem,
            "subsystem_name": SUBSYSTEMS.get(pe.subsystem, "not EFI"), "size_of_image": pe.size_of_image,
            "checksum": pe.checksum, "signed": bool(sigs), "signatures": sigs, "sections": sections}
