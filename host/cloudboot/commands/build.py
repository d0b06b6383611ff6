"""`cloud-boot build`: the cloud medium, a hybrid ISO booting a machine from a plan in a registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudboot.cliopts import add_arch, add_cosign_key, add_json, add_output, add_verb, print_result


def _run(args: argparse.Namespace) -> int:
    """Per arch where the init runs (x86_64, aarch64, riscv64): a UKI whose stub is our firmware, with a Debian
    kernel, the init's initramfs and a command line carrying the flags below (stored as
    \\EFI\\Linux\\cloud-boot-<arch>.efi); every arch's firmware as \\EFI\\BOOT\\BOOT<ARCH>.EFI; one ESP in a
    hybrid ISO that boots from CD and as a disk. Without --plan/--image the booted machine takes the plan from
    the DHCP boot file name, then CloudBootCmdline, then the metadata URL. Needs the firmware built (cloud-boot
    firmware). Reproducible: SOURCE_DATE_EPOCH, else the last commit's time."""
    from cloudboot.medium.build import build, report
    from cloudboot.medium.options import Options, check

    medium = check(Options(arch=[a.name for a in args.arch], plan=args.plan, image=args.image,
                           metadata_url=args.metadata_url, target=args.target, cmdline=args.cmdline,
                           extra_cmdline=args.extra_cmdline, exit=args.exit, cosign_key=args.cosign_key,
                           luks=args.luks, insecure=args.insecure, kernel_package=args.kernel_package,
                           kernel=args.kernel, verbose=args.verbose, output=args.output,
                           firmware_dir=args.firmware_dir))
    res = build(medium)
    print_result(args, report(res), res.as_json())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """The `build` verb."""
    p = add_verb(sub, "build", _run,
                 "build the cloud medium: a hybrid ISO whose UKIs boot a machine from a plan in a registry")
    add_arch(p, "the arches on the medium (default all)", many=True, default="all")
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
    add_cosign_key(p, "cosign public key (cosign.pub) built into the init: plans and artifacts must be signed "
                      "with it")
    p.add_argument("--luks", action="store_true", help="put the crypto modules (cryptography, argon2; ~1 MiB "
                   "per UKI) into the init so it opens LUKS disks and encrypted ZFS datasets (implied by "
                   "--cosign-key)")
    p.add_argument("--insecure", action="store_true", help="plain HTTP to registries (cloudboot.insecure=1)")
    p.add_argument("--kernel", choices=("debian", "our"), default="debian",
                   help="the UKIs' kernel: Debian's generic one with the modules the init needs (default), or "
                        "ours (cloud-boot kernel --variant cloud: smaller, everything built in)")
    p.add_argument("--kernel-package", action="append", default=[], metavar="[ARCH=]VERSION",
                   help="Debian kernel release or linux-image-* package (default: the suite's generic kernel "
                        "for the arch); ARCH= when several arches get a UKI (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="no `quiet` on the command line")
    p.add_argument("--firmware-dir", type=Path, metavar="DIR", help="where BOOT<ARCH>.EFI are "
                                                                     "(default build/firmware)")
    add_json(p)
    add_output(p, "the hybrid ISO", default="build/boot.iso")
