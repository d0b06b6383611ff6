"""The cloud medium's inputs, checked in full before any download or build step (a bad flag fails at once,
naming the flag), and the UKI command line they make (REFERENCE §1.1, the original's build-time injection).

Command line of each arch's UKI: `--cmdline` (default `console=<the arch's serial console>`), `quiet` unless
`--verbose`, then `cloudboot.plan=` | `cloudboot.image=`, `cloudboot.target=`, `cloudboot.insecure=1`,
`cloudboot.exit=`, `cloudboot.metadata.url=`, then `--extra-cmdline`; empty parts skipped. Every `cloudboot.*`
key in it must be one of bootplan.cmdline's KEYS with a value its check takes (as the init would demand).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import arches
from bootplan import cmdline as grammar
from cloudboot.errors import CloudBootError

#: x86's COMMAND_LINE_SIZE (2048 with its NUL), the smallest of the arches we boot.
MAX_CMDLINE = 2047
DEFAULT_OUTPUT = Path("build/boot.iso")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+~:-]*")


@dataclass
class Options:
    """What `cloud-boot build` was asked for, as given (spellings, paths, texts)."""

    arch: list[str] = field(default_factory=lambda: ["all"])
    plan: str | None = None
    image: str | None = None
    metadata_url: str | None = None
    target: str | None = None
    cmdline: str | None = None
    extra_cmdline: str | None = None
    exit: str | None = None
    cosign_key: Path | None = None
    luks: bool = False
    insecure: bool = False
    kernel_package: list[str] = field(default_factory=list)
    kernel: str = "debian"
    verbose: bool = False
    output: Path = DEFAULT_OUTPUT
    firmware_dir: Path | None = None


@dataclass
class Medium:
    """The checked inputs: what will be built."""

    arches: list[arches.Arch]
    firmware: dict[str, Path]
    cmdlines: dict[str, str]
    kernel_package: dict[str, str | None]
    cosign_key: Path | None
    cosign_pem: bytes | None
    output: Path
    #: the init carries the crypto modules (cryptography, argon2): LUKS and encrypted ZFS open, signatures
    #: are checked; asked for with --luks, implied by a cosign key
    crypto: bool = False
    #: "debian" (the suite's generic kernel + its modules) or "our" (cloud-boot kernel's cloud variant)
    kernel: str = "debian"


def _text(flag: str, value: str) -> str:
    """A command-line text: printable ASCII, balanced double quotes."""
    for i, c in enumerate(value):
        if not (" " <= c <= "~" or c == "\t"):
            raise CloudBootError(f"{flag}: character {c!r} at offset {i} is not printable ASCII")
    if value.count('"') % 2:
        raise CloudBootError(f"{flag}: unbalanced double quote in {value!r}")
    return value.strip()


def _value(flag: str, value: str) -> str:
    """A single cloudboot.* value: non-empty, printable, no double quote (quoted when it holds blanks)."""
    value = _text(flag, value)
    if not value:
        raise CloudBootError(f"{flag}: empty value")
    if '"' in value:
        raise CloudBootError(f"{flag}: {value!r} may not contain a double quote")
    return f'"{value}"' if any(c in value for c in " \t") else value


def _known(flag: str, key: str, value: str) -> str:
    """`value` if bootplan.cmdline's check of `key` (the init's and the firmware's) takes it."""
    try:
        grammar.KEYS[key](value)
    except ValueError as exc:
        raise CloudBootError(f"{flag} {value!r}: {exc}") from None
    return value


def _reference(flag: str, text: str) -> str:
    from oci.errors import BadReference
    from oci.ref import parse

    try:
        parse(text)
    except BadReference as exc:
        raise CloudBootError(f"{flag} {text!r}: {exc}") from None
    return _value(flag, text)


def _url(flag: str, text: str) -> str:
    u = urllib.parse.urlsplit(text)
    if u.scheme not in ("http", "https") or not u.netloc or any(c.isspace() for c in text):
        raise CloudBootError(f"{flag} {text!r}: want an http:// or https:// URL")
    return _value(flag, text)


def _cosign_key(path: Path) -> bytes:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise CloudBootError(f"--cosign-key {path}: {exc.strerror or exc}") from None
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CloudBootError(f"--cosign-key {path}: not a PEM public key (cosign.pub): {exc}") from None
    return pem


