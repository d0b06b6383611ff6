"""`cloud-boot initramfs`: the Linux init path's initramfs (Debian CPython + cloudboot.init + kernel modules)."""

from __future__ import annotations

import argparse

from cloudboot.cliopts import add_arch, add_cosign_key, add_output, add_verb, positive
from cloudboot.initramfs import compress


def _run(args: argparse.Namespace) -> int:
    """Assemble Debian's CPython, cloud-boot's init and the portable core, and the kernel modules init needs
    (from the same Debian kernel package) into a newc cpio, compressed; prints a size breakdown.
    SOURCE_DATE_EPOCH makes it reproducible."""
    from cloudboot.initramfs.build import build, report

    compress.check_level(args.compression or compress.method_for(args.output), args.level)  # before the build
    own = None
    if args.kernel == "our":
        from cloudboot.kernel.build import build as build_kernel

        own = build_kernel(args.arch.name, "cloud").info
    res = build(args.arch, args.output, kernel_package=args.kernel_package, python=args.python,
                extra_modules=args.module, compression=args.compression, level=args.level,
                budget_mib=args.max_mib, cosign_key=args.cosign_key, own_kernel=own)
    print(report(res))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "initramfs", _run, "build the init initramfs (CPython PID 1, kernel modules) for an arch")
    add_arch(p, "the machine the init runs on", required=True)
    p.add_argument("--kernel", choices=["debian", "our"], default="debian",
                   help="the kernel the init runs on: Debian's (its modules go in; default) or our cloud kernel "
                        "(`cloud-boot kernel`: everything built in, no modules)")
    p.add_argument("--kernel-package", metavar="VER",
                   help="kernel release (e.g. 6.12.117+deb13-amd64) or linux-image-* package; default: the "
                        "suite's current kernel")
    p.add_argument("--python", metavar="3.X", help="Python version (default: the suite's python3)")
    p.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="another kernel module to include (with its dependencies); repeatable")
    p.add_argument("--compression", choices=compress.METHODS, help="default: from the output name")
    p.add_argument("--level", type=int, help=f"compression level (zstd 1-19, default {compress.ZSTD_LEVEL}; lz4 1-12, "
                   f"default {compress.LZ4_LEVEL}; gzip 1-9, default 9)")
    p.add_argument("--max-mib", type=positive(float), default=20,
                   help="fail when the result is larger (default 20 MiB)")
    add_cosign_key(p, "cosign public key (cosign.pub) installed as /etc/cosign.pub: init verifies plans and "
                      "artifacts with it")
    add_output(p, "the initramfs (.cpio.zst, .cpio.lz4, .cpio.xz, .cpio.gz or .cpio)")
