"""`cloudboot.keymap=us|fr|fr-mac` (alias `mac-fr`): the keyboard layout of the Linux virtual terminal, for
the boot menu typed on a real or virtual keyboard (REFERENCE.md §1.1; the original's keymap_linux.go).

`us` (or empty) keeps the kernel's built-in layout; `fr` (PC AZERTY) and `fr-mac` (Apple AZERTY) are loaded
key by key with the KDSKBENT ioctl on /dev/tty0: letters (Caps Lock aware), the digit row, punctuation, at
the plain and Shift levels (fr also AltGr). A serial console needs none of this: the terminal sends
characters, not key codes. Anything else is refused with the original's message.
"""

from __future__ import annotations

import fcntl
import os
import struct

from bootplan.cmdline import KEYMAP_ALIASES, check_keymap
from cloudboot.init.log import log

KDGKBTYPE, KDSKBENT = 0x4B33, 0x4B47
PLAIN, SHIFT, ALTGR = 0, 1, 2  # keymap tables: the modifier bit mask (shift 1, altgr 2)
KT_LETTER = 0x0B00
VT = "/dev/tty0"

#: Linux key codes of the rows (input-event-codes.h): the key left of 1, 1..0, minus, equal; Q row + 2
#: brackets; A row + semicolon, apostrophe; backslash; the ISO key next to left Shift; Z row + 3 punctuation.
GRAVE, DIGITS, MINUS, EQUAL = 41, tuple(range(2, 12)), 12, 13
ROW_Q, ROW_A, ROW_Z = tuple(range(16, 28)), tuple(range(30, 41)), tuple(range(44, 54))
BACKSLASH, ISO = 43, 86

#: layout -> {key code: (plain, shift[, altgr])}; a letter's plain character is enough (shift = upper case).
LAYOUTS: dict[str, dict[int, tuple[str, ...]]] = {
    "fr": {
        GRAVE: ("²",),
        **dict(zip(DIGITS, [("&", "1"), ("é", "2", "~"), ('"', "3", "#"), ("'", "4", "{"), ("(", "5", "["),
                            ("-", "6", "|"), ("è", "7", "`"), ("_", "8", "\\"), ("ç", "9", "^"), ("à", "0", "@")],
                 strict=True)),
        MINUS: (")", "°", "]"), EQUAL: ("=", "+", "}"),
        **dict(zip(ROW_Q, [("a",), ("z",), ("e", "E", "€"), ("r",), ("t",), ("y",), ("u",), ("i",), ("o",),
                           ("p",), ("^", "¨"), ("$", "£", "¤")], strict=True)),
        **dict(zip(ROW_A, [("q",), ("s",), ("d",), ("f",), ("g",), ("h",), ("j",), ("k",), ("l",), ("m",),
                           ("ù", "%")], strict=True)),
        BACKSLASH: ("*", "µ"), ISO: ("<", ">"),
        **dict(zip(ROW_Z, [("w",), ("x",), ("c",), ("v",), ("b",), ("n",), (",", "?"), (";", "."), (":", "/"),
                           ("!", "§")], strict=True)),
    },
    "fr-mac": {
        GRAVE: ("@", "#"),
        **dict(zip(DIGITS, [("&", "1"), ("é", "2"), ('"', "3"), ("'", "4"), ("(", "5"), ("§", "6"), ("è", "7"),
                            ("!", "8"), ("ç", "9"), ("à", "0")], strict=True)),
        MINUS: (")", "°"), EQUAL: ("-", "_"),
        **dict(zip(ROW_Q, [("a",), ("z",), ("e",), ("r",), ("t",), ("y",), ("u",), ("i",), ("o",), ("p",),
                           ("^", "¨"), ("$", "*")], strict=True)),
        **dict(zip(ROW_A, [("q",), ("s",), ("d",), ("f",), ("g",), ("h",), ("j",), ("k",), ("l",), ("m",),
                           ("ù", "%")], strict=True)),
        BACKSLASH: ("`", "£"), ISO: ("<", ">"),
        **dict(zip(ROW_Z, [("w",), ("x",), ("c",), ("v",), ("b",), ("n",), (",", "?"), (";", "."), (":", "/"),
                           ("=", "+")], strict=True)),
    },
}


def check(name: str) -> None:
    """ValueError with the original's message for a layout we do not have (bootplan.cmdline's key check)."""
    check_keymap(name)


def _value(ch: str) -> int:
    """The keysym of a character: a letter (Caps Lock applies), Latin-1, or Unicode (U+xxxx ^ 0xF000)."""
    code = ord(ch)
    if ch.isalpha() and ch.isascii():
        return KT_LETTER | code
    return code if code < 0x100 else code ^ 0xF000


def entries(name: str) -> list[tuple[int, int, int]]:
    """(table, key code, keysym) for every key the layout sets; [] for us."""
    layout = LAYOUTS.get(KEYMAP_ALIASES.get(name, name))
    if layout is None:
        return []
    out = []
    for key, chars in sorted(layout.items()):
        if len(chars) == 1 and chars[0].isalpha() and chars[0].isascii():
            chars = (chars[0], chars[0].upper())
        for table, ch in zip((PLAIN, SHIFT, ALTGR)[:len(chars)], chars, strict=True):
            out.append((table, key, _value(ch)))
    return out


def open_vt() -> int | None:
    """A descriptor on the virtual terminal (/dev/tty0), or None when the machine has none (serial only)."""
    try:
        fd = os.open(VT, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, KDGKBTYPE, bytearray(1))
    except OSError:
        os.close(fd)
        return None
    return fd


def apply(name: str, ioctl=fcntl.ioctl, vt_fd: int | None = None) -> int:
    """Load layout `name` into the virtual terminal's keyboard; returns how many keys were set (0 for us, or
    when there is no virtual terminal)."""
    want = entries(name)
    if not want:
        return 0
    fd = open_vt() if vt_fd is None else vt_fd
    if fd is None:
        log(f"keymap: {name}: no virtual terminal (serial console only), nothing to load")
        return 0
    done = 0
    try:
        for table, key, value in want:
            try:
                ioctl(fd, KDSKBENT, struct.pack("BBH", table, key, value))
                done += 1
            except OSError as exc:  # e.g. a Unicode keysym while the keyboard is not in Unicode mode
                log(f"keymap: {name}: key {key} table {table}: {exc.strerror}")
    finally:
        if vt_fd is None:
            os.close(fd)
    log(f"keymap: {name} loaded on {VT} ({done} key entries)")
    return done
