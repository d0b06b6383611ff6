"""`cloud-boot` command line: each module in cloudboot.commands registers its own verb."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import arches
from cloudboot import __version__, commands
from cloudboot.errors import CloudBootError


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are the CLI's one error line too (status 2, as argparse's)."""

    def error(self, message: str) -> None:
        self.exit(2, f"cloud-boot: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """Collect every verb from cloudboot.commands.* (each has `register(subparsers)`)."""
    parser = Parser(prog="cloud-boot", description="cloud-boot host tools")
    parser.add_argument("--version", action="version", version=f"cloud-boot {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"cloudboot.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; CloudBootError becomes a one-line message and status 1."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error (already printed): its status, not an exception
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except (CloudBootError, arches.ArchError) as exc:
        print(f"cloud-boot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cloud-boot: interrupted", file=sys.stderr)
        return 130
