"""Keys for encrypted disks, as `cloud-boot fs` and the init take them: a passphrase file (its first line), a
key file (its exact bytes: a LUKS key file as cryptsetup reads one), and LUKS limits (NAME=VALUE). The result
is the diskfs.open options that carry them (`passphrase`, `key`, `luks_limits`)."""

from __future__ import annotations

import sys

from cloudboot.errors import CloudBootError

#: The most a key or passphrase file may hold: cryptsetup's own key file limit (8 MiB). A file that never ends
#: (/dev/zero, /dev/urandom) is refused there instead of read forever; a FIFO (`<(pass show disk)`) still works.
SECRET_MAX = 8 << 20


def _read(path: str, what: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(SECRET_MAX + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(SECRET_MAX + 1)
    except OSError as exc:
        raise CloudBootError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > SECRET_MAX:
        raise CloudBootError(f"{what} {path}: more than {SECRET_MAX >> 20} MiB (cryptsetup's key file limit); is it "
                             "the right file?")
    return data


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
        out["passphrase"] = _read(passphrase_file, "--passphrase-file").split(b"\n", 1)[0]
    if key_file:
        out["key"] = _read(key_file, "--key-file")
    if limits:
        out["luks_limits"] = luks_limits(limits)
    return out
