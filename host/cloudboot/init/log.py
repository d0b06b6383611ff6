"""Console log lines: `cloud-boot: [  seconds since kernel start] message`, and timed phases.

The clock is CLOCK_BOOTTIME (0 when the kernel started), the clock of the kernel's own `[    1.234567]`
lines, so init's timestamps and the kernel's line up. Phase lines (`phase <name> <seconds>`) are what the
benchmark reads: kernel start -> init, module loading, disk, kexec.
"""

from __future__ import annotations

import sys
import time

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


class phase:  # lower case: it reads as the function it replaced, `with phase("network"):`
    """Time a boot phase and log `phase <name> <seconds>` when it ends (also when it fails). A class, not
    contextlib.contextmanager: contextlib and what it imports took 33 ms of the init's start on arm64 (TCG)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = now()

    def __exit__(self, *exc) -> None:
        log(f"phase {self.name} {now() - self.start:.6f}s")
