"""`cloud-boot demo`: boot the cloud medium in QEMU from a plan in a throw-away registry (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import add_arch, add_verb


def _run(args: argparse.Namespace) -> int:
    """Starts Debian's docker-registry on 127.0.0.1 (temporary storage), pushes Debian's kernel with a demo
    initramfs per arch under one multi-arch index and a plan with a menu of two targets, then boots the medium
    in QEMU whose DHCP hands out the plan's reference as the boot file name; the console is this terminal
    (Ctrl-C quits). Registry, files and QEMU are cleaned up however it ends. --check runs it unattended: exit 0
    once the target is up."""
    from cloudboot.medium.demo import run

    return run(args.iso, args.arch.name, check_only=args.check, as_disk=args.disk,
               timeout=args.timeout, memory_mb=args.memory)


def register(sub: argparse._SubParsersAction) -> None:
    """The `demo` verb."""
    p = add_verb(sub, "demo", _run, "boot the cloud medium in QEMU from a plan in a throw-away local registry")
    p.add_argument("iso", nargs="?", type=Path, default=Path("build/boot.iso"),
                   help="the medium (default build/boot.iso, from make iso)")
    add_arch(p, "the machine to boot (default x86_64)",
             default="x86_64")
    p.add_argument("--check", action="store_true",
                   help="unattended: answer the menu with Enter, exit 0 when the target is up")
    p.add_argument("--disk", action="store_true", help="attach the medium as a disk instead of a CD")
    p.add_argument("--timeout", type=float, default=900, help="with --check: seconds in all (default 900)")
    p.add_argument("--memory", type=int, metavar="MIB", help="guest memory (default: the arch's profile)")
