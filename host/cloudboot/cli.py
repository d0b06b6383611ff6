"""`cloud-boot` command line: each module in cloudboot.commands registers its own verb; this module is the one
place that turns a library's error into the CLI's one error line."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import arches
from bootplan import PlanError
from cloudboot import __version__, commands
from cloudboot.errors import CloudBootError
from diskfs.errors import FsError
from oci.errors import OciError

#: What libraries raise for bad input (files, images, plans, registries, names): a message, not a bug.
USER_ERRORS = (CloudBootError, arches.ArchError, PlanError, OciError, FsError, OSError)


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


def error_message(exc: BaseException) -> str:
    """The text after `cloud-boot: error: ` for one of USER_ERRORS. A CloudBootError is shown whole (a failed
    command's output tail follows its first line); the portable core's errors by their first line; an
    OSError by the file it names."""
    if isinstance(exc, CloudBootError):
        return str(exc)
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        return f"{exc.filename}: {what}" if exc.filename else what
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; a USER_ERRORS failure becomes one message line and status 1."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error (already printed): its status, not an exception
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"cloud-boot: error: {error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cloud-boot: interrupted", file=sys.stderr)
        return 130
