"""`cloud-boot qemu`: boot an EFI app, a disk image or an ISO under QEMU + EDK2 and show the console."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cloudboot.cliopts import add_arch, add_verb, positive
from cloudboot.errors import CloudBootError


def _run(args: argparse.Namespace) -> int:
    """Start QEMU with EDK2 for the arch and show the serial console; with --exec, run Python in our
    firmware's REPL and print its output."""
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.harness.machine import Machine
    from cloudboot.harness.repl import BANNER, Repl
    from cloudboot.image.output import read_input
    from cloudboot.image.pe import PeImage
    from cloudboot.run import echo, run

    arch = args.arch
    image = firmware_dir() / arch.efi_name if args.built else args.image
    if image is None:
        raise CloudBootError("give an IMAGE (.efi, disk image or .iso) or --built")
    image = Path(image)
    if not image.is_file():
        raise CloudBootError(f"{image}: no such file" + (" (run `make firmware`)" if args.built else ""))
    kind = "iso" if image.suffix.lower() == ".iso" else "efi" if image.suffix.lower() == ".efi" else "disk"
    if kind == "efi":
        PeImage(read_input(image, "image"), str(image)).check_efi(arch.name)
    append = args.append
    if args.exec is not None and kind == "efi":
        append = " ".join(filter(None, [append, "cloudboot.repl"]))
    vm = Machine(arch.name, efi=image if kind == "efi" else None, append=append, esp=args.esp,
                 iso=image if kind == "iso" else None, disks=([image] if kind == "disk" else []) + args.disk,
                 nics=args.nic, memory_mb=args.memory, echo=args.exec is None)
    if args.interactive:  # the terminal is the serial console (Ctrl-A is not intercepted: use poweroff)
        try:
            return run(vm.command(), ok=None).returncode
        finally:
            vm.kill()
    echo(vm.command())
    status = 0
    with vm:
        repl = Repl(vm)
        if args.exec is not None:
            print(repl.wait_banner(args.timeout), file=sys.stderr)
            sys.stdout.write(repl.exec(args.exec, args.timeout))
            vm.marks["exec done"] = time.monotonic() - vm.t0
            repl.launch("import uefi\nuefi.poweroff()", args.timeout)  # no reply: the machine is gone
            status = vm.wait(args.timeout)
        else:
            try:
                vm.expect(BANNER, args.timeout, mark="banner")
            except CloudBootError:
                pass  # not our firmware (another EFI app, an ISO...): the console was still shown
            status = vm.wait(args.timeout)
    summary = ", ".join(f"{k} {v:.2f} s" for k, v in vm.marks.items())
    print(f"\n[{arch.name}] QEMU exit status {status}; {summary or 'no banner seen'}; "
          f"total {time.monotonic() - vm.t0:.2f} s", file=sys.stderr)
    return 0 if status == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "qemu", _run, "boot an EFI app, disk image or ISO under QEMU + EDK2")
    p.set_defaults(raw_stdout=True)  # --exec prints what the firmware's Python printed, as it is
    p.add_argument("image", nargs="?", help="an .efi file, a raw/qcow2 disk image or an .iso")
    add_arch(p, "the machine to boot", required=True)
    p.add_argument("--built", action="store_true", help="boot this tree's build/firmware/BOOT<ARCH>.EFI")
    p.add_argument("--disk", action="append", type=Path, default=[], help="attach a disk image (repeatable)")
    p.add_argument("--nic", action="count", default=0, help="add a virtio-net NIC on QEMU user networking")
    p.add_argument("--append", help="command line: the EFI app's LoadOptions")
    p.add_argument("--esp", action="store_true", help="boot the .efi from a generated ESP instead of -kernel")
    p.add_argument("--exec", help="run this Python in the firmware's REPL, print its output, power off")
    p.add_argument("--timeout", type=positive(float, 7 * 86400), default=120,
                   help="seconds for each wait (default 120)")
    p.add_argument("--memory", type=positive(int), help="guest memory in MiB")
    p.add_argument("--interactive", action="store_true", help="attach this terminal to the serial console")
