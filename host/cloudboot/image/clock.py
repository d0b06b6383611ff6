"""SOURCE_DATE_EPOCH: every timestamp the image libraries write comes from it, so builds are reproducible."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH as an int, or None when unset."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    return int(value) if value else None


@contextlib.contextmanager
def frozen_clock() -> Iterator[None]:
    """Within the block, time.time/localtime and pyfatfs's DOS clock report SOURCE_DATE_EPOCH (if set).

    pycdlib and pyfatfs read the clock in many places and take no timestamp argument."""
    epoch = source_date_epoch()
    if epoch is None:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyfatfs.DosDateTime import DosDateTime

    fixed = DosDateTime(*time.gmtime(epoch)[:6])
    # (Plain attribute swaps rather than unittest.mock, whose import pulls in asyncio: 40 ms per CLI run.)
    saved = time.time, time.localtime, DosDateTime.__dict__["now"]
    time.time = lambda: float(epoch)
    time.localtime = lambda t=None: time.gmtime(epoch if t is None else t)
    DosDateTime.now = lambda *a, **k: fixed
    try:
        yield
    finally:
        time.time, time.localtime = saved[0], saved[1]
        DosDateTime.now = saved[2]


def default_epoch(root: Path) -> tuple[int | None, str]:
    """The one SOURCE_DATE_EPOCH of every build (firmware, initramfs, UKIs, the medium), and where it came from:
    the environment's when set (an explicit value wins), else the last commit's time when `root` is a git
    checkout, else None (timestamps are the build's own: not reproducible)."""
    epoch = source_date_epoch()
    if epoch is not None:
        return epoch, "SOURCE_DATE_EPOCH"
    if not (root / ".git").exists() or not shutil.which("git"):
        return None, "unset (not a git checkout): timestamps are the build's own, so not reproducible"
    from cloudboot.run import run

    out = run(["git", "-C", str(root), "log", "-1", "--format=%ct"], capture=True).stdout.decode().strip()
    if not out.isdigit():
        return None, "unset (no commit yet): timestamps are the build's own, so not reproducible"
    return int(out), "the last commit's time"


@contextlib.contextmanager
def build_epoch(root: Path) -> Iterator[tuple[int | None, str]]:
    """default_epoch(root), set in the environment for the block (so every library and tool reads it)."""
    epoch, source = default_epoch(root)
    if epoch is None or "SOURCE_DATE_EPOCH" in os.environ:
        yield epoch, source
        return
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield epoch, source
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)
