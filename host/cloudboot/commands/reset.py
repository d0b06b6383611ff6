"""`cloud-boot reset`: undo Path C on this machine (our boot entries, their BootOrder slots, the loader's
variables), as root inside the booted system; `--print-script` gives the same as a POSIX sh script."""

from __future__ import annotations

import argparse
import os

from bootplan.cmdline import KEYS
from cloudboot.cliopts import add_json, add_verb, print_json
from cloudboot.errors import CloudBootError


def _run(args: argparse.Namespace) -> int:
    """Run as root on the machine (in the booted target or the init): deletes the Boot#### entries cloud-boot
    wrote (described 'cloud-boot ...'), only their BootOrder slots, BootNext if it points at one, and
    CloudBootCmdline/CloudBootTarget, so the next boot is the boot medium again. --print-script prints the
    same as a POSIX sh script for machines without Python."""
    from cloudboot.init import efivars

    if args.print_script:
        print(efivars.reset_script(), end="")
        return 0
    root = args.efivars or efivars.EFIVARS
    if args.efivars is None and os.geteuid() != 0:
        raise CloudBootError("reset changes the firmware's boot entries: run it as root")
    if args.efivars is None:
        efivars.mount(root)
    done = efivars.reset(efivars.Efivarfs(root), [int(args.bootnum, 16)] if args.bootnum else None)
    if args.json:
        print_json({"done": done})
    else:
        for line in done or ["no cloud-boot boot entry found"]:
            print(line)
        print("next boot: the firmware's next boot entry (the boot medium)")
    if args.reboot:
        from cloudboot.run import run

        os.sync()
        run(["reboot"])
    return 0


def _bootnum(text: str) -> str:
    """argparse type: a boot entry number, checked as cloudboot.reboot.bootnum is."""
    try:
        KEYS["cloudboot.reboot.bootnum"](text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return text


def register(sub: argparse._SubParsersAction) -> None:
    """The `reset` verb."""
    p = add_verb(sub, "reset", _run, "remove cloud-boot's boot entry (Path C) so the next boot is the medium")
    p.add_argument("--reboot", "-r", action="store_true", help="sync and reboot afterwards")
    p.add_argument("--bootnum", type=_bootnum, metavar="XXXX",
                   help="remove this Boot#### instead of the ones described 'cloud-boot ...'")
    p.add_argument("--efivars", metavar="DIR", help="the efivarfs directory (default /sys/firmware/efi/efivars)")
    p.add_argument("--print-script", action="store_true", help="print the POSIX sh version and exit")
    add_json(p)
