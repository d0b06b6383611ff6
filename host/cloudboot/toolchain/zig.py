"""Zig's bundled clang (PyPI `ziglang`, pinned in pyproject.toml) as the C cross-compiler for all arches."""

from __future__ import annotations

import sys
from pathlib import Path

from cloudboot.errors import CloudBootError


def zig_exe() -> Path:
    """Path of the zig binary shipped inside the installed `ziglang` wheel."""
    try:
        import ziglang
    except ImportError as exc:
        raise CloudBootError("the Python package 'ziglang' is not installed in this environment "
                             f"({sys.executable}): run 'make deps'") from exc
    exe = Path(ziglang.__file__).parent / "zig"
    if not exe.is_file():
        raise CloudBootError(f"ziglang is installed but {exe} is missing; reinstall it (pip install ziglang)")
    return exe
