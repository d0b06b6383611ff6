"""Console log lines: `cloud-boot: [  seconds since kernel start] message`, and timed phases.

The clock is CLOCK_BOOTTIME (0 when the kernel started), the clock of the kernel's own `[    1.234567]`
lines, so init's timestamps and the kernel's line up. Phase lines (`phase <name> <seconds>`) are what the
benchmark reads: kernel start -> init, module loading, disk, kexec.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "cloud-boot: "


def now() -> float:
    """Seconds since the kernel started."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux: tests on other hosts
        return time.monotonic()


def log(message: str) -> None:
    """One console line, flushed at once (the console is all an operator may have)."""
    line = f"{PREFIX}[{now():12.6f}] {message}\n"
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # no console: nothing better to do; PID 1 must not die of it


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a boot phase and log `phase <name> <seconds>` when it ends (also when it fails)."""
    start = now()
    try:
        yield
    finally:
        log(f"phase {name} {now() - start:.6f}s")
