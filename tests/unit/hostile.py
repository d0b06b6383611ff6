"""Helpers for the hostile-input tests: run the CLI in a subprocess (bounded in time) and check that a failure is
the one line of the README's convention, with the specific message, never a traceback or the guard's
internal-error line."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def cli(*args: str, timeout: float = 120, stdin: bytes | None = None, env: dict | None = None,
        limits: dict[int, int] | None = None) -> subprocess.CompletedProcess:
    """`cloud-boot ARGS` in a fresh interpreter, under the resource `limits` given ({resource.RLIMIT_*: n}). A hang
    fails the test (it is one of the bugs)."""
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # RLIMIT_FSIZE: a write fails with EFBIG, as on a full disk
        for res, n in (limits or {}).items():
            resource.setrlimit(res, (n, n))

    try:
        return subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())",
                               *args], capture_output=True, timeout=timeout, input=stdin,
                              env={**os.environ, **(env or {})}, preexec_fn=preexec if limits else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cloud-boot {' '.join(args)}: no answer within {timeout} s")


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def refused(proc: subprocess.CompletedProcess, *wants: str, status: int = 1) -> str:
    """The error line of a failed run, after checking it is exactly one `cloud-boot: error:` line holding every
    string of `wants` (and no traceback, no internal error)."""
    err = text(proc.stderr)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("+ ")]
    assert proc.returncode == status, f"status {proc.returncode}, stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("cloud-boot: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    for want in wants:
        assert want in lines[0], f"{want!r} not in {lines[0]!r}"
    return lines[0]


def ok(proc: subprocess.CompletedProcess) -> str:
    """stdout of a run that must succeed."""
    assert proc.returncode == 0, text(proc.stderr)
    return text(proc.stdout)


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` (tests run as root), unmounted afterwards."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