def _kernel_packages(specs: list[str], chosen: list[arches.Arch]) -> dict[str, str | None]:
    """`--kernel-package VER` (one arch) or `ARCH=VER` (repeatable) -> {arch: VER or None}."""
    out: dict[str, str | None] = {a.name: None for a in chosen}
    for spec in specs:
        arch_text, sep, ver = spec.rpartition("=")
        if sep:
            try:
                a = arches.get(arch_text)
            except arches.ArchError as exc:
                raise CloudBootError(f"--kernel-package {spec!r}: {exc}") from None
            if a.name not in out:
                raise CloudBootError(f"--kernel-package {spec!r}: {a.name} is not in this build "
                                     f"(--arch: {', '.join(out)})")
            names = [a.name]
        elif len(out) == 1:
            names = list(out)
        else:
            raise CloudBootError(f"--kernel-package {spec!r}: several arches get a UKI ({', '.join(out)}); "
                                 "say which: --kernel-package ARCH=VERSION")
        if not _PACKAGE.fullmatch(ver):
            raise CloudBootError(f"--kernel-package {spec!r}: want a kernel release such as 6.12.117+deb13-amd64 "
                                 "or a linux-image-* package name")
        for n in names:
            out[n] = ver
    return out


def check(o: Options) -> Medium:
    """Every input checked (no network, no build): the Medium to build, or CloudBootError naming the flag."""
    from cloudboot.fwbuild.firmware import firmware_dir
    from cloudboot.image.output import read_input
    from cloudboot.image.pe import PeImage

    try:
        chosen = arches.select(o.arch or ["all"])
    except arches.ArchError as exc:
        raise CloudBootError(f"--arch: {exc}") from None
    if o.plan is not None and o.image is not None:
        raise CloudBootError("--plan and --image: give at most one (--image is the legacy one-target form)")
    keys: list[tuple[str, str]] = []
    if o.plan is not None:
        keys.append(("cloudboot.plan", _reference("--plan", o.plan)))
    if o.image is not None:
        keys.append(("cloudboot.image", _reference("--image", o.image)))
    if o.target is not None:
        keys.append(("cloudboot.target", _value("--target", o.target)))
    if o.insecure:
        keys.append(("cloudboot.insecure", "1"))
    if o.exit is not None:
        keys.append(("cloudboot.exit", _known("--exit", "cloudboot.exit", o.exit)))
    if o.metadata_url is not None:
        keys.append(("cloudboot.metadata.url", _url("--metadata-url", o.metadata_url)))
    base = _text("--cmdline", o.cmdline) if o.cmdline is not None else None
    extra = _text("--extra-cmdline", o.extra_cmdline) if o.extra_cmdline is not None else ""
    if o.kernel not in ("debian", "our"):
        raise CloudBootError(f"--kernel {o.kernel!r}: use debian or our")
    if o.kernel == "our" and o.kernel_package:
        raise CloudBootError("--kernel-package names a Debian kernel: it does not go with --kernel our")
    cmdlines = {}
    for a in chosen:
        parts = [base if base is not None else f"console={a.linux_console}", "" if o.verbose else "quiet"]
        parts += [f"{k}={v}" for k, v in keys] + [extra]
        line = " ".join(p for p in parts if p)
        if len(line) > MAX_CMDLINE:
            raise CloudBootError(f"the command line for {a.name} is {len(line)} characters, over the kernel's "
                                 f"{MAX_CMDLINE}: {line[:60]}...")
        _, bad, unknown = grammar.check(grammar.parse(line))
        if bad or unknown:  # from --cmdline/--extra-cmdline: the init would refuse or ignore it
            raise CloudBootError(f"the command line for {a.name}: {(bad + unknown)[0]}")
        cmdlines[a.name] = line
    fw_dir = Path(o.firmware_dir) if o.firmware_dir else firmware_dir()
    firmware = {}
    for a in chosen:
        path = fw_dir / a.efi_name
        if not path.is_file():
            raise CloudBootError(f"{path}: no firmware for {a.name}; build it first: cloud-boot firmware --arch "
                                 f"{a.name} (or make firmware)")
        pe = PeImage(read_input(path, f"firmware for {a.name}"), str(path))
        if pe.machine != a.pe_machine:
            raise CloudBootError(f"{path}: PE machine {pe.machine:#06x} is not {a.name}'s ({a.pe_machine:#06x})")
        firmware[a.name] = path
    out = Path(o.output)
    if out.is_dir():
        raise CloudBootError(f"-o {out}: is a directory")
    if not out.parent.is_dir():
        raise CloudBootError(f"-o {out}: the directory {out.parent} does not exist")
    pem = _cosign_key(o.cosign_key) if o.cosign_key else None
    return Medium(chosen, firmware, cmdlines, _kernel_packages(o.kernel_package, chosen), o.cosign_key, pem,
                  out, crypto=o.luks or pem is not None, kernel=o.kernel)
