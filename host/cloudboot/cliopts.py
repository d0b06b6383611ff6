"""The options every verb spells the same way (README, "CLI conventions"): `--arch`, `--platform`,
`-o/--output`, `-d/--dir`, `--json`, `--cosign-key`. A verb adds them through these helpers, so each has one
spelling, one meaning and one error message."""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from oci.errors import OciError
from oci.ref import parse_platform


def add_verb(sub: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int] | None,
             summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A verb (or sub-verb) that calls `run`: `summary` is its line in its parent's help, and its description
    is `run`'s docstring (or `description`, for a verb made of sub-verbs)."""
    doc = description or (inspect.cleandoc(run.__doc__) if run and run.__doc__ else None)
    p = sub.add_parser(name, help=summary, description=doc)
    if run:
        p.set_defaults(func=run)
    return p


def add_verb_group(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
                   metavar: str) -> argparse._SubParsersAction:
    """A verb made of sub-verbs (`push artifact`, `fs ls`, ...): the subparsers to add them to."""
    return add_verb(sub, name, None, summary, description).add_subparsers(dest=f"{name}_verb", metavar=metavar,
                                                                          required=True)


def arch_type(text: str) -> arches.Arch:
    """argparse type: any spelling of an architecture (x86_64, amd64, x64, aarch64, arm64, ...) -> its Arch."""
    try:
        return arches.get(text)
    except arches.ArchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def arch_list_type(text: str) -> list[arches.Arch]:
    """argparse type: `all`, one spelling or a comma list of spellings -> Arches."""
    try:
        return arches.select(text)
    except arches.ArchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def platform_type(text: str) -> str:
    """argparse type: `os/arch[/variant]` with any spelling of a known arch -> `os/<Go's arch>[/variant]`."""
    try:
        os_, arch, variant = parse_platform(text)
        arch = arches.get(arch).go
    except (OciError, arches.ArchError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return "/".join([os_, arch] + ([variant] if variant else []))


def platform_ref_type(text: str) -> tuple[str, str]:
    """argparse type: `os/arch=REF` -> (canonical platform, REF)."""
    platform, sep, ref = text.partition("=")
    if not sep or not ref:
        raise argparse.ArgumentTypeError(f"{text!r}: want os/arch=REF")
    return platform_type(platform), ref


def platform_file_type(text: str) -> tuple[str, Path]:
    """argparse type: `os/arch=FILE` -> (canonical platform, FILE)."""
    platform, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: want os/arch=FILE")
    return platform_type(platform), Path(path)


def positive(kind: type, most: int | float | None = None) -> Callable[[str], int | float]:
    """argparse type: a number of `kind` (int or float) above zero (a size cap of -1 or a timeout of 0 is a
    mistake, not a request for no limit), and at most `most` when given."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value == float("inf") or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number above 0"
                                             + (f" and at most {most:g}" if most is not None else ""))
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_arch(p: argparse.ArgumentParser, what: str, *, many: bool = False, **kw) -> None:
    """`--arch`: one architecture (or with `many`, `all` or a comma list) in any of its spellings."""
    kinds = "all, one architecture or a comma list" if many else "one architecture"
    p.add_argument("--arch", type=arch_list_type if many else arch_type, metavar="ARCH",
                   help=f"{what}: {kinds} ({arches.known()})", **kw)


def add_platform(p: argparse.ArgumentParser, what: str, **kw) -> None:
    """`--platform os/arch[/variant]`, any spelling of the arch."""
    p.add_argument("--platform", type=platform_type, metavar="OS/ARCH", help=f"{what} (e.g. linux/arm64; the arch "
                   "in any spelling)", **kw)


def add_esp_options(p: argparse.ArgumentParser) -> None:
    """`--efi linux/ARCH=PATH`, `--extra SRC=DST` and `--esp-size`: what goes on an ESP (`esp`, `iso`)."""
    p.add_argument("--efi", action="append", default=[], metavar="linux/ARCH=PATH",
                   help=f"an EFI application for an arch (repeatable; {arches.known()}); it becomes "
                        "\\EFI\\BOOT\\BOOT<ARCH>.EFI")
    p.add_argument("--extra", action="append", default=[], metavar="SRC=DST",
                   help="another file for the ESP, e.g. uki.efi=EFI/Linux/cloud-boot.efi (repeatable)")
    p.add_argument("--esp-size", metavar="SIZE",
                   help="ESP size (e.g. 64M; default: files x 3/2 + 8M, rounded up to 16M)")


def utf8_bytes(value: str, what: str) -> bytes:
    """The UTF-8 bytes of a text argument; a CloudBootError naming `what` when the shell passed bytes that are not
    UTF-8 (Python hands them over as surrogate escapes, which no encoder takes)."""
    try:
        return value.encode()
    except UnicodeEncodeError as exc:
        byte = value[exc.start].encode("utf-8", "surrogateescape")[0]
        raise CloudBootError(f"{what}: byte {byte:#04x} at offset {exc.start} is not UTF-8 text") from None


def path_type(text: str) -> Path:
    """argparse type: a path, not empty (Path("") is the current directory, which no one means by it)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def add_output(p: argparse.ArgumentParser, what: str, *, default: str | None = None) -> None:
    """`-o/--output FILE`: the one file the verb writes; required unless it has a default."""
    p.add_argument("-o", "--output", type=path_type, metavar="FILE", required=default is None,
                   default=None if default is None else Path(default),
                   help=f"the output file: {what}" + (f" (default {default})" if default else " (required)"))


def add_dir(p: argparse.ArgumentParser, what: str, *, default: str | None = None) -> None:
    """`-d/--dir DIR`: the directory a verb that writes several files writes them into."""
    p.add_argument("-d", "--dir", type=path_type, metavar="DIR", required=default is None,
                   default=None if default is None else Path(default),
                   help=f"the output directory: {what}" + (f" (default {default})" if default else " (required)"))


def add_json(p: argparse.ArgumentParser) -> None:
    """`--json`: print the result as one JSON document instead of lines for people."""
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_cosign_key(p: argparse.ArgumentParser, what: str, **kw) -> None:
    """`--cosign-key FILE`: a cosign key file (cosign.pub to verify, cosign.key to sign)."""
    p.add_argument("--cosign-key", type=Path, metavar="FILE", help=what, **kw)


def print_json(obj: object) -> None:
    """The `--json` form of a result."""
    print(json.dumps(obj, indent=2))


def print_result(args: argparse.Namespace, text: str, data: object) -> None:
    """`data` as JSON with `--json`, else `text` for people."""
    if args.json:
        print_json(data)
    else:
        print(text)
