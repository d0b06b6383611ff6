"""Keys for encrypted disks, as `cloud-boot fs` and the init take them: a passphrase file (its first line), a
key file (its exact bytes: a LUKS key file as cryptsetup reads one), and LUKS limits (NAME=VALUE). The result
is the diskfs.open options that carry them (`passphrase`, `key`, `luks_limits`)."""

from __future__ import annotations

import sys

from cloudboot.errors import CloudBootError


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CloudBootError(f"{path}: cannot read: {exc.strerror}") from None


def luks_limits(items: list[str]) -> dict[str, int]:
    """{name: value} from NAME=VALUE texts; CloudBootError naming a bad one (and the known names)."""
    from diskfs.luks import LIMITS

    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or name not in LIMITS or not value.isdigit():
            raise CloudBootError(f"LUKS limit {item!r}: want NAME=NUMBER with NAME one of {', '.join(sorted(LIMITS))}")
        out[name] = int(value)
    return out


def options(passphrase_file: str | None = None, key_file: str | None = None,
            limits: list[str] | None = None) -> dict:
    """diskfs.open options for the given files ('-' is standard input) and limits."""
    out: dict = {}
    if passphrase_file:
        out["passphrase"] = _read(passphrase_file).split(b"\n", 1)[0]
    if key_file:
        out["key"] = _read(key_file)
    if limits:
        out["luks_limits"] = luks_limits(limits)
    return out
