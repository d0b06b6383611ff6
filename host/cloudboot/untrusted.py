"""Text that comes from what we read (file names inside images, plan strings, PE section names, OCI layer titles,
registry messages) before it reaches a terminal or becomes a file name: the one place that decides which
characters are unsafe.

Unsafe are the C0 and C1 control characters and DEL (escape sequences, carriage returns and backspaces rewrite
what a terminal shows; a newline forges a line), lone surrogates (the bytes of a name that is not UTF-8, as
CPython's surrogateescape carries them), and the invisible characters that reorder or hide text (bidi controls,
zero-width characters, line and paragraph separators, the BOM).
"""

from __future__ import annotations

import re

from cloudboot.errors import CloudBootError

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u2028-\u202e"
                             "\u2060-\u2069\ufeff]")
NAME_MAX = 255  # bytes of one file name (Linux's NAME_MAX)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def shown(text: str | bytes, keep_newlines: bool = False) -> str:
    """`text` safe for a terminal: every unsafe character as a visible escape (`\\e`, `\\n`, `\\x07`, `\\u202e`;
    a byte that is not UTF-8 as `\\xff`). With `keep_newlines`, newlines and tabs stay (text of several lines)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    return (_UNSAFE_KEEP_NL if keep_newlines else _UNSAFE).sub(_escape, text)


def is_safe(text: str) -> bool:
    """True when `text` has no unsafe character (shown(text) == text)."""
    return _UNSAFE.search(text) is None


def file_name(name: str, what: str) -> str:
    """`name` when it can be a file name as it is: not empty, `.` or `..`, no `/`, no unsafe character, at most
    NAME_MAX bytes of UTF-8. Otherwise a CloudBootError naming `what` (e.g. "layer 2's title") and the name as
    shown()."""
    why = ""
    if name in ("", ".", ".."):
        why = "not a file name"
    elif "/" in name:
        why = "it holds a '/'"
    elif not is_safe(name):
        why = "it holds control or invisible characters"
    elif len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        why = f"longer than {NAME_MAX} bytes"
    if why:
        text = shown(name if len(name) <= 80 else name[:80] + "...")
        raise CloudBootError(f"{what} '{text}' cannot be a file name: {why}")
    return name


class SafeText:
    """A text stream (stdout) whose writes go through shown(keep_newlines=True): whatever a verb prints, names
    read from images and registries included, reaches the terminal without control sequences. Everything else
    (`buffer` for binary output, `fileno`, `flush`, `isatty`) is the wrapped stream's."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(shown(text, keep_newlines=True))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
