"""Serial console text: ANSI escapes and firmware debug noise removed, kept as one growing transcript."""

from __future__ import annotations

import re

_ANSI = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>c]")
# Lines EDK2 builds print on serial that are not the guest's output (loongarch64 is the chattiest).
# They can start mid-line (the firmware prints them while our output is in flight), so match them anywhere.
_NOISE = re.compile(rb"PROGRESS CODE: V[0-9A-F]+ I[0-9]+\r?\n|InitializeExceptions[^\n]*\n")


def clean(raw: bytes) -> bytes:
    """Raw serial bytes without ANSI escape sequences and known firmware debug lines."""
    return _NOISE.sub(b"", _ANSI.sub(b"", raw))
