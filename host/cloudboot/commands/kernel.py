"""`cloud-boot kernel`: build one of our bootstrap kernels (kernel/ fragments on Debian's linux source)."""

from __future__ import annotations

import argparse
import shutil

from cloudboot.cliopts import add_arch, add_output, add_verb, positive
from cloudboot.image.output import atomic_output, check_output
from cloudboot.kernel import config


def _run(args: argparse.Namespace) -> int:
    """Build (or take from the cache) the kernel of --arch and --variant and copy its image to -o; print its
    size and how long the build took."""
    from cloudboot.kernel.build import build

    check_output(args.output)  # before a build of several minutes, not after
    k = build(args.arch.name, args.variant, jobs=args.jobs, rebuild=args.rebuild)
    with open(k.image, "rb") as src, atomic_output(args.output) as dst:
        shutil.copyfileobj(src, dst)
    i = k.info
    print(f"{args.output}: {i['size']} bytes ({i['size'] / 2**20:.1f} MiB), linux {i['release']} "
          f"{i['arch']} {i['variant']}; built in {i['config_seconds'] + i['build_seconds']:.0f} s "
          f"(cache key {i['key'][:16]}, sha256 {i['sha256']})"
          + ("; bit-identical to the cached build" if args.rebuild and i.get("identical_to_cached") else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_verb(sub, "kernel", _run, "build a bootstrap kernel (cached; bit-identical on rebuild)")
    add_arch(p, "the machine the kernel runs on", required=True)
    p.add_argument("--variant", choices=list(config.VARIANTS), default="cloud",
                   help="; ".join(f"{k}: {v}" for k, v in config.VARIANTS.items()) + " (default cloud)")
    p.add_argument("-j", "--jobs", type=positive(int, 256), help="parallel compile jobs (default: the CPUs)")
    p.add_argument("--rebuild", action="store_true",
                   help="build again from a clean object directory even when cached, and fail unless the image is "
                        "bit-identical to the cached one")
    add_output(p, "the kernel image (an EFI application: bzImage on x86_64, EFI zboot elsewhere)")
