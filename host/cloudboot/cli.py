"""`cloud-boot` command line: each module in cloudboot.commands registers its own verb."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from cloudboot import __version__, commands
from cloudboot.errors import CloudBootError


def build_parser() -> argparse.ArgumentParser:
    """Collect every verb from cloudboot.commands.* (each has `register(subparsers)`)."""
    parser = argparse.ArgumentParser(prog="cloud-boot", description="cloud-boot host tools")
    parser.add_argument("--version", action="version", version=f"cloud-boot {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"cloudboot.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; CloudBootError becomes a one-line message and status 1."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CloudBootError as exc:
        print(f"cloud-boot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cloud-boot: interrupted", file=sys.stderr)
        return 130
