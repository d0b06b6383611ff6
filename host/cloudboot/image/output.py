"""Reading inputs and writing outputs of the image commands: one-line errors naming the file, and outputs that
appear whole or not at all (temporary file in the same directory, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cloudboot.errors import CloudBootError


def read_input(path: Path, what: str) -> bytes:
    """The bytes of `path`; a CloudBootError saying which input (`what`, e.g. "--stub") and why otherwise."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise CloudBootError(f"{what} {path}: is a directory") from None
    except OSError as exc:
        raise CloudBootError(f"{what} {path}: {exc.strerror or exc}") from None


def write_atomic(out: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `out` through a temporary file and a rename: never a half-written output, and any failure
    (missing directory, no permission, full disk, a directory in the way) is one CloudBootError naming
    `out`. The temporary file is created 0600 (mkstemp) and given `mode` only before the rename, so a
    private output (mode 0600) is never readable by others, not even while it is written."""
    out = Path(out)
    if not out.parent.is_dir():
        raise CloudBootError(f"{out}: the directory {out.parent} does not exist")
    if out.is_dir():
        raise CloudBootError(f"{out}: is a directory")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise CloudBootError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
