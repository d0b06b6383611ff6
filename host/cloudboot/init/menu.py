"""The boot menu on the console (REFERENCE.md §2.3): the original's line menu, answered on the serial console
or on the screen and keyboard (the virtual terminal, in the layout cloudboot.keymap loaded).

Lines: the prompt, one ` * 1) label (name)` line per target (`*` marks the default); an answer is a number,
a name or a unique prefix (case-insensitive); Enter or the countdown's end takes the default; a wrong answer
stops the countdown. The menu is shown and read on /dev/console (stdin/stdout) and, when that is not the
virtual terminal, on /dev/tty0 as well.
"""

from __future__ import annotations

import os
import select
import time


def console_is_vt(active: str = "/sys/class/tty/console/active") -> bool:
    """Whether /dev/console is a virtual terminal (the last console= is ttyN)."""
    try:
        with open(active) as f:
            names = f.read().split()
    except OSError:
        return False
    return bool(names) and names[-1].startswith("tty") and names[-1][3:].isdigit()


class Console:
    """Where the menu is written and read: stdout/stdin, and optionally the virtual terminal's descriptor.
    Input is collected per descriptor until a newline (a canonical-mode terminal sends whole lines)."""

    def __init__(self, vt_fd: int | None = None, in_fd: int = 0) -> None:
        self.fds = [in_fd] + ([vt_fd] if vt_fd is not None else [])
        self.vt = vt_fd
        self.pending = {fd: b"" for fd in self.fds}

    def say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, flush=True)
        if self.vt is not None:
            try:
                os.write(self.vt, (text + end).replace("\n", "\r\n").encode())
            except OSError:
                self.vt = None

    def line(self, timeout: float | None) -> str | None:
        """The next line typed on any input (without its newline), or None after `timeout` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            for fd in self.fds:
                if b"\n" in self.pending[fd]:
                    line, _, self.pending[fd] = self.pending[fd].partition(b"\n")
                    return line.decode("utf-8", "replace").strip()
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            ready, _, _ = select.select(self.fds, [], [], left)
            for fd in ready:
                data = os.read(fd, 4096)
                if not data:  # end of input: treat what is there as a line
                    data = b"\n"
                    if fd != self.fds[0]:
                        self.fds.remove(fd)
                self.pending[fd] += data.replace(b"\r", b"\n")


def ask(entries: list[tuple[str, str]], default: str, settings: dict, con: Console | None = None) -> str:
    """The target chosen on the console (bootplan's `ask` callback)."""
    if con is None:
        from cloudboot.init.keymap import open_vt

        con = Console(None if console_is_vt() else open_vt())
    menu = settings.get("menu") or {}
    con.say(menu.get("prompt") or "Select a boot target:")
    for n, (name, label) in enumerate(entries, 1):
        con.say(f" {'*' if name == default else ' '} {n}) {label} ({name})")
    timeout = float(menu.get("timeout") or 0)
    end = time.monotonic() + timeout if timeout else None
    while True:
        if end is not None:
            left = end - time.monotonic()
            if left <= 0:
                con.say(f"\ntimeout: booting {default!r}")
                return default
            con.say(f"\rbooting {default!r} in {int(left + 0.999)}s - type a choice + Enter to override: ", end="")
            line = con.line(min(1.0, left))
            if line is None:
                continue
        else:
            con.say(f"choice [{default}]: ", end="")
            line = con.line(None)
        if not line:
            return default
        if line.isdigit() and 1 <= int(line) <= len(entries):
            return entries[int(line) - 1][0]
        exact = [n for n, _ in entries if n.lower() == line.lower()]
        prefix = [n for n, _ in entries if n.lower().startswith(line.lower())]
        if exact or len(prefix) == 1:
            return (exact or prefix)[0]
        con.say(f"unknown choice {line!r}; try again or wait for default {default!r}")
        end = None  # as the original: a wrong answer stops the countdown
