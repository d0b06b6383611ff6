"""The kernel command line as init reads it: the one `cloudboot.*` grammar and key table of
`bootplan.cmdline` (REFERENCE.md §1), shared with the firmware. Every `cloudboot.*` value is checked up front,
so a typo fails at once with the key, the value and what is allowed, never half-way through a boot.
"""

from __future__ import annotations

from bootplan.cmdline import check as _check
from bootplan.cmdline import duration, parse, split  # noqa: F401 - init's callers use them from here
from cloudboot.init.errors import InitError


def check(cmd: dict[str, str]) -> list[str]:
    """Raise InitError for the first malformed known value; return warnings for unknown cloudboot.* keys."""
    _, bad, unknown = _check(cmd)
    if bad:
        raise InitError(bad[0])
    return unknown


def read(path: str = "/proc/cmdline") -> dict[str, str]:
    """Parse the running kernel's command line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse(f.read())
