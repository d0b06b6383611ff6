"""`cloud-boot` command line: each module in cloudboot.commands registers its own verb; this module is the one
place that turns a library's error into the CLI's one error line."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

import arches
from bootplan import PlanError
from cloudboot import __version__, commands
from cloudboot.errors import CloudBootError
from cloudboot.untrusted import SafeText, shown
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
    parser.add_argument("--debug", action="store_true", default=os.environ.get("CLOUDBOOT_DEBUG", "") not in ("", "0"),
                        help="show the traceback of an error (also CLOUDBOOT_DEBUG=1); an unexpected one is a bug: "
                             "please report it")
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


def unexpected_message(exc: BaseException) -> str:
    """The one line for an exception no library meant to raise (a bug): its type, its first line, and what to do."""
    text = str(exc).strip().splitlines()
    what = type(exc).__name__ + (f": {shown(text[0][:200])}" if text else "")
    return (f"internal error ({what}); this is a bug in cloud-boot: please report it with the output of the same "
            "command run as `cloud-boot --debug ...`")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: a USER_ERRORS failure becomes its one message line and status 1; any
    other exception (a bug) one line asking for a report, with the traceback only under `--debug` (or
    CLOUDBOOT_DEBUG=1). What verbs print on stdout is escaped (cloudboot.untrusted.SafeText)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error (already printed): its status, not an exception
        return int(exc.code or 0)
    stdout = sys.stdout
    if stdout is None:  # started with stdout closed (`>&-`): every verb prints its result there
        print("cloud-boot: error: standard output is closed (send it to /dev/null to discard it)", file=sys.stderr)
        return 1
    if not getattr(args, "raw_stdout", False):  # a verb that relays a guest's console keeps its bytes
        sys.stdout = SafeText(stdout)
    try:
        code = _run(args)
    finally:
        sys.stdout = stdout
    try:  # output shorter than the buffer meets a full device or a gone reader only here, not in the verb
        stdout.flush()
    except OSError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # no second error when Python flushes at exit
        if not isinstance(exc, BrokenPipeError):
            print(f"cloud-boot: error: {exc.strerror or exc}", file=sys.stderr)
        return code or 1
    return code


#: MemoryError's line: a constant, printed once the frames that held the memory are gone.
OUT_OF_MEMORY = ("cloud-boot: error: out of memory: the input needs more than this process may hold (the machine's "
                 "memory or its ulimit -v); for a plan, its limits (--limit) bound what it may make")


def _run(args: argparse.Namespace) -> int:
    """The verb, under the guard main's docstring describes."""
    try:
        return int(args.func(args) or 0)
    except MemoryError:
        if args.debug:
            traceback.print_exc()
        # leaving this handler frees the traceback's frames (and what they held) before anything is formatted
    except KeyboardInterrupt:
        print("cloud-boot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        print(f"cloud-boot: error: {shown(error_message(exc), keep_newlines=True)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the top-level guard: every bug becomes one line
        if args.debug:
            traceback.print_exc()
        print(f"cloud-boot: error: {unexpected_message(exc)}", file=sys.stderr)
        return 1
    print(OUT_OF_MEMORY, file=sys.stderr)
    return 1
