"""cloud-boot's EFI variables as Linux shows them in efivarfs (REFERENCE §1.3): `CloudBootCmdline` is read here
so the plan it names counts even when the kernel's command line came from elsewhere (a UKI's .cmdline).

An efivarfs file is the variable's 4-byte attributes (little-endian) followed by its data."""

from __future__ import annotations

import os

EFIVARS = "/sys/firmware/efi/efivars"
VENDOR = "c10ddb07-83c5-4d3e-9b76-1f4c0e7a3b8e"
MAX_CMDLINE = 4095


def read(name: str, efivars: str = EFIVARS) -> bytes | None:
    """The data of cloud-boot's variable `name`, or None when it does not exist (or efivarfs is absent)."""
    try:
        with open(os.path.join(efivars, f"{name}-{VENDOR}"), "rb") as f:
            raw = f.read(4 + MAX_CMDLINE + 64)
    except OSError:
        return None
    return raw[4:] if len(raw) >= 4 else None


def cmdline_variable(efivars: str = EFIVARS) -> tuple[str | None, str]:
    """(CloudBootCmdline's text, "") or (None, why it is not used): unset, or not printable ASCII, or longer than
    4095 characters (the firmware's rules: trailing CR/LF/blanks/NUL trimmed)."""
    raw = read("CloudBootCmdline", efivars)
    if raw is None:
        return None, "unset"
    text = raw.rstrip(b"\r\n \t\0")
    if len(text) > MAX_CMDLINE:
        return None, f"longer than {MAX_CMDLINE} characters"
    for i, b in enumerate(text):
        if not (0x20 <= b <= 0x7E or b == 0x09):
            return None, f"byte {b:#04x} at offset {i} is not printable ASCII"
    return text.decode("ascii"), ""
