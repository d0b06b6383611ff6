"""`cloud-boot build`: the cloud medium, a hybrid ISO booting a machine from a plan in a registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from cloudboot.medium.build import build, report
    from cloudboot.medium.options import Options, check

    medium = check(Options(arch=args.arch or ["all"], plan=args.plan, image=args.image,
                           metadata_url=args.metadata_url, target=args.target, cmdline=args.cmdline,
                           extra_cmdline=args.extra_cmdline, exit=args.exit, cosign_key=args.cosign_key,
                           insecure=args.insecure, kernel_package=args.kernel_package, verbose=args.verbose,
                           output=args.output, firmware_dir=args.firmware_dir))
    res = build(medium)
    print(json.dumps(res.as_json(), indent=1) if args.json else report(res))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `build` verb."""
    p = sub.add_parser(
        "build", help="build the cloud medium: a hybrid ISO whose UKIs boot a machine from a plan in a registry",
        description="Per arch where the init runs (x86_64, aarch64, riscv64): a UKI whose stub is our firmware, "
                    "with a Debian kernel, the init's initramfs and a command line carrying the flags below "
                    "(stored as \\EFI\\Linux\\cloud-boot-<arch>.efi); every arch's firmware as "
                    "\\EFI\\BOOT\\BOOT<ARCH>.EFI; one ESP in a hybrid ISO that boots from CD and as a disk. "
                    "Without --plan/--image the booted machine takes the plan from the DHCP boot file name, "
                    "then CloudBootCmdline, then the metadata URL. Needs the firmware built (cloud-boot "
                    "firmware). Reproducible: SOURCE_DATE_EPOCH, else the last commit's time.")
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help="an arch (any spelling: x86_64/amd64, aarch64/arm64, riscv64, loongarch64/loong64), a "
                        "comma-separated list, or all (default; repeatable)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--plan", metavar="REF", help="bake this plan in (cloudboot.plan=): the network never "
                                                     "overrides it")
    which.add_argument("--image", metavar="REF", help="bake this artifact index in as a one-target plan "
                                                      "(cloudboot.image=, the original's legacy form)")
    p.add_argument("--metadata-url", metavar="URL", help="metadata JSON with cloudboot.* overrides "
                                                          "(cloudboot.metadata.url=)")
    p.add_argument("--target", metavar="NAME", help="the plan's target to boot, no menu (cloudboot.target=)")
    p.add_argument("--cmdline", metavar="TEXT", help="the kernel command line's start (default: console=<the "
                                                      "arch's serial console>)")
    p.add_argument("--extra-cmdline", metavar="TEXT", help="appended to the command line")
    p.add_argument("--exit", choices=("kexec", "reboot"), help="how the init hands over (cloudboot.exit=; "
                                                                "default kexec)")
    p.add_argument("--cosign-key", type=Path, metavar="cosign.pub",
                   help="public key built into the init: plans and artifacts must be signed with it")
    p.add_argument("--insecure", action="store_true", help="plain HTTP to registries (cloudboot.insecure=1)")
    p.add_argument("--kernel-package", action="append", default=[], metavar="[ARCH=]VERSION",
                   help="Debian kernel release or linux-image-* package (default: the suite's generic kernel "
                        "for the arch); ARCH= when several arches get a UKI (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="no `quiet` on the command line")
    p.add_argument("--firmware-dir", type=Path, metavar="DIR", help="where BOOT<ARCH>.EFI are "
                                                                     "(default build/firmware)")
    p.add_argument("--json", action="store_true", help="print the result (paths, sizes, command lines) as JSON")
    p.add_argument("-o", "--output", type=Path, default=Path("build/boot.iso"),
                   help="the ISO to write (default build/boot.iso)")
    p.set_defaults(func=_run)
