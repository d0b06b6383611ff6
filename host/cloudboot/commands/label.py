"""`cloud-boot label IMAGE[@PARTITION] NEW-LABEL`: write a filesystem label (ext2/3/4, XFS, btrfs) inside a raw,
qcow2 or UDIF image."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_json, add_verb, print_json


def _run(args: argparse.Namespace) -> int:
    """Write NEW-LABEL into every superblock copy of the ext2/3/4, XFS or btrfs filesystem at IMAGE[@PARTITION]
    (raw, qcow2 or UDIF UDRW images; PARTITION is a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=), with each
    copy's checksum recomputed. Limits: 16 bytes (ext), 12 (XFS), 255 (btrfs); an empty label clears it. The
    image is opened under an exclusive lock (an image a running QEMU holds is refused); every check is made
    before the first byte is written; the copies are written backups first, primary last, each fsync'd."""
    from cloudboot import fslabel

    result = fslabel.relabel(args.image, args.label, args.dry_run)
    if args.json:
        print_json(result)
        return 0
    copies = result["copies"]
    print(f"{result['device']}: {result['filesystem']} label {result['old']!r} -> {result['new']!r}: "
          f"{'would write' if args.dry_run else 'wrote'} {len(copies)} superblock "
          f"cop{'y' if len(copies) == 1 else 'ies'}")
    if args.dry_run:
        for c in copies:
            print(f"  byte {c['image_offset']:>14}  {c['what']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `label` verb."""
    p = add_verb(sub, "label", _run, "set the label of an ext2/3/4, XFS or btrfs filesystem in a raw, qcow2 or "
                                     "UDIF image")
    p.add_argument("image", help="IMAGE[@PARTITION]: a number, LABEL=, UUID=, PARTLABEL= or PARTUUID=")
    p.add_argument("label", metavar="NEW-LABEL", help="the new label ('' clears it)")
    p.add_argument("--dry-run", action="store_true", help="check everything and show the copies, write nothing")
    add_json(p)
