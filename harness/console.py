"""Serial console text: ANSI escapes and firmware debug noise removed, kernel messages that cut into a line of
the guest's own output moved after it, kept as one growing transcript."""

from __future__ import annotations

import re

_ANSI = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>c]")
# Lines EDK2 builds print on serial that are not the guest's output (loongarch64 is the chattiest).
# They can start mid-line (the firmware prints them while our output is in flight), so match them anywhere.
_NOISE = re.compile(rb"PROGRESS CODE: V[0-9A-F]+ I[0-9]+\r?\n|InitializeExceptions[^\n]*\n")
# The kernel writes its records (`[    3.141592] text`) straight to the UART, also while a program's line is
# still going out through the tty: `cloud-boot: [ 3.1] init: Pyt[    3.2] random: crng init done\r\n
# hon 3.11 ...`. Such a run of records, started mid-line, goes after the rest of that line. Not after our own
# log prefix, whose timestamp has the kernel's form on purpose (init/log.py).
# (The lookbehinds sit after the first `[` so that the search can skip ahead to each `[`.)
_KMSG_MIDLINE = re.compile(rb"(\[(?<=[^\n]\[)(?<!cloud-boot: \[) *\d+\.\d{6}\] [^\n]*\n(?:\[ *\d+\.\d{6}\] [^\n]*\n)*)"
                           rb"([^\n]*\n)")


def clean(raw: bytes) -> bytes:
    """Raw serial bytes without ANSI escape sequences and known firmware debug lines, with kernel messages that
    cut into a line moved after it (a line still waiting for its rest is left as it is)."""
    text = _NOISE.sub(b"", _ANSI.sub(b"", raw))
    # The rest of a line can be cut again; each pass mends one cut per line, and cuts are rare.
    for _ in range(8):
        mended = _KMSG_MIDLINE.sub(rb"\2\1", text)
        if mended == text:
            break
        text = mended
    return text
